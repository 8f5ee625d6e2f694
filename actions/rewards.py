"""Redeeming points for a reward: offer (list or confirm), redeem on an explicit yes, or keep the points.

Security: the reward a shopper names (entity or button payload) is only a wish. The offer checks it
against the program and the balance; the confirmation redeems the reward the *offer* stored
(`offered_reward`, a slot no message can fill) through bot.loyalty.rewards.redeem, which re-checks the
balance in its own transaction. The idempotency key comes from a nonce stored at offer time, so a
replayed confirmation gets the same code instead of a second one.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.asking import is_question
from actions.common import StoreAction, sender_of, with_store
from actions.thread import Topic, topic_events
from actions.loyalty import (
    EARN_BUTTON,
    HISTORY_BUTTON,
    POINTS_BUTTON,
    REDEEM_BUTTON,
    MemberView,
    announce_news,
    claim_tier_news,
    guest_text,
    inline_title,
    load_member_view,
    long_date,
    spend_for_points,
)
from bot import clock
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.ledger import balance
from bot.loyalty.program import Program, Reward, get_program
from bot.loyalty.rewards import RedemptionError, affordable_rewards, redeem
from bot.loyalty.tiers import tier_status
from bot.models import Product, RewardCode
from bot.shop import get_shop

log = get_logger(__name__)

REWARD_ENTITY = "reward"
OFFERED_SLOT = "offered_reward"  # the reward the shopper is asked to confirm (set by the offer only)
NONCE_SLOT = "redemption_nonce"  # one per offer: the redemption's idempotency key
OFFERED_FLAG = "reward_offered"  # featurized: a yes/no right after the offer confirms/declines it

CONFIRM_BUTTONS = [
    {"title": "Yes, redeem", "payload": "/affirm"},
    {"title": "No, keep my points", "payload": "/deny"},
]
HOW_TO_USE = "enter it at checkout in the discount code box"


def _n(points: int) -> str:
    return f"{points:,}"


def _no_offer() -> List[Dict[Text, Any]]:
    return [SlotSet(OFFERED_SLOT, None), SlotSet(NONCE_SLOT, None), SlotSet(OFFERED_FLAG, False)]


# ---------------------------------------------------------------- which reward did the shopper mean?

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "fifteen": 15, "twenty": 20, "twenty-five": 25, "thirty": 30, "forty": 40, "fifty": 50,
}
_FILLER = {"a", "an", "the", "free", "reward", "voucher", "coupon", "code", "off", "one", "my", "your", "next", "order"}


def _words(text: str) -> List[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def resolve_reward(program: Program, text: Optional[str]) -> Optional[Reward]:
    """The program's reward that `text` (an entity value: a reward id after synonym mapping, or the
    shopper's own words) names, or None when it names none or several."""
    if not text or not text.strip():
        return None
    wanted = text.strip().lower()
    for reward in program.rewards:
        if wanted in (reward.id.lower(), reward.title.lower()) or _words(wanted) == _words(reward.id):
            return reward
    words = _words(wanted.replace("%", " percent ").replace("$", " dollars "))
    numbers = [int(w) for w in words if w.isdigit()] + [_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS]
    candidates: List[Reward] = []
    if "shipping" in words or "delivery" in words:
        candidates = [r for r in program.rewards if r.kind == "free_shipping"]
    elif numbers and ("percent" in words or "pct" in words):
        candidates = [r for r in program.rewards if r.kind == "percent_off" and r.value == Decimal(numbers[0])]
    elif numbers:
        candidates = [r for r in program.rewards if r.kind == "amount_off" and r.value == Decimal(numbers[0])]
    else:
        named = set(words) - _FILLER
        if named:
            candidates = [
                r for r in program.rewards
                if r.kind == "free_product" and named & (set(_words(r.title)) - _FILLER)
            ]
    return candidates[0] if len(candidates) == 1 else None


# ---------------------------------------------------------------- texts

def reward_gives(program: Program, kind: str, value: Optional[Decimal], title: str,
                 product_title: Optional[str] = None) -> str:
    """What a reward gives, in words: "$5 off", "10% off", "free shipping", "a free Pebble table lamp"."""
    if kind == "amount_off" and value is not None:
        return f"{program.money(value)} off"
    if kind == "percent_off" and value is not None:
        return f"{Decimal(value).normalize():f}% off"
    if kind == "free_shipping":
        return "free shipping"
    if kind == "free_product" and product_title:
        return f"a free {product_title}"
    return inline_title(title)


def _gives(program: Program, reward: Reward) -> str:
    return reward_gives(program, reward.kind, reward.value, reward.title)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _min_order(program: Program, amount: Optional[Decimal], lead: str) -> str:
    return f"{lead} orders of {program.money(amount)} or more" if amount else ""


def confirm_text(program: Program, reward: Reward, points: int) -> str:
    return (
        f"Redeem {_n(reward.points)} points for {_gives(program, reward)}? You'll have {_n(points - reward.points)} "
        f"points left. You'll get a code{_min_order(program, reward.min_order, ' for')}, valid for "
        f"{reward.valid_months} months."
    )


def shortfall_text(program: Program, view: MemberView, reward: Reward, lead: str) -> str:
    """"<lead> 1,000 points and you have 598 — 402 more to go (about $81 of shopping)."."""
    assert view.summary is not None and view.tier is not None
    missing = reward.points - view.summary.balance
    spend = spend_for_points(program, missing, view.tier.tier.multiplier)
    return (
        f"{lead} {_n(reward.points)} points and you have {_n(view.summary.balance)} — {_n(missing)} more to go "
        f"(about {program.money(spend)} of shopping)."
    )


def reward_button(program: Program, reward: Reward) -> Dict[str, str]:
    return {
        "title": f"{reward.title} ({_n(reward.points)} pts)",
        "payload": f'/redeem_reward{{"{REWARD_ENTITY}":"{reward.id}"}}',
    }


def code_text(program: Program, code: RewardCode, product_title: Optional[str], points_left: int, created: bool) -> str:
    gives = reward_gives(program, code.kind, code.value, code.title, product_title)
    if code.kind == "free_product" and product_title:
        use = f"Add the {product_title} to your basket, then {HOW_TO_USE}"
    else:
        use = HOW_TO_USE[0].upper() + HOW_TO_USE[1:]
    head = (
        f"Done! Here's your code for {gives}:" if created
        else f"You've already redeemed this — here's the same code for {gives} again:"
    )
    return "\n".join([
        head,
        code.code,
        f"{use}. It's valid until {long_date(code.expires_at)}{_min_order(program, code.min_order, ', on')}.",
        f"You now have {_n(points_left)} points.",
    ])


# ---------------------------------------------------------------- actions

class ActionOfferReward(StoreAction):
    """"Redeem" (maybe naming a reward): ask to confirm an affordable named reward, or list what the
    shopper can afford as buttons, or say how far the cheapest reward is."""

    def name(self) -> Text:
        return "action_offer_reward"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        asked = next(tracker.get_latest_entity_values(REWARD_ENTITY), None)
        view = await with_store(load_member_view(*sender_of(tracker)))
        program = view.program
        if view.summary is None:
            log.info("reward.offered", linked=False)
            dispatcher.utter_message(
                text=guest_text(program, view.shop, "which rewards your points can get"), buttons=[EARN_BUTTON]
            )
            return _no_offer() + topic_events(Topic.GUEST)
        await announce_news(dispatcher, view)
        points = view.summary.balance
        # The entity when the model found one; otherwise the shopper's own words ("can I get the free
        # shipping reward?"), which resolve_reward reads just as strictly (one reward or none).
        typed = str(tracker.latest_message.get("text") or "")
        wanted = resolve_reward(program, str(asked) if asked is not None else None)
        if wanted is None and asked is None and not typed.startswith("/"):
            wanted = resolve_reward(program, typed)
        if wanted is not None and wanted.points <= points:
            log.info("reward.offered", linked=True, reward=wanted.id, question=is_question(typed))
            text = confirm_text(program, wanted, points)
            if is_question(typed):  # "can i get free shipping with my points?": the answer, then the offer
                text = f"Yes, you can — {_gives(program, wanted)} costs {_n(wanted.points)} points. {text}"
            dispatcher.utter_message(text=text, buttons=CONFIRM_BUTTONS)
            return [
                SlotSet(OFFERED_SLOT, wanted.id),
                SlotSet(NONCE_SLOT, secrets.token_urlsafe(16)),
                SlotSet(OFFERED_FLAG, True),
            ]

        lines: List[str] = []
        if asked is not None and wanted is None:
            lines.append(f"I couldn't find a reward called \"{str(asked)[:60]}\".")
        elif wanted is not None:
            lines.append(shortfall_text(program, view, wanted, f"{_capital(_gives(program, wanted))} needs"))
        affordable = affordable_rewards(program, points)
        log.info("reward.listed", linked=True, asked=asked is not None, known=wanted is not None,
                 affordable=len(affordable))
        if affordable:
            lines.append(f"With your {_n(points)} points you can get any of these — pick one and I'll confirm "
                         f"before spending anything:")
            dispatcher.utter_message(
                text="\n".join(lines), buttons=[reward_button(program, reward) for reward in affordable]
            )
        else:
            cheapest = program.rewards[0]
            if wanted is None or wanted.id != cheapest.id:
                lines.append(shortfall_text(program, view, cheapest, f"Our cheapest reward, {_gives(program, cheapest)}, needs"))
            dispatcher.utter_message(text="\n".join(lines), buttons=[EARN_BUTTON, HISTORY_BUTTON])
        if wanted is not None or not affordable:
            # Points short of a reward: "how long till I can get it?", "what's the cheapest?"
            return _no_offer() + topic_events(Topic.SHORTFALL, (wanted or program.rewards[0]).id)
        return _no_offer()


def redemption_key(channel: str, sender_id: str, nonce: str, reward_id: str) -> str:
    """The idempotency key of one confirmed offer (bounded length whatever the sender id)."""
    digest = hashlib.sha256(f"{channel}\0{sender_id}\0{nonce}\0{reward_id}".encode()).hexdigest()[:40]
    return f"chat:{digest}"


@dataclass(frozen=True)
class RedeemOutcome:
    program: Program
    news: Optional[str] = None
    guest_text: Optional[str] = None
    code: Optional[RewardCode] = None
    created: bool = False
    product_title: Optional[str] = None
    points_left: int = 0
    refused: Optional[str] = None  # why nothing was redeemed
    short_of: Optional[str] = None  # the reward refused for want of points


def _redeem_work(channel: str, sender_id: str, reward_id: str, key: str):
    def work(session: Session) -> RedeemOutcome:
        program = get_program()
        customer = customer_for_sender(session, channel, sender_id)
        if customer is None:
            return RedeemOutcome(program, guest_text=guest_text(program, get_shop(), "your rewards"))
        news = claim_tier_news(session, program, customer.id)
        reward = program.reward(reward_id)
        if reward is None:
            return RedeemOutcome(program, news, refused="That reward isn't offered any more, so nothing was spent.")
        try:
            redemption = redeem(session, program, customer.id, reward.id, idempotency_key=key)
        except RedemptionError:
            points = balance(session, customer.id)
            status = tier_status(session, customer.id, program, clock.now())
            missing = reward.points - points
            spend = spend_for_points(program, missing, status.tier.multiplier)
            return RedeemOutcome(
                program, news, points_left=points, short_of=reward.id,
                refused=(f"{_capital(_gives(program, reward))} needs {_n(reward.points)} points and you have "
                         f"{_n(points)} now — {_n(missing)} more to go (about {program.money(spend)} of shopping), "
                         f"so nothing was spent."),
            )
        code = redemption.code
        product_title = None
        if code.product_sku:
            product_title = session.execute(
                select(Product.title).where(Product.sku == code.product_sku)
            ).scalar_one_or_none()
        return RedeemOutcome(
            program, news, code=code, created=redemption.created, product_title=product_title,
            points_left=balance(session, customer.id),
        )

    return work


class ActionRedeemReward(StoreAction):
    """The shopper said yes to the offer: spend the points and give the code."""
    hands_over_follow_ups = False  # it acts on the answer to its own question

    def name(self) -> Text:
        return "action_redeem_reward"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        reward_id, nonce = tracker.get_slot(OFFERED_SLOT), tracker.get_slot(NONCE_SLOT)
        if not reward_id or not nonce:
            dispatcher.utter_message(
                text="There's no reward waiting for your yes. Say \"redeem\" to choose one.", buttons=[REDEEM_BUTTON]
            )
            return _no_offer()
        channel, sender_id = sender_of(tracker)
        key = redemption_key(channel, sender_id, str(nonce), str(reward_id))
        outcome = await with_store(_redeem_work(channel, sender_id, str(reward_id), key), write=True)
        if outcome.news:
            dispatcher.utter_message(text=outcome.news)
        if outcome.guest_text:
            log.info("reward.redeemed", linked=False)
            dispatcher.utter_message(text=outcome.guest_text, buttons=[EARN_BUTTON])
            return _no_offer() + topic_events(Topic.GUEST)
        if outcome.code is None:
            log.info("reward.refused", reward=reward_id)
            dispatcher.utter_message(text=outcome.refused or "Nothing was redeemed.", buttons=[REDEEM_BUTTON, EARN_BUTTON])
            if outcome.short_of is not None:
                return _no_offer() + topic_events(Topic.SHORTFALL, outcome.short_of)
        else:
            log.info("reward.redeemed", linked=True, reward=reward_id, created=outcome.created)
            dispatcher.utter_message(
                text=code_text(outcome.program, outcome.code, outcome.product_title, outcome.points_left, outcome.created),
                buttons=[POINTS_BUTTON, HISTORY_BUTTON],
            )
        return _no_offer()


class ActionCancelRedemption(StoreAction):
    """The shopper said no to the offer: nothing is spent."""
    hands_over_follow_ups = False  # it acts on the answer to its own question

    def name(self) -> Text:
        return "action_cancel_redemption"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        view = await with_store(load_member_view(*sender_of(tracker)))
        log.info("reward.declined", reward=tracker.get_slot(OFFERED_SLOT))
        if view.summary is None:
            text = "No problem — nothing was spent."
        else:
            text = f"No problem, your points are still there — you have {_n(view.summary.balance)}."
        dispatcher.utter_message(text=text, buttons=[REDEEM_BUTTON, POINTS_BUTTON])
        return _no_offer()
