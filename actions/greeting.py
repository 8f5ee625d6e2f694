"""The greeting that opens a session (widget open, Telegram /start, "hi"): a linked member by first name with
tier, balance and one suggestion that fits them; a guest gets what the assistant can do, as buttons."""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import StoreAction, sender_of, with_store
from actions.loyalty import (
    EARN_BUTTON, MemberView, POINTS_BUTTON, REDEEM_BUTTON, TIER_BUTTON, _multiplier, _n, announce_news, inline_title,
    load_member_view, long_date, spend_for_points,
)
from bot.consent import may_message
from bot.log import get_logger
from bot.loyalty.program import Program

log = get_logger(__name__)

QUIZ_BUTTON = {"title": "Help me choose", "payload": "/start_quiz"}
LINK_BUTTON = {"title": "Link my account", "payload": "/link_account"}
PERSON_BUTTON = {"title": "Talk to a person", "payload": "/human_handoff"}
REFER_BUTTON = {"title": "Refer a friend", "payload": "/get_referral_link"}

# A next tier counts as "close by" when the spend still missing is at most this share of its threshold.
TIER_CLOSE_SHARE = Decimal("0.2")


def suggestion(view: MemberView, now: datetime) -> Tuple[str, Dict[str, str]]:
    """The one thing most worth saying to this member now, and its button: points about to expire, then a
    tier close by, then the best reward they can afford, then how far the cheapest one is."""
    program, summary = view.program, view.summary
    assert summary is not None
    tier = summary.tier
    if view.expires_at is not None and summary.balance > 0:
        days = max(0, (view.expires_at.date() - now.date()).days)
        return (f"Heads up: your points expire on {long_date(view.expires_at)} (in {days} days) unless you earn "
                f"or redeem before then.", REDEEM_BUTTON if summary.redeemable else EARN_BUTTON)
    if tier.next_tier is not None and tier.spend_to_next is not None and tier.next_tier.min_spend > 0 \
            and tier.spend_to_next <= tier.next_tier.min_spend * TIER_CLOSE_SHARE:
        perk = _headline_perk(program, tier.next_tier.name)
        return (f"You're only {program.money(tier.spend_to_next)} of shopping away from {tier.next_tier.name}"
                f"{' — ' + perk if perk else ''}.", TIER_BUTTON)
    if summary.redeemable:
        best = summary.redeemable[-1]
        payload = "/redeem_reward" + json.dumps({"reward": best.id})
        return (f"Your points are enough for {inline_title(best.title)} — want it?",
                {"title": f"Get {inline_title(best.title)}"[:40], "payload": payload})
    if summary.next_reward is not None:
        missing = summary.points_to_next_reward or 0
        spend = spend_for_points(program, missing, tier.tier.multiplier)
        return (f"You're {_n(missing)} points from {inline_title(summary.next_reward.title)} "
                f"(about {program.money(spend)} of shopping).", EARN_BUTTON)
    return ("", POINTS_BUTTON)


def _headline_perk(program: Program, tier_name: str) -> Optional[str]:
    """What a tier adds over the one below it, in a few words ("free shipping on every order")."""
    names = [tier.name for tier in program.tiers]
    index = names.index(tier_name)
    tier = program.tiers[index]
    below = set(program.tiers[index - 1].perks) if index > 0 else set()
    added = [perk for perk in tier.perks if perk not in below]
    if added:
        return added[-1]
    return f"{_multiplier(tier.multiplier)} points" if tier.multiplier != 1 else None


def member_greeting(view: MemberView, now: datetime) -> Tuple[str, List[Dict[str, str]]]:
    summary = view.summary
    assert summary is not None
    tier = summary.tier.tier
    first = f"Hi {view.name}!" if view.name else "Hi!"
    status = f"You're a {tier.name} member with {_n(summary.balance)} points"
    perk = _headline_perk(view.program, tier.name) if tier.name != view.program.tiers[0].name else None
    lines = [f"{first} {status}{' — ' + perk + ' is yours' if perk else ''}."]
    text, button = suggestion(view, now)
    if text:
        lines.append(text)
    buttons = [button] + [b for b in (POINTS_BUTTON, QUIZ_BUTTON, PERSON_BUTTON) if b["payload"] != button["payload"]]
    return "\n".join(lines), buttons[:4]


def guest_greeting(shop_name: str) -> Tuple[str, List[Dict[str, str]]]:
    text = (f"Hi! I'm {shop_name}'s assistant. I can help you choose or find a product, answer questions about "
            "delivery, returns and care, show your points and rewards once your account is linked, or get you to "
            "our team. What would you like to do?")
    return text, [QUIZ_BUTTON, EARN_BUTTON, LINK_BUTTON, REFER_BUTTON, PERSON_BUTTON]


def greeted_this_session(tracker: Tracker) -> bool:
    """A greeting already opened this session (the shopper said hi twice, or the widget greeted on opening)."""
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "action" and event.get("name") == "action_greet":
            return True
    return False


class ActionGreet(StoreAction):
    def name(self) -> Text:
        return "action_greet"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        from bot import clock

        view = await with_store(load_member_view(*sender_of(tracker)))
        again = greeted_this_session(tracker)
        if view.summary is None:
            log.info("greeting", linked=False, again=again)
            if again:
                dispatcher.utter_message(text="Hi again! What can I do for you?", buttons=guest_greeting("")[1])
                return []
            text, buttons = guest_greeting(view.shop.name)
            dispatcher.utter_message(text=text, buttons=buttons)
            return []
        log.info("greeting", linked=True, again=again)
        if again:
            dispatcher.utter_message(text=f"Hi again{', ' + view.name if view.name else ''}! What can I do for you?",
                                     buttons=[POINTS_BUTTON, QUIZ_BUTTON, PERSON_BUTTON])
            return []
        # News waiting for the shopper comes with the greeting, unless this chat said "unsubscribe": a greeting
        # the widget opens with is the shop speaking first (bot/consent.py).
        if await with_store(lambda session: may_message(session, *sender_of(tracker))):
            await announce_news(dispatcher, view)
        text, buttons = member_greeting(view, clock.now())
        dispatcher.utter_message(text=text, buttons=buttons)
        return []
