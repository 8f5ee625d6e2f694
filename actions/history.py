"""Points history: the latest ledger entries in plain words, then the balance."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, sender_of, with_store
from actions.loyalty import (
    EARN_BUTTON,
    POINTS_BUTTON,
    REDEEM_BUTTON,
    MemberView,
    announce_news,
    guest_text,
    load_member_view,
)
from actions.rewards import reward_gives
from actions.thread import Topic, topic_events
from bot import clock
from bot.log import get_logger
from bot.loyalty.ledger import recent_entries
from bot.loyalty.program import Program
from bot.models import LedgerEntry

log = get_logger(__name__)

HISTORY_LENGTH = 5
MINUS = "\u2212"


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    points: int
    kind: str
    source: str
    source_ref: Optional[str]
    reason: str


def short_date(moment: datetime, now: datetime) -> str:
    """ "12 Nov" this year, "12 Nov 2025" before."""
    text = f"{moment.day} {moment:%b}"
    return text if moment.year == now.year else f"{text} {moment.year}"


def signed_points(points: int) -> str:
    return f"+{points:,} points" if points > 0 else f"{MINUS}{-points:,} points"


_REVIEW_KINDS = {"review_text": "", "review_photo": " with a photo", "review_video": " with a video"}


def plain_reason(line: HistoryLine, program: Program) -> str:
    """The entry's reason as a shopper would say it."""
    reason = line.reason.strip()
    if line.source == "order":
        return f"Order #{line.source_ref}" if line.source_ref else re.sub(r"\bOrder (?!#)", "Order #", reason)
    if line.source == "refund" or line.kind == "reverse":
        return re.sub(r"\bOrder (?!#)", "Order #", reason)
    if line.source == "redemption" and line.source_ref and program.reward(line.source_ref) is not None:
        reward = program.reward(line.source_ref)
        return f"Redeemed: {reward_gives(program, reward.kind, reward.value, reward.title)}"
    if line.kind == "expire":
        return f"Points expired ({program.expiry_inactive_months} months without earning or redeeming)"
    if line.source in _REVIEW_KINDS:
        return "Product review" + _REVIEW_KINDS[line.source]
    credited = re.fullmatch(r"Review \((text|photo|video)\)", reason)
    if line.source == "review" and credited:
        return "Product review" + _REVIEW_KINDS[f"review_{credited.group(1)}"]
    if line.source == "tier_entry":
        return re.sub(r"^Welcome to (.+)$", r"Bonus for reaching \1", reason)
    if line.source == "social_follow":
        return re.sub(r"on (\w+)$", lambda m: f"on {m.group(1).capitalize()}", reason)
    if line.source == "birthday":
        return "Birthday bonus"
    if line.kind == "adjust":
        return f"Adjustment by our team: {reason}" if reason else "Adjustment by our team"
    return reason or line.kind.capitalize()


def history_text(program: Program, lines: List[HistoryLine], points: int, now: datetime) -> str:
    if not lines:
        return (
            f"There's nothing in your points history yet — you have {points:,} points. "
            f"Your first order earns {program.earning.points_per_currency_unit} points "
            f"for every {program.money(Decimal(1))} and will show up here."
        )
    rows = [
        f"• {short_date(line.at, now)}: {signed_points(line.points)} — {plain_reason(line, program)}" for line in lines
    ]
    return "\n".join(["Your latest points activity (newest first):", *rows, f"Your balance is {points:,} points."])


def _load_history(channel: str, sender_id: str):
    """The member view and the latest entries, read in one transaction."""
    load_view = load_member_view(channel, sender_id)

    def work(session: Session) -> Tuple[MemberView, List[HistoryLine]]:
        view = load_view(session)
        if view.customer_id is None:
            return view, []
        entries: List[LedgerEntry] = recent_entries(session, view.customer_id, limit=HISTORY_LENGTH)
        return view, [HistoryLine(e.created_at, e.points, e.kind, e.source, e.source_ref, e.reason) for e in entries]

    return work


class ActionPointsHistory(StoreAction):
    def name(self) -> Text:
        return "action_points_history"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        view, lines = await with_store(_load_history(*sender_of(tracker)))
        if view.summary is None:
            log.info("history.shown", linked=False)
            dispatcher.utter_message(
                text=guest_text(view.program, view.shop, "your points history"), buttons=[EARN_BUTTON]
            )
            return topic_events(Topic.GUEST)
        await announce_news(dispatcher, view)
        log.info("history.shown", linked=True, entries=len(lines))
        buttons = [REDEEM_BUTTON, POINTS_BUTTON] if view.summary.redeemable else [POINTS_BUTTON, EARN_BUTTON]
        dispatcher.utter_message(text=history_text(view.program, lines, view.summary.balance, clock.now()),
                                 buttons=buttons)
        return []
