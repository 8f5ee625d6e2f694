"""The console's home page (/console/): today's numbers, each linking to the queue it counts — open
handoffs and the longest wait, low feedback not yet handled, CSAT and NPS this week, and for owners the
moderation queues and the points liability. Every number comes from the query its own page already uses
(bot/handoff.py, bot/feedback/inbox.py, bot/console/insights.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import PROGRAM
from bot.console.insights import (
    QUEUE_MODELS, Tally, feedback_insights, loyalty_overview, pending_queue, period_for, referrals_in_review,
)
from bot.console.page import MERCHANT, PREFIX, in_store, render
from bot.console.pages.feedback import INBOX
from bot.feedback.inbox import InboxFilter, inbox_page
from bot.handoff import handoff_counts, list_handoffs
from bot.loyalty.program import Program

# "Feedback needing attention": the inbox's quick filter "Low scores, not yet handled".
NEEDS_ATTENTION = {"band": "low", "status": "new"}


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX, home_page)
    app.router.add_get(f"{PREFIX}/", home_page, name="console_home")


@dataclass(frozen=True)
class OwnersNumbers:
    pending_moderation: int  # reviews, photos and videos, social follows, and referrals held for review
    liability: Optional[Decimal]  # None when the program gives points no money value
    spendable_points: int


@dataclass(frozen=True)
class Today:
    open_handoffs: int
    waiting_handoffs: int  # waiting for the shopper
    oldest_waiting_since: Optional[datetime]  # the open request that has waited longest
    needing_attention: int  # counted up to the inbox's cap
    needing_attention_capped: bool
    week: Tally  # CSAT and NPS answers since Monday (UTC)
    week_start: datetime
    owners: Optional[OwnersNumbers]


def todays_numbers(session: Session, program: Program, now: datetime, for_owner: bool) -> Today:
    counts = handoff_counts(session)
    oldest = list_handoffs(session, "open", limit=1)
    attention = inbox_page(session, InboxFilter(**NEEDS_ATTENTION))
    today = now.date()
    period = period_for(today, today, "week", today)  # Monday of this week to today
    owners = None
    if for_owner:
        pending = sum(pending_queue(session, name, limit=0).pending for name in QUEUE_MODELS)
        overview = loyalty_overview(session, program, recent=0)
        owners = OwnersNumbers(pending + referrals_in_review(session), overview.liability, overview.positive_balances)
    return Today(
        open_handoffs=counts["open"], waiting_handoffs=counts["waiting"],
        oldest_waiting_since=oldest[0].waiting_since() if oldest else None,
        needing_attention=attention.total, needing_attention_capped=attention.total_capped,
        week=feedback_insights(session, period).total, week_start=period.since, owners=owners,
    )


async def home_page(request: web.Request) -> web.StreamResponse:
    program = request.app[PROGRAM]()
    for_owner = request[MERCHANT].role == "owner"
    now = clock.now()
    numbers = await in_store(request, lambda session: todays_numbers(session, program, now, for_owner))
    return render(request, "home.html", {
        "today": numbers, "money": program.money, "currency": program.currency,
        "attention_url": f"{INBOX}?{urlencode(NEEDS_ATTENTION)}",
        "week_url": f"{PREFIX}/insights?" + urlencode({"from": numbers.week_start.date().isoformat(),
                                                       "to": now.date().isoformat(), "bucket": "day"}),
    })
