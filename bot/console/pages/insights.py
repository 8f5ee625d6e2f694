"""The insights page (every merchant): CSAT and NPS over time, the score distributions and topics by
sentiment, for a period and a channel; the numbers come from bot/console/insights.py, drawn as SVG charts."""
from __future__ import annotations

from datetime import date
from typing import Dict, List, Optional, Tuple

from aiohttp import web
from markupsafe import Markup
from sqlalchemy.orm import Session

from bot import clock
from bot.console.charts import Bar, Series, bar_chart, line_chart, stacked_bars
from bot.console.insights import FeedbackInsights, PeriodError, feedback_channels, feedback_insights, period_for
from bot.console.page import PREFIX, has_nul, in_store, render

SMALL_SAMPLE = 5  # points resting on fewer answers are drawn hollow


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/insights", insights_page, name="console_insights")


def _csat(value: Optional[float]) -> str:
    """A CSAT score (already 0–100)."""
    return "–" if value is None else f"{value:.0f}%"


def _signed(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:+.0f}"


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
    if has_nul(channel):
        problems.append("the channel must not contain NUL characters. Showing all channels instead.")
        channel = None
    problem = " ".join(problems) or None

    def work(session: Session) -> Tuple[FeedbackInsights, List[str]]:
        return feedback_insights(session, period, channel), feedback_channels(session)

    data, channels = await in_store(request, work)
    if channel and channel not in channels:
        channels = sorted([*channels, channel])
    rows = [{"name": _bucket_name(b.start, b.end, period.bucket), "tally": b.tally} for b in data.buckets]
    return render(request, "insights.html", {
        "data": data, "period": period, "channel": channel or "", "channels": channels, "problem": problem,
        "charts": insight_charts(data), "rows": rows, "total": data.total, "small_sample": SMALL_SAMPLE,
        "csat": _csat, "signed": _signed,
    }, status=400 if problem else 200)
