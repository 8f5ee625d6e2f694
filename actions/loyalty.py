"""Points, tier and earning answers."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from bot import clock
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, Tier, get_program
from bot.loyalty.summary import PointsSummary, points_summary
from bot.loyalty.tiers import TierStatus
from bot.shop import Shop, get_shop

log = get_logger(__name__)

EARN_BUTTON = {"title": "How to earn", "payload": "/how_to_earn"}
TIER_BUTTON = {"title": "My tier", "payload": "/check_tier"}
POINTS_BUTTON = {"title": "My points", "payload": "/check_points"}


@dataclass(frozen=True)
class MemberView:
    """What one turn needs from the store, read in one transaction."""

    program: Program
    shop: Shop
    name: Optional[str]
    summary: Optional[PointsSummary]  # None for a guest
    tier: Optional[TierStatus]


def load_member_view(channel: str, sender_id: str) -> Callable[[Session], MemberView]:
    def work(session: Session) -> MemberView:
        program, shop = get_program(), get_shop()
        customer = customer_for_sender(session, channel, sender_id)
        if customer is None:
            return MemberView(program, shop, None, None, None)
        summary = points_summary(session, customer.id, program, clock.now())
        return MemberView(program, shop, customer.display_name, summary, summary.tier)

    return work


def _n(points: int) -> str:
    return f"{points:,}"


def _multiplier(value: Decimal) -> str:
    return f"{value.normalize():f}×"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def guest_text(program: Program, shop: Shop, what: str) -> str:
    signup = f" and get {_n(program.earning.signup)} points as a welcome bonus" if program.earning.signup else ""
    return (
        f"I can't see {_article(shop.name)} {shop.name} rewards account linked to this chat yet, so I can't show {what}. "
        f"Already a member? Say \"talk to a person\" and our team will link this chat to your account. "
        f"New here? Join free at {shop.signup_url}{signup}."
    )


def spend_for_points(program: Program, points: int, multiplier: Decimal) -> Decimal:
    per_unit = Decimal(program.earning.points_per_currency_unit) * multiplier
    return (Decimal(points) / per_unit).to_integral_value(rounding=ROUND_CEILING) if per_unit else Decimal(0)


def points_text(program: Program, name: Optional[str], summary: PointsSummary) -> str:
    tier = summary.tier
    lines = [f"{name + ', y' if name else 'Y'}ou have {_n(summary.balance)} points and you're a {tier.tier.name} member."]
    if summary.redeemable:
        best = summary.redeemable[-1]
        if summary.next_reward is None:
            lines.append(f"That's enough for any reward we offer — up to {best.title} ({_n(best.points)} points).")
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
    if earning.referral_advocate:
        friend = (
            f" — they get {earning.referral_friend_percent_off}% off" if earning.referral_friend_percent_off else ""
        )
        lines.append(f"{_n(earning.referral_advocate)} points when a friend you refer places their first order{friend}")
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
            return []
        log.info("points.checked", linked=True)
        dispatcher.utter_message(text=points_text(view.program, view.name, view.summary), buttons=[TIER_BUTTON, EARN_BUTTON])
        return []


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
            return []
        log.info("tier.checked", linked=True, tier=view.tier.tier.name)
        dispatcher.utter_message(text=tier_text(view.program, view.name, view.tier), buttons=[POINTS_BUTTON, EARN_BUTTON])
        return []


class ActionHowToEarn(StoreAction):
    def name(self) -> Text:
        return "action_how_to_earn"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        program = read_config(get_program)
        dispatcher.utter_message(text=earning_text(program), buttons=[POINTS_BUTTON, TIER_BUTTON])
        return []
