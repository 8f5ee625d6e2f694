"""action_follow_up: a message read against what was just discussed (actions/thread.py decides that it is one).

One small class per topic answers that topic's follow-ups with the same domain code and texts as the
answer that opened it: the handoff's request and reply time, the tier's perks, how to link a chat, the
friend's offer, the points still needed for a reward. Each answer keeps the topic open, so "and gold?" can
follow "what perks do I get".
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from actions.handoff import reply_time_text
from actions.linking import how_to_link
from actions.loyalty import (
    EARN_BUTTON,
    POINTS_BUTTON,
    REDEEM_BUTTON,
    TIER_BUTTON,
    join_text,
    load_member_view,
    tier_ladder_text,
    tier_perks,
    tier_progress_text,
)
from actions.referrals import friend_offer_text
from actions.rewards import reward_button, reward_gives, shortfall_text
from actions.search import ENTITIES as SEARCH_ENTITIES
from actions.search import NOT_UNDERSTOOD as SEARCH_NOT_UNDERSTOOD
from actions.search import QUIZ_BUTTON, match_card, match_title, matches_head, search_quizzes, store_search
from actions.thread import FOLLOW_UP_ACTION, FollowUp, Topic, names_a_tier, read_follow_up, topic_events
from bot import clock
from bot.advocacy.referrals import ChatClaim, claim_of_sender
from bot.catalog.preferences import previous_search, shopper_preferences
from bot.catalog.refine import Refiner, Shown, positions_named, stored_criteria
from bot.catalog.search import Match, criteria_from, search
from bot.catalog.snapshot import catalog_snapshot
from bot.handoff import sender_request
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import get_program
from bot.shared.text import plural
from bot.shop import get_shop

log = get_logger(__name__)

Events = List[Dict[Text, Any]]
NOT_UNDERSTOOD = "utter_not_understood"


def _minutes_ago(moment: datetime, now: datetime) -> str:
    minutes = max(0, int((now - moment).total_seconds() // 60))
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    return f"{hours} hour{'s' if hours != 1 else ''} ago" if hours < 48 else f"{hours // 24} days ago"


class TopicFollowUps(ABC):
    """The follow-ups of one topic."""

    topic: Topic

    @abstractmethod
    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        """Answer the follow-up; the events keep the topic open (or close it)."""


class HandoffFollowUps(TopicFollowUps):
    """"How long will it take?", "any update on my request?" after a handoff: the request as it stands."""

    topic = Topic.HANDOFF

    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        shop = read_config(get_shop)
        channel, sender_id = sender_of(tracker)
        request_id = int(follow_up.ref) if str(follow_up.ref or "").isdigit() else None

        def work(session: Session) -> Optional[tuple]:
            request = sender_request(session, request_id, channel, sender_id) if request_id is not None else None
            return (request.status, request.requested_at, request.closed_at) if request is not None else None

        found = await with_store(work)
        now = clock.now()
        if found is None:
            dispatcher.utter_message(text=f"I can't find that request any more. {reply_time_text(shop)} "
                                          "Shall I pass this chat to the team again?",
                                     buttons=[{"title": "Talk to a person", "payload": "/human_handoff"}])
            return topic_events(None)
        status, requested_at, closed_at = found
        if status == "closed":
            when = _minutes_ago(closed_at, now) if closed_at is not None else "already"
            dispatcher.utter_message(
                text=(f"Your request #{request_id} was closed by the {shop.name} team {when} — they will have "
                      f"answered you by then. If you still need help, ask for a person again."),
                buttons=[{"title": "Talk to a person", "payload": "/human_handoff"}],
            )
            return topic_events(Topic.HANDOFF, request_id)
        if status == "waiting":
            dispatcher.utter_message(text=f"Someone from the {shop.name} team has answered your request #{request_id} "
                                          "— their reply is just above in this chat, and they're waiting for yours.")
            return topic_events(Topic.HANDOFF, request_id)
        waiting = (f"Your request #{request_id} is open and with the {shop.name} team (you asked "
                   f"{_minutes_ago(requested_at, now)}). ")
        if follow_up.kind == "how_long":
            text = waiting + reply_time_text(shop) + " They'll reply right here in this chat."
        else:
            text = (waiting + "Nobody has closed it yet, so it's still waiting for a person. "
                    + reply_time_text(shop))
        dispatcher.utter_message(text=text + " Say \"talk to the bot\" any time to come back to me.")
        return topic_events(Topic.HANDOFF, request_id)


class TierFollowUps(TopicFollowUps):
    """"What perks do I get?" (or "and gold?") after a tier answer: the perks of the tier just named; "how
    do I get to the next one?": the spend still needed."""

    topic = Topic.TIER

    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        program = read_config(get_program)
        named = names_a_tier(follow_up.words)
        tier = program.tier(named or (str(follow_up.ref) if follow_up.ref else None))
        if follow_up.kind == "next" and named is None:
            view = await with_store(load_member_view(*sender_of(tracker)))
            if view.tier is not None:
                dispatcher.utter_message(text=tier_progress_text(program, view.tier), buttons=[POINTS_BUTTON])
                return topic_events(Topic.TIER, view.tier.tier.name)
        if tier is None:
            dispatcher.utter_message(text=tier_ladder_text(program), buttons=[TIER_BUTTON, EARN_BUTTON])
            return topic_events(Topic.TIER)
        own = tier.name == follow_up.ref  # the tier the answer said the shopper holds
        lines = [f"{'Your ' if own else ''}{tier.name} perks:", *(f"• {perk}" for perk in tier_perks(program, tier))]
        if not own and tier.min_spend:
            lines.append(f"{tier.name} starts at {program.money(tier.min_spend)} of spend.")
        dispatcher.utter_message(text="\n".join(lines), buttons=[TIER_BUTTON, EARN_BUTTON])
        return topic_events(Topic.TIER, follow_up.ref or tier.name)


class GuestFollowUps(TopicFollowUps):
    """After a guest was told to link the chat or join: how to link it, how to join, what members get."""

    topic = Topic.GUEST

    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        program, shop = read_config(get_program), read_config(get_shop)
        if follow_up.kind == "join":
            dispatcher.utter_message(text=f"{join_text(program, shop)} Then link this chat to see your points here: "
                                          f"{how_to_link(shop)}")
        elif follow_up.kind == "perks":
            perks = "\n".join(f"• {tier.name}: " + "; ".join(tier_perks(program, tier)) for tier in program.tiers)
            dispatcher.utter_message(text=f"What members get, by tier:\n{perks}\n{join_text(program, shop)}")
        else:
            dispatcher.utter_message(text=how_to_link(shop))
        return topic_events(Topic.GUEST)


class ReferralClaimFollowUps(TopicFollowUps):
    """"So what discount do I get?" after giving a friend's code: the friend's offer as it stands."""

    topic = Topic.REFERRAL_CLAIM

    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        program, shop = read_config(get_program), read_config(get_shop)
        channel, sender_id = sender_of(tracker)

        def work(session: Session) -> Optional[ChatClaim]:
            return claim_of_sender(session, program, channel, sender_id, clock.now())

        claim = await with_store(work, write=True)  # an offer missing for a joined referral is issued
        if claim is None or claim.offer_code is None:
            dispatcher.utter_message(text="I can't find a friend's invitation on this chat. Send me your friend's "
                                          "referral code (10 letters and numbers) and I'll check it.")
            return topic_events(None)
        dispatcher.utter_message(text=friend_offer_text(program, shop, claim), buttons=[QUIZ_BUTTON])
        return topic_events(Topic.REFERRAL_CLAIM, claim.offer_code)


class ShortfallFollowUps(TopicFollowUps):
    """After "not enough points" (or a points answer naming the next reward): the cheapest reward, and the
    points and shopping still needed for the reward just discussed."""

    topic = Topic.SHORTFALL

    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        view = await with_store(load_member_view(*sender_of(tracker)))
        program = view.program
        if view.summary is None:
            dispatcher.utter_message(text=how_to_link(view.shop))
            return topic_events(Topic.GUEST)
        cheapest = program.rewards[0]
        reward = cheapest if follow_up.kind == "cheapest" else (program.reward(str(follow_up.ref)) or cheapest)
        gives = reward_gives(program, reward.kind, reward.value, reward.title)
        lead = f"Our cheapest reward is {gives}: it needs" if reward is cheapest else f"{gives[:1].upper()}{gives[1:]} needs"
        if reward.points <= view.summary.balance:
            dispatcher.utter_message(
                text=f"{lead} {reward.points:,} points and you have {view.summary.balance:,} — enough for it now.",
                buttons=[reward_button(program, reward)],
            )
        else:
            dispatcher.utter_message(text=shortfall_text(program, view, reward, lead), buttons=[EARN_BUTTON, REDEEM_BUTTON])
        return topic_events(Topic.SHORTFALL, reward.id)


@dataclass(frozen=True)
class SearchAnswer:
    head: str
    matches: Tuple[Match, ...] = ()
    shown: Optional[Tuple[str, ...]] = None  # the SKUs the answer shows as a new list (None: the earlier list stands)
    quiz: bool = False  # offer the quiz beside it


def _type_label(product_type: Optional[str], count: int = 2) -> str:
    return plural(product_type.replace("-", " "), count) if product_type else ("one" if count == 1 else "products")


class SearchFollowUps(TopicFollowUps):
    """After a search: "cheaper?", "bigger", "another colour", "the second one", "no, I meant the lamp" — read
    against the products it showed (bot.catalog.refine) and answered as a search is."""

    topic = Topic.SEARCH

    async def answer(self, follow_up: FollowUp, dispatcher: CollectingDispatcher, tracker: Tracker) -> Events:
        channel, sender_id = sender_of(tracker)
        skus = tuple(str(sku) for sku in follow_up.ref or ())
        entities: Dict[str, Any] = {}
        for entity in tracker.latest_message.get("entities") or []:
            if entity.get("entity") in SEARCH_ENTITIES and entity.get("value") is not None:
                entities.setdefault(entity["entity"], entity["value"])

        def work(session: Session) -> SearchAnswer:
            now = clock.now()
            snapshot = catalog_snapshot(session)
            customer = customer_for_sender(session, channel, sender_id)
            customer_id = customer.id if customer else None
            known = shopper_preferences(session, channel, sender_id, customer_id, search_quizzes(snapshot), now)
            previous = previous_search(session, channel, sender_id, now)
            shown = Shown(stored_criteria(previous.criteria if previous is not None else None), skus)
            refiner = Refiner(snapshot.search_index, shown, known.preferences)
            answer = self._refine(follow_up, refiner, entities)
            if answer.shown is not None:
                store_search(session, channel, sender_id, customer_id, follow_up.text, shown.criteria,
                             answer.matches, (), now)
            return answer

        answer = await with_store(work, write=True)
        program = read_config(get_program)
        log.info("catalog.refined", kind=follow_up.kind, found=len(answer.matches))
        buttons = [QUIZ_BUTTON] if answer.quiz or not answer.matches else []
        dispatcher.utter_message(text=answer.head, buttons=buttons)
        if answer.matches:
            dispatcher.utter_message(elements=[match_card(program, match) for match in answer.matches])
        return topic_events(Topic.SEARCH, list(answer.shown if answer.shown is not None else skus))

    def _refine(self, follow_up: FollowUp, refiner: Refiner, entities: Dict[str, Any]) -> SearchAnswer:
        kind = follow_up.kind
        if kind == "correction":
            return self._corrected(follow_up, refiner, entities)
        if not refiner.products:
            return SearchAnswer("Tell me what you're looking for first — like \"oak desk under $400\" — or answer a "
                                "few quick questions and I'll pick for you.", quiz=True)
        if kind == "pick":
            return self._picked(follow_up, refiner)
        product_type = refiner.product_type()
        if kind in ("cheaper", "pricier"):
            refinement = refiner.cheaper() if kind == "cheaper" else refiner.pricier()
            if refinement.matches:
                comparison = "Cheaper" if kind == "cheaper" else "Pricier"
                head = f"{comparison} {_type_label(refinement.widened_to or product_type)} in stock:"
                criteria = refiner.shown.criteria
                if refinement.widened_to and refinement.widened_to == product_type:
                    asked = " ".join(value for value in (criteria.colour, criteria.material) if value)
                    head = f"Nothing {kind} in {asked} — {head[0].lower()}{head[1:]}"
                elif refinement.widened_to:
                    head = (f"That's the {'cheapest' if kind == 'cheaper' else 'priciest'} "
                            f"{_type_label(product_type, 1)} I have — {head[0].lower()}{head[1:]}")
                return self._listed(head, refinement.matches)
            end = refinement.limit_reached
            assert end is not None
            extreme = "cheapest" if kind == "cheaper" else "priciest"
            return SearchAnswer(f"The {match_title(end)} at {program_money(end)} is already the {extreme} "
                                f"{_type_label(product_type, 1)} I have in stock.", quiz=True)
        if kind in ("bigger", "smaller"):
            refinement = refiner.sized(kind == "bigger")
            if refinement.matches:
                return self._listed(f"{kind.capitalize()}:", refinement.matches)
            if refinement.limit_reached is not None:
                return SearchAnswer(f"I don't have anything {kind} than the {match_title(refinement.limit_reached)} "
                                    f"in stock, I'm afraid.", quiz=True)
            if not refinement.measured:
                return SearchAnswer("I can't tell these apart by size from what I know — each product's page lists "
                                    "its dimensions.", quiz=True)
            return SearchAnswer(f"I don't have {_type_label(product_type)} {kind} than these in stock, I'm afraid.",
                                quiz=True)
        refinement = refiner.colours()
        if refinement.matches:
            head = "Other colours:" if refinement.result is None else f"Other {_type_label(product_type)} in other colours:"
            return self._listed(head, refinement.matches)
        return SearchAnswer(f"Those are the only colours I have in stock for {_type_label(product_type)} right now.",
                            quiz=True)

    @staticmethod
    def _listed(head: str, matches: Tuple[Match, ...]) -> SearchAnswer:
        return SearchAnswer(head, matches, tuple(match.variant.sku for match in matches))

    @staticmethod
    def _picked(follow_up: FollowUp, refiner: Refiner) -> SearchAnswer:
        position = positions_named(follow_up.words.split())
        if position is None and len(refiner.products) == 1:
            position = 0
        match = refiner.pick(position) if position is not None else None
        if match is None:
            titles = "; ".join(f"{number}. {title}" for number, title in enumerate(
                (match_title(refiner.pick(index)) for index in range(len(refiner.products))), start=1))
            return SearchAnswer(f"Which one do you mean? {titles}")
        description = match.item.description.strip()
        others = [variant.title for variant in match.item.variants
                  if variant.in_stock and variant.sku != match.variant.sku and variant.title != "Default"]
        lines = [f"The {match_title(match)}, {program_money(match)}." + (f" {description}" if description else "")]
        if others:
            lines.append("Also available: " + ", ".join(others) + ".")
        return SearchAnswer("\n".join(lines), (match,))

    def _corrected(self, follow_up: FollowUp, refiner: Refiner, entities: Dict[str, Any]) -> SearchAnswer:
        said = criteria_from(follow_up.text, entities, refiner.index.vocabulary)
        if said.product_type:
            among = refiner.shown_of_type(said.product_type)
            if among is not None:
                return self._picked(dataclasses.replace(follow_up, words=""), Refiner(
                    refiner.index, Shown(refiner.shown.criteria, (among.variant.sku,)), refiner.preferences))
        if not (said.product_type or said.colour or said.material or said.has_price):
            return SearchAnswer(SEARCH_NOT_UNDERSTOOD, quiz=True)
        result = search(refiner.corrected(said), refiner.index, refiner.preferences)
        if not result.matches:
            return SearchAnswer(f"{result.note or 'I could not find anything like that in stock right now.'} "
                                "Shall I help you choose with a few quick questions instead?", (), (), quiz=True)
        return SearchAnswer(matches_head(result), result.matches, tuple(match.variant.sku for match in result.matches))


def program_money(match: Match) -> str:
    return read_config(get_program).money(match.price)


FOLLOW_UPS: Mapping[Topic, TopicFollowUps] = {
    answerer.topic: answerer
    for answerer in (SearchFollowUps(), HandoffFollowUps(), TierFollowUps(), GuestFollowUps(), ReferralClaimFollowUps(),
                     ShortfallFollowUps())
}


class ActionFollowUp(StoreAction):
    """Runs after the action the rules chose handed the message over (FollowupAction)."""

    hands_over_follow_ups = False  # it is where follow-ups go

    def name(self) -> Text:
        return FOLLOW_UP_ACTION

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> Events:
        follow_up = read_follow_up(tracker)
        answerer = FOLLOW_UPS.get(follow_up.topic) if follow_up is not None else None
        if follow_up is None or answerer is None:
            # The thread moved on between the hand-over and now (it cannot, but a shopper must get an answer).
            dispatcher.utter_message(response=NOT_UNDERSTOOD)
            return topic_events(None)
        log.info("follow_up.answered", topic=follow_up.topic.value, kind=follow_up.kind)
        return await answerer.answer(follow_up, dispatcher, tracker)
