"""Points, tier and earning answers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from actions.thread import Topic, topic_events
from bot import clock
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.expiry import ExpiryOutlook, expiring_soon, expiry_outlook
from bot.loyalty.point_value import PointValue, balance_worth, best_money_reward, point_value
from bot.loyalty.program import Program, Tier, get_program
from bot.loyalty.summary import PointsSummary, points_summary
from bot.loyalty.tiers import TierStatus, mark_announced, unannounced_changes
from bot.models import TierChange
from bot.notices import ChatNotice, claim_chat_messages, has_chat_notices
from bot.shop import Shop, get_shop

log = get_logger(__name__)

EARN_BUTTON = {"title": "How to earn", "payload": "/how_to_earn"}
TIER_BUTTON = {"title": "My tier", "payload": "/check_tier"}
POINTS_BUTTON = {"title": "My points", "payload": "/check_points"}
REDEEM_BUTTON = {"title": "Redeem points", "payload": "/redeem_reward"}
HISTORY_BUTTON = {"title": "Points history", "payload": "/points_history"}


@dataclass(frozen=True)
class MemberView:
    """What one turn needs from the store, read in one transaction."""

    program: Program
    shop: Shop
    name: Optional[str]
    summary: Optional[PointsSummary]  # None for a guest
    tier: Optional[TierStatus]
    customer_id: Optional[int] = None
    expires_at: Optional[datetime] = None  # when the balance expires, if that is within the warning window
    tier_news: bool = False  # a tier change is waiting to be announced
    notices: bool = False  # news about a review, photo, follow or referral is waiting to be told


def load_member_view(channel: str, sender_id: str) -> Callable[[Session], MemberView]:
    def work(session: Session) -> MemberView:
        program, shop = get_program(), get_shop()
        customer = customer_for_sender(session, channel, sender_id)
        if customer is None:
            return MemberView(program, shop, None, None, None)
        now = clock.now()
        summary = points_summary(session, customer.id, program, now)
        return MemberView(
            program, shop, customer.display_name, summary, summary.tier,
            customer_id=customer.id,
            expires_at=expiring_soon(program, customer, now),
            tier_news=bool(unannounced_changes(session, customer.id)),
            notices=has_chat_notices(session, customer.id),
        )

    return work


def tier_news_text(program: Program, change: TierChange) -> str:
    """The announcement of a recorded tier move, e.g. "Good news: you're Gold now — 1.5× points …"."""
    tier = program.tier(change.to_tier)
    rate = f" — {_multiplier(tier.multiplier)} points on every order" if tier is not None else ""
    if change.direction == "up":
        return f"Good news: you're {change.to_tier} now{rate}!"
    previous = f" (your {change.from_tier} term has ended)" if change.from_tier else ""
    return f"Your VIP tier is now {change.to_tier}{previous}{rate}."


def claim_tier_news(session: Session, program: Program, customer_id: int) -> Optional[str]:
    """Mark the customer's unannounced tier changes announced and return the text announcing the
    latest one (the tier they hold now). Call inside a write transaction."""
    changes = unannounced_changes(session, customer_id)
    if not changes:
        return None
    mark_announced(session, changes, clock.now())
    log.info("tier.announced", changes=len(changes), tier=changes[-1].to_tier)
    return tier_news_text(program, changes[-1])


async def announce_news(dispatcher: CollectingDispatcher, view: MemberView) -> None:
    """Start the reply with a pending tier change and the notices waiting for the shopper (a review
    approved, a friend's order rewarded, a question about an order with its score buttons), each once;
    the write happens only when there is news."""
    if not (view.tier_news or view.notices) or view.customer_id is None:
        return
    customer_id = view.customer_id

    def claim(session: Session) -> List[ChatNotice]:
        tier = claim_tier_news(session, view.program, customer_id) if view.tier_news else None
        notices = claim_chat_messages(session, customer_id, clock.now()) if view.notices else []
        return ([ChatNotice(tier)] if tier else []) + notices

    for news in await with_store(claim, write=True):
        if news.buttons:
            dispatcher.utter_message(text=news.text, buttons=[dict(button) for button in news.buttons])
        else:
            dispatcher.utter_message(text=news.text)


def _n(points: int) -> str:
    return f"{points:,}"


def _multiplier(value: Decimal) -> str:
    return f"{value.normalize():f}×"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def inline_title(title: str) -> str:
    """A reward's title inside a sentence: "A free Pebble table lamp" → "a free Pebble table lamp"."""
    first, _, rest = title.partition(" ")
    if rest and first in ("A", "An", "The"):
        return f"{first.lower()} {rest}"
    return title


def long_date(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


def points_buttons(summary: PointsSummary, *others: Dict[str, str]) -> List[Dict[str, str]]:
    return ([REDEEM_BUTTON] if summary.redeemable else []) + list(others)


def join_text(program: Program, shop: Shop) -> str:
    """How to join the program, e.g. "Join free at https://… and get 100 points as a welcome bonus."."""
    signup = f" and get {_n(program.earning.signup)} points as a welcome bonus" if program.earning.signup else ""
    return f"Join free at {shop.signup_url}{signup}."


def guest_text(program: Program, shop: Shop, what: str) -> str:
    """What a guest is told instead of an account's figures; the answer opens the guest topic (how to link,
    how to join: actions/follow_ups.py)."""
    return (
        f"I can't see {_article(shop.name)} {shop.name} rewards account linked to this chat yet, so I can't show {what}. "
        f"Already a member? Get a link code on your account page ({shop.account_url}) and send it to me here. "
        f"New here? {join_text(program, shop)}"
    )


def spend_for_points(program: Program, points: int, multiplier: Decimal) -> Decimal:
    per_unit = Decimal(program.earning.points_per_currency_unit) * multiplier
    return (Decimal(points) / per_unit).to_integral_value(rounding=ROUND_CEILING) if per_unit else Decimal(0)


def expiry_text(points: int, when: datetime) -> str:
    return f"{_n(points)} points expire on {long_date(when)} — earn or redeem before then to keep them."


def points_text(
    program: Program, name: Optional[str], summary: PointsSummary, expires_at: Optional[datetime] = None
) -> str:
    tier = summary.tier
    lines = [f"{name + ', y' if name else 'Y'}ou have {_n(summary.balance)} points and you're a {tier.tier.name} member."]
    if expires_at is not None and summary.balance > 0:
        lines.append(expiry_text(summary.balance, expires_at))
    if summary.redeemable:
        best = summary.redeemable[-1]
        if summary.next_reward is None:
            lines.append(
                f"That's enough for any reward we offer — up to {inline_title(best.title)} ({_n(best.points)} points)."
            )
        else:
            titles = ", ".join(f"{reward.title} ({_n(reward.points)})" for reward in summary.redeemable)
            lines.append(f"You can redeem now: {titles}.")
    if summary.next_reward is not None:
        missing = summary.points_to_next_reward or 0
        spend = spend_for_points(program, missing, tier.tier.multiplier)
        lines.append(
            f"Next reward: {summary.next_reward.title} at {_n(summary.next_reward.points)} points — "
            f"{_n(missing)} to go (about {program.money(spend)} of shopping)."
        )
    lines.append(tier_progress_text(program, tier))
    return "\n".join(lines)


def tier_progress_text(program: Program, status: TierStatus) -> str:
    if status.next_tier is None:
        return f"You're in our top tier, {status.tier.name}, earning {_multiplier(status.tier.multiplier)} points."
    return (
        f"Spend {program.money(status.spend_to_next or Decimal(0))} more{_term_phrase(program)} to reach "
        f"{status.next_tier.name} ({_multiplier(status.next_tier.multiplier)} points)."
    )


def _term_phrase(program: Program) -> str:
    return {
        "rolling_12_months": " within 12 months",
        "calendar_year": " this calendar year",
        "lifetime": "",
    }[program.tier_term]


def _spend_window(program: Program) -> str:
    return {
        "rolling_12_months": "in the last 12 months",
        "calendar_year": "this calendar year",
        "lifetime": "in total",
    }[program.tier_term]


def tier_perks(program: Program, tier: Tier) -> List[str]:
    """What a tier brings: its points rate, from the config's numbers, then its listed perks."""
    rate = Decimal(program.earning.points_per_currency_unit) * tier.multiplier
    earning = f"{rate.normalize():f} points per {program.money(Decimal(1))} spent"
    if tier.multiplier != 1:
        earning += f" ({_multiplier(tier.multiplier)} points)"
    return [earning, *tier.perks]


def tier_text(program: Program, name: Optional[str], status: TierStatus) -> str:
    perks = tier_perks(program, status.tier)
    lines = [
        f"{name + ', y' if name else 'Y'}ou're a {status.tier.name} member, with "
        f"{program.money(status.qualifying_spend)} of qualifying spend {_spend_window(program)}.",
        f"Your {status.tier.name} perks:",
        *(f"• {perk}" for perk in perks),
        tier_progress_text(program, status),
    ]
    if status.next_tier is not None:
        added = [perk for perk in tier_perks(program, status.next_tier) if perk not in perks]
        if added:
            lines.append(f"{status.next_tier.name} adds: " + "; ".join(added) + ".")
    return "\n".join(lines)


def tier_ladder_text(program: Program) -> str:
    steps = [
        f"• {tier.name}: from {program.money(tier.min_spend)} — {_multiplier(tier.multiplier)} points"
        for tier in program.tiers
    ]
    window = {"rolling_12_months": "over 12 months", "calendar_year": "in a calendar year", "lifetime": "in total"}
    return f"Our VIP tiers, by spend {window[program.tier_term]}:\n" + "\n".join(steps)


def earning_text(program: Program) -> str:
    earning = program.earning
    lines: List[str] = []
    if earning.points_per_currency_unit:
        bonus = ", ".join(f"{t.name} {_multiplier(t.multiplier)}" for t in program.tiers if t.multiplier != 1)
        lines.append(
            f"{earning.points_per_currency_unit} points for every {program.money(Decimal(1))} you spend"
            + (f" (more in higher tiers: {bonus})" if bonus else "")
        )
    if earning.signup:
        lines.append(f"{_n(earning.signup)} points for joining the program")
    if earning.birthday:
        lines.append(f"{_n(earning.birthday)} points on your birthday, once a year")
    if earning.social_follow:
        lines.append(f"{_n(earning.social_follow)} points for following us on a social network (once per network)")
    reviews = [
        (earning.review_text, "points for a product review"),
        (earning.review_photo, "with a photo"),
        (earning.review_video, "with a video"),
    ]
    review_parts = [f"{_n(points)} {what}" for points, what in reviews if points]
    if review_parts:
        lines.append(", ".join(review_parts) + " (after moderation, whatever your rating)")
    if earning.quiz_completion:
        lines.append(f"{_n(earning.quiz_completion)} points for completing a product quiz (once per quiz)")
    # Referral rewards are configured but not paid yet (referral links and attribution come with the
    # advocacy feature), so the bot does not promise them.
    if not lines:
        return "Our rewards program has no earning rules switched on at the moment."
    cheapest = program.rewards[0]
    return (
        "Here's how to earn points:\n"
        + "\n".join(f"• {line}" for line in lines)
        + f"\nRewards start at {_n(cheapest.points)} points ({cheapest.title})."
    )


class ActionCheckPoints(StoreAction):
    def name(self) -> Text:
        return "action_check_points"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        view = await with_store(load_member_view(*sender_of(tracker)))
        if view.summary is None:
            log.info("points.checked", linked=False)
            dispatcher.utter_message(text=guest_text(view.program, view.shop, "your points"), buttons=[EARN_BUTTON])
            return topic_events(Topic.GUEST)
        log.info("points.checked", linked=True, expiring=view.expires_at is not None)
        await announce_news(dispatcher, view)
        dispatcher.utter_message(
            text=points_text(view.program, view.name, view.summary, view.expires_at),
            buttons=points_buttons(view.summary, TIER_BUTTON, EARN_BUTTON),
        )
        # "How long till I can get it?" is about the next reward the answer named.
        next_reward = view.summary.next_reward
        return topic_events(Topic.SHORTFALL, next_reward.id) if next_reward is not None else []


class ActionCheckTier(StoreAction):
    def name(self) -> Text:
        return "action_check_tier"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        view = await with_store(load_member_view(*sender_of(tracker)))
        if view.tier is None:
            log.info("tier.checked", linked=False)
            dispatcher.utter_message(
                text=guest_text(view.program, view.shop, "your tier") + "\n" + tier_ladder_text(view.program),
                buttons=[EARN_BUTTON],
            )
            return topic_events(Topic.GUEST)
        log.info("tier.checked", linked=True, tier=view.tier.tier.name)
        await announce_news(dispatcher, view)
        dispatcher.utter_message(text=tier_text(view.program, view.name, view.tier), buttons=[POINTS_BUTTON, EARN_BUTTON])
        return topic_events(Topic.TIER, view.tier.tier.name)


class ActionHowToEarn(StoreAction):
    def name(self) -> Text:
        return "action_how_to_earn"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        program = read_config(get_program)
        dispatcher.utter_message(text=earning_text(program), buttons=[POINTS_BUTTON, TIER_BUTTON])
        return []


def _days_until(moment: datetime, now: datetime) -> str:
    days = max(0, (moment.date() - now.date()).days)
    return "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"


def point_rate_text(program: Program, value: PointValue) -> str:
    """"100 points = $1 off" (or the range when rewards differ), with the amount-off ladder as proof."""
    if value.highest_per_point is None:
        return "Our rewards aren't money off, so points don't have a cash value — here's what they get you:"
    ladder = ", ".join(f"{reward.title} for {_n(reward.points)}" for reward in value.money_rewards[:4])
    per_unit = value.points_per_currency_unit()
    if value.flat and per_unit is not None and per_unit == per_unit.to_integral_value():
        rate = f"{_n(int(per_unit))} points = {program.money(Decimal(1))} off"
    else:
        low, high = value.lowest_per_point or Decimal(0), value.highest_per_point
        rate = f"100 points = {program.money(low * 100)} to {program.money(high * 100)} off, depending on the reward"
    return f"Points are worth money off your order: {rate} ({ladder}). There's no cash-out."


def points_value_text(program: Program, name: Optional[str], balance: Optional[int],
                      multiplier: Decimal = Decimal(1)) -> str:
    """A point's money value, what the shopper's own balance is worth, and the cheapest reward."""
    value = point_value(program)
    lines = [point_rate_text(program, value)]
    if balance is not None:
        worth = balance_worth(program, balance)
        best = best_money_reward(program, balance)
        opener = f"{name + ', y' if name else 'Y'}our {_n(balance)} points"
        if worth is None:
            lines.append(f"{opener} aren't enough for money off yet.")
        elif best is not None:
            lines.append(f"{opener} are worth about {program.money(worth)} — enough for {best.title} "
                         f"({_n(best.points)} points) right now.")
        else:
            lines.append(f"{opener} are worth about {program.money(worth)}, but the smallest money-off reward "
                         f"needs {_n(value.money_rewards[0].points)}.")
    cheapest = value.cheapest
    if cheapest is not None:
        text = f"The cheapest reward is {cheapest.title} at {_n(cheapest.points)} points"
        if balance is not None and balance >= cheapest.points:
            text += " — you can get it now."
        else:
            missing = cheapest.points - (balance or 0)
            spend = spend_for_points(program, missing, multiplier)
            text += (f" — {_n(missing)} to go (about {program.money(spend)} of shopping)." if balance is not None
                     else f" (about {program.money(spend)} of shopping at "
                          f"{program.earning.points_per_currency_unit} points per {program.money(Decimal(1))}).")
        lines.append(text)
    others = [reward for reward in program.rewards if reward.kind in ("free_shipping", "percent_off", "free_product")
              and reward is not cheapest]
    if others:
        lines.append("Other rewards (" + ", ".join(inline_title(reward.title) for reward in others[:3])
                     + ") are worth more or less depending on your order.")
    return "\n".join(lines)


def expiry_rule_text(program: Program) -> str:
    return (f"Points expire after {program.expiry_inactive_months} months without earning or redeeming — "
            f"any order or redemption keeps all of them alive for another {program.expiry_inactive_months} months.")


def points_expiry_text(program: Program, name: Optional[str], outlook: ExpiryOutlook, now: datetime) -> str:
    who = f"{name}, y" if name else "Y"
    lines: List[str] = []
    if outlook.expires_at is None:
        lines.append(f"{who}ou have no points that can expire right now.")
    elif outlook.expires_soon(now):
        lines.append(f"Heads up{', ' + name if name else ''}: your {_n(outlook.balance)} points expire on "
                     f"{long_date(outlook.expires_at)} ({_days_until(outlook.expires_at, now)}). "
                     "Earn or redeem anything before then to keep them.")
    else:
        lines.append(f"{who}our {_n(outlook.balance)} points are safe until {long_date(outlook.expires_at)}.")
    if outlook.last_activity_at is not None and outlook.expires_at is not None:
        lines.append(f"Your last points activity was on {long_date(outlook.last_activity_at)}"
                     f" ({_activity_phrase(outlook.last_activity_reason)}).")
    if outlook.last_expired_at is not None and outlook.last_expired_points:
        lines.append(f"Earlier, {_n(outlook.last_expired_points)} points expired on {long_date(outlook.last_expired_at)}.")
    lines.append(expiry_rule_text(program))
    return "\n".join(lines)


def _activity_phrase(reason: Optional[str]) -> str:
    text = (reason or "points activity").strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def load_expiry_outlook(channel: str, sender_id: str) -> Callable[[Session], Optional[tuple]]:
    def work(session: Session) -> Optional[tuple]:
        customer = customer_for_sender(session, channel, sender_id)
        if customer is None:
            return None
        return customer.display_name, expiry_outlook(session, get_program(), customer.id, clock.now())

    return work


class ActionPointsValue(StoreAction):
    """"How much is a point worth?" — the money rate, the shopper's own balance in money, the cheapest reward."""

    def name(self) -> Text:
        return "action_points_value"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        view = await with_store(load_member_view(*sender_of(tracker)))
        if view.summary is None:
            log.info("points.value", linked=False)
            dispatcher.utter_message(
                text=points_value_text(view.program, None, None) + "\n"
                + guest_text(view.program, view.shop, "what your own points are worth"),
                buttons=[EARN_BUTTON])
            return []
        log.info("points.value", linked=True)
        await announce_news(dispatcher, view)
        dispatcher.utter_message(
            text=points_value_text(view.program, view.name, view.summary.balance, view.summary.tier.tier.multiplier),
            buttons=points_buttons(view.summary, POINTS_BUTTON, EARN_BUTTON))
        return []


class ActionPointsExpiry(StoreAction):
    """"When do my points expire?" — from the ledger's last earn or redemption and the program's rule."""

    def name(self) -> Text:
        return "action_points_expiry"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        found = await with_store(load_expiry_outlook(*sender_of(tracker)))
        program = read_config(get_program)
        if found is None:
            log.info("points.expiry", linked=False)
            dispatcher.utter_message(
                text=expiry_rule_text(program) + "\n" + guest_text(program, read_config(get_shop), "when yours expire"),
                buttons=[EARN_BUTTON])
            return []
        name, outlook = found
        now = clock.now()
        log.info("points.expiry", linked=True, soon=outlook.expires_soon(now))
        buttons = [REDEEM_BUTTON] if outlook.balance >= min((r.points for r in program.rewards), default=0) \
            and outlook.balance > 0 else []
        dispatcher.utter_message(text=points_expiry_text(program, name, outlook, now),
                                 buttons=buttons + [HISTORY_BUTTON, EARN_BUTTON])
        return []
