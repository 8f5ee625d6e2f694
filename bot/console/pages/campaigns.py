"""The Campaigns page (owners): the campaigns, newest first; a form to make one (a message with personal fields
and buttons, or a poll) for a segment or chosen customers; a draft's dry run (who gets it on which chat, who
waits or is skipped and why, who is held out) with the Send button; a sent campaign's results against its
holdout, with a poll's answers charted per option, per tier and per segment the owner ticks
(?segment=REF, repeatable). Everything goes through bot/campaigns/."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import PROGRAM
from bot.audit import record
from bot.campaigns.results import CampaignResults, campaign_results
from bot.campaigns.service import (
    BUTTON_ACTIONS, PERSONAL_FIELDS, CampaignError, audience_label, create_campaign, dry_run, get_campaign,
    list_campaigns, send_campaign,
)
from bot.console.charts import Bar, Series, bar_chart, stacked_bars
from bot.console.page import ID, MERCHANT, PREFIX, has_nul, in_store, owner_only, render
from bot.log import get_logger
from bot.models import Merchant
from bot.segments.service import list_segments

log = get_logger(__name__)

PAGE = f"{PREFIX}/campaigns"
SHOWN = 100  # dry-run rows listed


def add_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, campaigns_page, name="console_campaigns")
    app.router.add_post(PAGE, campaign_create)
    app.router.add_get(PAGE + "/{id:" + ID + "}", campaign_page, name="console_campaign")
    app.router.add_post(PAGE + "/{id:" + ID + "}/send", campaign_send)


async def _list_view(request: web.Request, *, problem: Optional[str] = None, form: Optional[Dict[str, Any]] = None,
                     status: int = 200) -> web.Response:
    def work(session: Session, program: Any) -> Dict[str, Any]:
        return {"campaigns": [(campaign, audience_label(campaign)) for campaign in list_campaigns(session)],
                "segments": list_segments(session, program=program)}

    data = await in_store(request, lambda session: work(session, request.app[PROGRAM]()))
    program = request.app[PROGRAM]()
    return render(request, "campaigns.html", {
        **data, "problem": problem, "form": form or {}, "buttons": BUTTON_ACTIONS, "fields": PERSONAL_FIELDS,
        "holdout": program.campaigns.holdout_percent,
    }, status=status)


@owner_only
async def campaigns_page(request: web.Request) -> web.StreamResponse:
    return await _list_view(request)


def _ids(text: str) -> List[int]:
    ids = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or len(part) > 9:
            raise CampaignError(f"{part!r} is not a customer id")
        ids.append(int(part))
    return ids


@owner_only
async def campaign_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {key: str(form.get(key, "")) for key in ("name", "kind", "text", "segment", "customers", "options",
                                                       "bonus")}
    values["buttons"] = [str(value) for value in form.getall("button", [])]
    if has_nul(*values.values(), *values["buttons"]):
        return await _list_view(request, problem="The campaign must not contain NUL characters", form=values,
                                status=400)
    program = request.app[PROGRAM]()
    merchant_id = request[MERCHANT].id

    def work(session: Session) -> int:
        bonus = values["bonus"].strip() or "0"
        if not (bonus.isascii() and bonus.isdigit()) or len(bonus) > 7:
            raise CampaignError("the bonus is a whole number of points")
        audience = ({"segment": values["segment"]} if values["segment"].strip()
                    else {"customer_ids": _ids(values["customers"])})
        kind = "poll" if values["kind"] == "poll" else "message"
        campaign = create_campaign(
            session, program, name=values["name"], text=values["text"], audience=audience, now=clock.now(),
            kind=kind, buttons=values["buttons"] if kind == "message" else (),
            options=[line for line in values["options"].splitlines() if line.strip()] if kind == "poll" else (),
            bonus_points=int(bonus), created_by=request[MERCHANT].email)
        record(session, session.get(Merchant, merchant_id), "campaign_created", f"campaign {campaign.id}",
               f"{campaign.kind} {campaign.name!r} to {audience_label(campaign)}", clock.now())
        return campaign.id

    try:
        campaign_id = await in_store(request, work, write=True)
    except CampaignError as error:
        log.info("console.campaign_refused", status=400)
        return await _list_view(request, problem=str(error), form=values, status=400)
    log.info("console.campaign_created", campaign_id=campaign_id, merchant_id=merchant_id)
    raise web.HTTPSeeOther(f"{PAGE}/{campaign_id}")


@owner_only
async def campaign_page(request: web.Request) -> web.StreamResponse:
    return await _campaign_view(request, int(request.match_info["id"]))


async def _campaign_view(request: web.Request, campaign_id: int, *, problem: Optional[str] = None,
                         status: int = 200) -> web.Response:
    program = request.app[PROGRAM]()
    chosen = [ref for ref in request.query.getall("segment", []) if ref.strip()]
    if has_nul(*chosen):
        problem, status, chosen = "A segment reference must not contain NUL characters", 400, []

    def work(session: Session) -> Dict[str, Any]:
        campaign = get_campaign(session, campaign_id)
        found: Dict[str, Any] = {"campaign": campaign, "audience": audience_label(campaign), "plan": None,
                                 "results": None, "segments": [], "segment_problem": None}
        if campaign.status == "sent":
            try:
                found["results"] = campaign_results(session, program, campaign_id, clock.now(), segments=chosen)
            except CampaignError as error:
                if not chosen:
                    raise
                found["segment_problem"] = str(error)  # the results without the segments, and why
                found["results"] = campaign_results(session, program, campaign_id, clock.now())
            if campaign.kind == "poll":
                found["segments"] = list_segments(session, program=program)
        else:
            found["plan"] = dry_run(session, program, campaign_id, clock.now())
        return found

    try:
        data = await in_store(request, work)
    except CampaignError as error:
        raise web.HTTPNotFound(text=str(error)) from None
    if data["segment_problem"]:
        problem, status = data["segment_problem"], 400
    context: Dict[str, Any] = {**data, "problem": problem, "shown": SHOWN, "sent": request.query.get("sent") == "1",
                               "chosen": {answers.ref for answers in (data["results"].options_by_segment
                                                                       if data["results"] else ())},
                               "option_chart": None, "tier_chart": None,
                               "segment_chart": None}
    results = data.get("results")
    if results is not None and results.options:
        context.update(_poll_charts(results))
    return render(request, "campaign.html", context, status=status)


def _poll_charts(results: CampaignResults) -> Dict[str, Any]:
    """A poll's answers as charts: per option, each tier's split by option, and each chosen segment's."""
    titles = [title for title, _ in results.options]
    charts: Dict[str, Any] = {"option_chart": bar_chart(
        chart_id="chart-poll-options", title="Answers per option",
        description="How many customers chose each option: "
                    + ", ".join(f"{title} {count:,}" for title, count in results.options),
        bars=[Bar(title, count, "funnel") for title, count in results.options], empty="No answers yet.")}
    tiers = sorted(results.options_by_tier)
    charts["tier_chart"] = stacked_bars(
        chart_id="chart-poll-tiers", title="Answers per tier",
        description="Each tier's answers split by option.", categories=tiers,
        series=[Series(title, [results.options_by_tier[tier][index] for tier in tiers], f"option-{index % 5}")
                for index, title in enumerate(titles)],
        empty="No answers yet.")
    if results.options_by_segment:
        segments = results.options_by_segment
        charts["segment_chart"] = stacked_bars(
            chart_id="chart-poll-segments", title="Answers per segment",
            description="Each segment's answers split by option: " + "; ".join(
                f"{answers.name}: " + ", ".join(f"{title} {count:,}" for title, count in zip(titles, answers.counts))
                for answers in segments),
            categories=[answers.name for answers in segments],
            series=[Series(title, [answers.counts[index] for answers in segments], f"option-{index % 5}")
                    for index, title in enumerate(titles)],
            empty="No answers from these segments' members yet.")
    return charts


@owner_only
async def campaign_send(request: web.Request) -> web.StreamResponse:
    campaign_id = int(request.match_info["id"])
    program = request.app[PROGRAM]()
    merchant_id = request[MERCHANT].id

    def work(session: Session) -> Any:
        report = send_campaign(session, program, campaign_id, clock.now())
        if not report.already_sent:
            record(session, session.get(Merchant, merchant_id), "campaign_sent", f"campaign {campaign_id}",
                   f"{report.queued} queued in the outbox, {report.holdout} held out", clock.now())
        return report

    try:
        report = await in_store(request, work, write=True)
    except CampaignError as error:
        return await _campaign_view(request, campaign_id, problem=str(error), status=404)
    log.info("console.campaign_sent", campaign_id=campaign_id, queued=report.queued, holdout=report.holdout,
             merchant_id=merchant_id)
    raise web.HTTPSeeOther(f"{PAGE}/{campaign_id}?sent=1")
