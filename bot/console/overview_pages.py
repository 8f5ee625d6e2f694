"""Console pages: insights charts, handoff queue, loyalty overview, referral and quiz stats, moderation queues.

Insights and handoffs are for every merchant; the program pages (loyalty, referrals, quizzes, moderation)
for owners only. Numbers come from services (bot/console/insights.py, bot/handoff.py, bot/advocacy/*,
bot/quiz/stats.py) run in the executor; this module turns them into page context and charts. Decisions
(close a handoff, approve or reject a referral or a queued item) are POSTs answered with a redirect
(303) back to the page, which names what was decided; a refused decision renders the page with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from aiohttp import web
from markupsafe import Markup
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.codes import ReferralError
from bot.advocacy.content import moderate_submission
from bot.advocacy.moderation import ModerationError
from bot.advocacy.referrals import (
    ReferralStateError, UnknownReferral, approve_referral, list_referrals, referral_totals, reject_referral,
)
from bot.advocacy.reviews import moderate_review
from bot.advocacy.social import moderate_social_claim
from bot.console.charts import Bar, Series, bar_chart, line_chart, stacked_bars
from bot.console.insights import (
    QUEUE_MODELS, FeedbackInsights, PeriodError, feedback_channels, feedback_insights, loyalty_overview,
    pending_queue, period_for, quiz_reports, referral_funnel, referrals_in_review,
)
from bot.console.web import MERCHANT, PREFIX, error_page, owner_only, render
from bot.handoff import UnknownHandoff, close_handoff, handoff_counts, handoff_detail, list_handoffs
from bot.log import get_logger
from bot.models import HandoffRequest, Referral
from bot.shared.text import human_duration
from bot.db import transaction_in_thread
from bot.web.store import DATABASE, EXECUTOR, PROGRAM, SETTINGS

log = get_logger(__name__)
T = TypeVar("T")

PAGE_SIZE = 50
LAST_MESSAGES_SHOWN = 3
SMALL_SAMPLE = 5  # points resting on fewer answers are drawn hollow
QUIZ_DAYS = (7, 30, 90, 365)
DEFAULT_QUIZ_DAYS = 30
MAX_ACTOR_CHARS = 64  # moderated_by and ReferralDecision.actor
MAX_REASON_CHARS = 255
QUEUE_TITLES = {"reviews": "Reviews", "content": "Photos and videos", "social": "Social follows"}
# Ids in paths: ASCII digits, short enough for every database's integer (a longer one is simply not found).
ID = "[0-9]{1,9}"
# Where a referral decision made on another page returns to.
REFERRAL_BACK = {"referrals": f"{PREFIX}/referrals", "moderation": f"{PREFIX}/moderation"}


def add_routes(app: web.Application) -> None:
    """This module's routes (bot/console/routes.py calls it)."""
    app.router.add_get(f"{PREFIX}/insights", insights_page, name="console_insights")
    app.router.add_get(f"{PREFIX}/handoffs", handoffs_page, name="console_handoffs")
    app.router.add_get(PREFIX + "/handoffs/{id:" + ID + "}", handoff_page, name="console_handoff")
    app.router.add_post(PREFIX + "/handoffs/{id:" + ID + "}/close", handoff_close)
    app.router.add_get(f"{PREFIX}/loyalty", loyalty_page, name="console_loyalty")
    app.router.add_get(f"{PREFIX}/referrals", referrals_page, name="console_referrals")
    app.router.add_post(PREFIX + "/referrals/{id:" + ID + "}/{decision:approve|reject}", referral_decide)
    app.router.add_get(f"{PREFIX}/quizzes", quizzes_page, name="console_quizzes")
    app.router.add_get(f"{PREFIX}/moderation", moderation_page, name="console_moderation")
    app.router.add_post(PREFIX + "/moderation/{queue:reviews|content|social}/{id:" + ID + "}/{decision:approve|reject}",
                        moderation_decide)


def _in_session(request: web.Request, work: Callable[[Session], T], *, write: bool = False) -> Awaitable[T]:
    """`work(session)` in one transaction on the app's worker threads (the database drivers block)."""
    return transaction_in_thread(work, write=write, database=request.app[DATABASE], executor=request.app[EXECUTOR])


def _small_int(text: str) -> Optional[int]:
    """A query parameter's whole number; None for anything else (str.isdigit alone lets "²" through, and a
    thousand digits would overflow the database's integers)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = _small_int(request.query.get(name, ""))
    return default if value is None else min(max(value, low), high)


def _actor(request: web.Request) -> str:
    """Who decided a queued item, as its moderated_by records it: the merchant's e-mail."""
    return request[MERCHANT].email[:MAX_ACTOR_CHARS]


def _referral_actor(request: web.Request) -> str:
    """Who decided a referral: ReferralDecision.actor is "rules" or "merchant:<who>" (as the CLI records it)."""
    return f"merchant:{request[MERCHANT].email}"[:MAX_ACTOR_CHARS]


def _has_nul(*texts: Any) -> bool:
    """Whether any of the texts (query or form values) holds a NUL character: PostgreSQL refuses them in text,
    so one reaching a query or a stored field would be a 500. The pages refuse such input as invalid."""
    return any("\x00" in str(text) for text in texts if text is not None)


def _percent(share: Optional[float]) -> str:
    """A share from 0 to 1 as a percentage."""
    return "–" if share is None else f"{share * 100:.0f}%"


def _csat(value: Optional[float]) -> str:
    """A CSAT score (already 0–100)."""
    return "–" if value is None else f"{value:.0f}%"


def _signed(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:+.0f}"


# --- insights ------------------------------------------------------------------------------------------


def _parse_day(text: Optional[str], what: str) -> Optional[date]:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"the {what} date must look like 2026-06-01") from None


def _bucket_label(start: date) -> str:
    return f"{start:%b} {start.day}"


def _bucket_name(start: date, end: date, bucket: str) -> str:
    return f"{start.isoformat()} – {end.isoformat()}" if bucket == "week" and end != start else start.isoformat()


def _answers(count: int) -> str:
    return f"{count:,} answer{'s' if count != 1 else ''}"


def insight_charts(data: FeedbackInsights) -> Dict[str, Markup]:
    """The insights page's charts (SVG markup) from the aggregated numbers."""
    period = data.period
    span = f"{period.start.isoformat()} to {period.end.isoformat()}"
    by = "week" if period.bucket == "week" else "day"
    labels = [_bucket_label(bucket.start) for bucket in data.buckets]
    total = data.total
    charts: Dict[str, Markup] = {}
    charts["csat"] = line_chart(
        chart_id="chart-csat", title="CSAT over time",
        description=(f"Share of CSAT answers that were 4 or 5, by {by}, {span}: {_csat(total.csat)} overall from "
                     f"{_answers(total.csat_answers)}. The table under the chart lists every {by}."),
        labels=labels,
        values=[b.tally.csat for b in data.buckets],
        counts=[b.tally.csat_answers for b in data.buckets],
        y_min=0, y_max=100, value_format=lambda value: f"{value:.0f}%", min_sample=SMALL_SAMPLE,
        empty="No CSAT answers in this range.",
    )
    charts["nps"] = line_chart(
        chart_id="chart-nps", title="NPS over time",
        description=(f"Net Promoter Score (% promoters minus % detractors), by {by}, {span}: {_signed(total.nps)} "
                     f"overall from {_answers(total.nps_answers)}. The table under the chart lists every {by}."),
        labels=labels,
        values=[b.tally.nps for b in data.buckets],
        counts=[b.tally.nps_answers for b in data.buckets],
        y_min=-100, y_max=100, value_format=lambda value: f"{value:+.0f}" if value else "0",
        min_sample=SMALL_SAMPLE, empty="No NPS answers in this range.",
    )
    charts["csat_distribution"] = bar_chart(
        chart_id="chart-csat-scores", title="CSAT answers by score",
        description="How many CSAT answers gave each score from 1 to 5: "
                    + ", ".join(f"{score}: {count:,}" for score, count in data.csat_distribution) + ".",
        bars=[Bar(str(score), count, "high" if score >= 4 else "middle" if score == 3 else "low")
              for score, count in data.csat_distribution],
        empty="No CSAT answers in this range.",
    )
    charts["nps_distribution"] = bar_chart(
        chart_id="chart-nps-scores", title="NPS answers by score",
        description="How many NPS answers gave each score from 0 to 10 (0–6 detractors, 7–8 passives, 9–10 "
                    "promoters): " + ", ".join(f"{score}: {count:,}" for score, count in data.nps_distribution) + ".",
        bars=[Bar(str(score), count, "high" if score >= 9 else "middle" if score >= 7 else "low")
              for score, count in data.nps_distribution],
        empty="No NPS answers in this range.",
    )
    series = [Series("positive", [t.positive for t in data.topics], "positive"),
              Series("neutral", [t.neutral for t in data.topics], "neutral"),
              Series("negative", [t.negative for t in data.topics], "negative")]
    if any(t.unrated for t in data.topics):
        series.append(Series("no sentiment", [t.unrated for t in data.topics], "unrated"))
    charts["topics"] = stacked_bars(
        chart_id="chart-topics", title="Topics by sentiment",
        description="How often each topic came up in the comments, split by the comment's sentiment: "
                    + "; ".join(f"{t.topic} {t.total:,} ({t.positive:,} positive, {t.neutral:,} neutral, "
                                f"{t.negative:,} negative)" for t in data.topics) + ".",
        categories=[t.topic for t in data.topics], series=series,
        empty="No comments with topics in this range.",
    )
    return charts


async def insights_page(request: web.Request) -> web.StreamResponse:
    today = clock.now().date()
    query = request.query
    problems = []
    try:
        period = period_for(_parse_day(query.get("from"), "start"), _parse_day(query.get("to"), "end"),
                            query.get("bucket") or None, today)
    except PeriodError as error:
        problems.append(f"{error}. Showing the last 12 weeks instead.")
        period = period_for(None, None, "week", today)
    channel = (query.get("channel") or "").strip()[:32] or None
    if _has_nul(channel):
        problems.append("the channel must not contain NUL characters. Showing all channels instead.")
        channel = None
    problem = " ".join(problems) or None

    def work(session: Session) -> Tuple[FeedbackInsights, List[str]]:
        return feedback_insights(session, period, channel), feedback_channels(session)

    data, channels = await _in_session(request, work)
    if channel and channel not in channels:
        channels = sorted([*channels, channel])
    rows = [{"name": _bucket_name(b.start, b.end, period.bucket), "tally": b.tally} for b in data.buckets]
    return render(request, "insights.html", {
        "data": data, "period": period, "channel": channel or "", "channels": channels, "problem": problem,
        "charts": insight_charts(data), "rows": rows, "total": data.total, "small_sample": SMALL_SAMPLE,
        "csat": _csat, "signed": _signed,
    }, status=400 if problem else 200)


# --- handoffs ------------------------------------------------------------------------------------------


def _moment(text: Any) -> Optional[datetime]:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _turns(turns: Sequence[Any]) -> List[Dict[str, Any]]:
    """Turns as the transcript list shows them; a role other than shopper is shown as the bot's."""
    shown = []
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        shown.append({"role": "shopper" if turn.get("role") == "shopper" else "bot",
                      "text": str(turn.get("text") or ""), "at": _moment(turn.get("at"))})
    return shown


async def handoffs_page(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status", "open")
    if status not in ("open", "closed"):
        status = "open"
    page = _int_param(request, "page", 1, 1, 10_000)
    closed_id = _small_int(request.query.get("closed", ""))

    def work(session: Session) -> Tuple[Any, Dict[str, int], Any]:
        rows = list_handoffs(session, status, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        just_closed = session.get(HandoffRequest, closed_id) if closed_id is not None else None
        return rows, handoff_counts(session), just_closed

    rows, counts, just_closed = await _in_session(request, work)
    items = [{"row": row, "last": _turns(row.request.last_messages or [])[-LAST_MESSAGES_SHOWN:]}
             for row in rows[:PAGE_SIZE]]
    return render(request, "handoffs.html", {
        "status": status, "items": items, "counts": counts, "page": page, "has_more": len(rows) > PAGE_SIZE,
        "just_closed": just_closed if just_closed is not None and just_closed.status == "closed" else None,
    })


async def handoff_page(request: web.Request) -> web.StreamResponse:
    request_id = int(request.match_info["id"])
    try:
        detail = await _in_session(request, lambda session: handoff_detail(session, request_id))
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    return render(request, "handoffs_detail.html", {"detail": detail, "turns": _turns(detail.turns)})


async def handoff_close(request: web.Request) -> web.StreamResponse:
    request_id = int(request.match_info["id"])
    merchant = request[MERCHANT]
    try:
        closed = await _in_session(
            request, lambda session: close_handoff(session, request_id, merchant.email, clock.now()), write=True)
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    log.info("console.handoff_closed", handoff_id=closed.id, merchant_id=merchant.id)
    raise web.HTTPSeeOther(f"{PREFIX}/handoffs?closed={closed.id}")


# --- loyalty -------------------------------------------------------------------------------------------


@owner_only
async def loyalty_page(request: web.Request) -> web.StreamResponse:
    program = request.app[PROGRAM]()
    overview = await _in_session(request, lambda session: loyalty_overview(session, program))
    rows = [{"name": tier.name, "customers": tier.customers,
             "note": "" if tier.known else "not a tier of the program now"} for tier in overview.tiers]
    if overview.not_evaluated:
        rows.append({"name": "not evaluated yet", "customers": overview.not_evaluated,
                     "note": "no tier computed: no order since joining"})
    members = max(overview.members, 1)
    chart = bar_chart(
        chart_id="chart-tiers", title="Members by VIP tier",
        description="Members in each tier: " + ", ".join(f"{row['name']} {row['customers']:,}" for row in rows) + ".",
        bars=[Bar(row["name"], row["customers"], "tier") for row in rows], empty="No members yet.",
    )
    rate = overview.point_value
    return render(request, "loyalty.html", {
        "overview": overview, "program": program, "tier_rows": rows, "members_base": members, "tier_chart": chart,
        "money": program.money, "minus": lambda points: f"−{points:,}" if points else "0",
        "point_rate": (f"{program.currency_symbol}{rate.per_point.quantize(Decimal('0.0001')).normalize():f}"
                       if rate is not None else ""),
    })


# --- referrals -----------------------------------------------------------------------------------------


async def _referrals_view(request: web.Request, *, problem: Optional[str] = None, status: int = 200) -> web.Response:
    decided_id = _small_int(request.query.get("decided", ""))

    def work(session: Session) -> Dict[str, Any]:
        return {
            "totals": referral_totals(session),
            "funnel": referral_funnel(session),
            "queue": list_referrals(session, "review", limit=PAGE_SIZE),
            "recent": list_referrals(session, None, limit=20),
            "decided": session.get(Referral, decided_id) if decided_id is not None else None,
        }

    data = await _in_session(request, work)
    totals, funnel = data["totals"], data["funnel"]
    joined = sum(totals.by_status.values())
    steps = [("Link clicks", totals.clicks), ("Friends joined", joined), ("First orders", funnel.with_order),
             ("Rewarded", totals.by_status.get("rewarded", 0))]
    chart = bar_chart(
        chart_id="chart-referral-funnel", title="Referral funnel",
        description="From clicks on advocates' links to rewarded referrals: "
                    + ", ".join(f"{name} {value:,}" for name, value in steps)
                    + ". Friends can also join by a code typed in chat, without a click.",
        bars=[Bar(name, value, "funnel") for name, value in steps], empty="No referral activity yet.",
    )
    return render(request, "referrals.html", {
        **data, "joined": joined, "funnel_chart": chart, "problem": problem,
    }, status=status)


@owner_only
async def referrals_page(request: web.Request) -> web.StreamResponse:
    return await _referrals_view(request)


@owner_only
async def referral_decide(request: web.Request) -> web.StreamResponse:
    referral_id = int(request.match_info["id"])
    approve = request.match_info["decision"] == "approve"
    form = await request.post()
    back = str(form.get("back", "referrals"))
    back = back if back in REFERRAL_BACK else "referrals"
    reason = " ".join(str(form.get("reason", "")).split())[:MAX_REASON_CHARS]
    if _has_nul(reason):
        log.info("console.referral_refused", referral_id=referral_id, status=400)
        view = _moderation_view if back == "moderation" else _referrals_view
        return await view(request, problem=f"Referral #{referral_id}: the reason must not contain NUL characters",
                          status=400)
    program = request.app[PROGRAM]()
    actor = _referral_actor(request)

    def work(session: Session) -> Any:
        if approve:
            return approve_referral(session, program, referral_id, actor, clock.now())
        return reject_referral(session, program, referral_id, actor, reason, clock.now())

    try:
        referral = await _in_session(request, work, write=True)
    except ReferralError as error:
        status = 404 if isinstance(error, UnknownReferral) else 409 if isinstance(error, ReferralStateError) else 400
        log.info("console.referral_refused", referral_id=referral_id, status=status)
        view = _moderation_view if back == "moderation" else _referrals_view
        return await view(request, problem=f"Referral #{referral_id}: {error}", status=status)
    log.info("console.referral_decided", referral_id=referral.id, status=referral.status,
             merchant_id=request[MERCHANT].id)
    raise web.HTTPSeeOther(f"{REFERRAL_BACK[back]}?decided={referral.id}" if back == "referrals"
                           else f"{REFERRAL_BACK[back]}?decided=referral-{referral.id}")


# --- quizzes -------------------------------------------------------------------------------------------


@owner_only
async def quizzes_page(request: web.Request) -> web.StreamResponse:
    days = _int_param(request, "days", DEFAULT_QUIZ_DAYS, 1, 3660)
    if days not in QUIZ_DAYS:
        days = DEFAULT_QUIZ_DAYS
    since = clock.now() - timedelta(days=days)
    directory = request.app[SETTINGS].quizzes_dir
    found = await _in_session(request, lambda session: quiz_reports(session, directory, since))
    quizzes = []
    for stats in found.reports:
        chart = bar_chart(
            chart_id=f"chart-quiz-{stats.quiz_id}", title=f"{stats.title}: shoppers reaching each question",
            description=f"Of {stats.starts:,} starts, how many reached each question: "
                        + "; ".join(f"{q.text} {q.reached:,} (dropped {q.dropped:,})" for q in stats.questions) + ".",
            bars=[Bar(f"Q{index}", question.reached, "funnel") for index, question in enumerate(stats.questions, 1)],
            empty="No runs started in this period.",
        )
        quizzes.append({"stats": stats, "chart": chart})
    return render(request, "quizzes.html", {
        "quizzes": quizzes, "days": days, "day_choices": QUIZ_DAYS, "problem": found.problem,
        "percent": _percent, "duration": human_duration,
    })


# --- moderation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decided:
    what: str
    item_id: int
    status: str
    points: int


async def _moderation_view(request: web.Request, *, problem: Optional[str] = None, status: int = 200) -> web.Response:
    decided = request.query.get("decided", "")

    def work(session: Session) -> Dict[str, Any]:
        queues = [pending_queue(session, name, PAGE_SIZE) for name in QUEUE_MODELS]
        flagged = list_referrals(session, "review", limit=PAGE_SIZE)
        what, _, number = decided.partition("-")
        item_id = _small_int(number)
        notice = None
        if item_id is not None and what in (*QUEUE_MODELS, "referral"):
            item = session.get(Referral if what == "referral" else QUEUE_MODELS[what], item_id)
            if item is not None and item.status not in ("pending", "review", "joined"):
                notice = _Decided(what, item.id, item.status, item.points_awarded)
        return {"queues": queues, "flagged": flagged, "flagged_count": referrals_in_review(session), "notice": notice}

    data = await _in_session(request, work)
    return render(request, "moderation.html", {
        **data, "titles": QUEUE_TITLES, "problem": problem, "safe_url": _safe_url,
    }, status=status)


def _safe_url(url: Any) -> Optional[str]:
    """A media URL to link to: https only (anything else is shown as text, never as a link)."""
    text = str(url or "")
    return text if text.startswith("https://") and not any(char.isspace() for char in text) else None


@owner_only
async def moderation_page(request: web.Request) -> web.StreamResponse:
    return await _moderation_view(request)


@owner_only
async def moderation_decide(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    item_id = int(request.match_info["id"])
    approve = request.match_info["decision"] == "approve"
    form = await request.post()
    note = " ".join(str(form.get("note" if approve else "reason", "")).split()) or None
    if _has_nul(note):
        log.info("console.moderation_refused", queue=queue, item_id=item_id, status=400)
        field = "note" if approve else "reason"
        return await _moderation_view(
            request, problem=f"{QUEUE_TITLES[queue]} #{item_id}: the {field} must not contain NUL characters.",
            status=400)
    program = request.app[PROGRAM]()
    decide = {"reviews": moderate_review, "content": moderate_submission, "social": moderate_social_claim}[queue]
    model = QUEUE_MODELS[queue]
    actor = _actor(request)

    def work(session: Session) -> Any:
        if session.get(model, item_id) is None:
            return None
        return decide(session, program, item_id, approve=approve, actor=actor, note=note, now=clock.now())

    def decided_already(session: Session) -> bool:
        item = session.get(model, item_id)
        return item is not None and item.status != "pending"

    try:
        result = await _in_session(request, work, write=True)
    except ModerationError as error:
        # Decided by someone else (or by this same form a moment ago) is a conflict; a bad note is the form's.
        status = 409 if await _in_session(request, decided_already) else 400
        log.info("console.moderation_refused", queue=queue, item_id=item_id, status=status)
        return await _moderation_view(request, problem=f"{QUEUE_TITLES[queue]} #{item_id}: {error}.", status=status)
    if result is None:
        return error_page(request, 404, "Not found", f"There is no item #{item_id} in {QUEUE_TITLES[queue].lower()}.")
    log.info("console.moderated", queue=queue, item_id=item_id, status=result.status,
             points=result.points_awarded, merchant_id=request[MERCHANT].id)
    raise web.HTTPSeeOther(f"{PREFIX}/moderation?decided={queue}-{item_id}")
