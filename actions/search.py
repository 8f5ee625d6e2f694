"""product_search: "do you have standing desks under $400 in oak?" → the best in-stock matches as cards,
or the closest ones with a note, or the offer of the quiz. Each search is stored (what people look for is
worth knowing, and "and in green?" builds on it)."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.cards import product_card
from actions.common import StoreAction, read_config, sender_of, with_store
from actions.thread import Topic, topic_events
from bot import clock
from bot.catalog.preferences import previous_search, shopper_preferences
from bot.catalog.search import Match, SearchCriteria, SearchResult, criteria_from, search
from bot.catalog.snapshot import CatalogSnapshot, catalog_snapshot, quizzes_for
from bot.config_files import ConfigError
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, get_program
from bot.models import ProductSearch
from bot.quiz.definition import Quiz
from bot.settings import get_settings

log = get_logger(__name__)

ENTITIES = ("product_type", "price_range", "colour", "material")
MAX_TEXT_CHARS = 500  # what is kept of the message with the search
QUIZ_BUTTON = {"title": "Help me choose", "payload": "/start_quiz"}
NOT_UNDERSTOOD = (
    "I couldn't tell what you're looking for. Try a kind of product with a colour, material or budget — "
    "like \"oak desk under $400\" — or answer a few quick questions and I'll pick for you."
)


def with_earlier_type(criteria: SearchCriteria, earlier: Optional[ProductSearch]) -> Tuple[SearchCriteria, bool]:
    """"And in green?" after "show me sofas": a search that names only a colour, material or price keeps
    the product type of the conversation's previous search."""
    if criteria.product_type is not None or earlier is None:
        return criteria, False
    if criteria.colour is None and criteria.material is None and not criteria.has_price:
        return criteria, False
    earlier_type = (earlier.criteria or {}).get("product_type")
    if not isinstance(earlier_type, str):
        return criteria, False
    return dataclasses.replace(criteria, product_type=earlier_type), True


def match_title(match: Match) -> str:
    variant = match.variant.title
    return match.item.title if not variant or variant == "Default" else f"{match.item.title} — {variant}"


def match_card(program: Program, match: Match) -> Dict[str, Any]:
    return product_card(program, match_title(match), match.price, [", ".join(match.why)], match.item.url,
                        match.item.image_url)


def matches_head(result: SearchResult) -> str:
    """The line above the cards: what was relaxed, or how many were found."""
    count = len(result.matches)
    return result.note or ("Here's what I found:" if count == 1 else f"Here are the {count} best matches:")


def search_quizzes(snapshot: CatalogSnapshot) -> Dict[str, Quiz]:
    """The quizzes whose answers a search builds on; a broken quiz file must not stop search: it only loses
    the quiz hints."""
    try:
        return quizzes_for(snapshot, get_settings().quizzes_dir)
    except ConfigError as error:
        log.error("config.invalid", error=str(error))
        return {}


def store_search(session: Session, channel: str, sender_id: str, customer_id: Optional[int], text: str,
                 criteria: SearchCriteria, matches: Sequence[Match], relaxed: Sequence[str], now: datetime) -> None:
    """Keep what was looked for and shown: worth knowing, and what the next message builds on."""
    session.add(ProductSearch(
        channel=channel, sender_id=sender_id, customer_id=customer_id, text=text[:MAX_TEXT_CHARS],
        criteria=criteria.as_dict(), results=[match.variant.sku for match in matches], relaxed=list(relaxed),
        created_at=now,
    ))


class ActionSearchProducts(StoreAction):
    apology = "Sorry — I can't search the catalog right now. Please try again in a few minutes."

    def name(self) -> Text:
        return "action_search_products"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        text = str(tracker.latest_message.get("text") or "")[:MAX_TEXT_CHARS]
        entities: Dict[str, Any] = {}
        for entity in tracker.latest_message.get("entities") or []:
            if entity.get("entity") in ENTITIES and entity.get("value") is not None:
                entities.setdefault(entity["entity"], entity["value"])

        def work(session: Session) -> Tuple[SearchResult, Tuple[str, ...], bool]:
            now = clock.now()
            snapshot = catalog_snapshot(session)
            quizzes = search_quizzes(snapshot)
            customer = customer_for_sender(session, channel, sender_id)
            known = shopper_preferences(session, channel, sender_id, customer.id if customer else None, quizzes, now)
            criteria = criteria_from(text, entities, snapshot.search_index.vocabulary)
            criteria, carried = with_earlier_type(criteria, previous_search(session, channel, sender_id, now))
            result = search(criteria, snapshot.search_index, known.preferences)
            store_search(session, channel, sender_id, customer.id if customer else None, text, result.criteria,
                         result.matches, result.relaxed, now)
            # The quiz's budget only ranks: it is mentioned when every match keeps to it and the message names
            # no price of its own (otherwise the headline would contradict the cards).
            preferences = known.preferences
            within = all(
                (preferences.max_price is None or match.price <= preferences.max_price)
                and (preferences.min_price is None or match.price >= preferences.min_price)
                for match in result.matches
            )
            said = known.exclusions_said + (known.budget_said if within and not criteria.has_price else ())
            return result, said, carried

        result, quiz_said, carried = await with_store(work, write=True)
        program = read_config(get_program)
        log.info("catalog.search", understood=result.understood, found=len(result.matches),
                 relaxed=list(result.relaxed), carried_type=carried)
        # Whatever was found, the next message may refine or correct it ("cheaper?", "no, I meant the lamp").
        shown = topic_events(Topic.SEARCH, [match.variant.sku for match in result.matches])
        if not result.understood:
            dispatcher.utter_message(text=NOT_UNDERSTOOD, buttons=[QUIZ_BUTTON])
            return shown
        if not result.matches:
            note = result.note or "I couldn't find anything like that in stock right now."
            dispatcher.utter_message(text=f"{note} Shall I help you choose with a few quick questions instead?",
                                     buttons=[QUIZ_BUTTON])
            return shown
        head = matches_head(result)
        if quiz_said and not result.relaxed:
            head = f"{head[:-1]}, with your quiz answers in mind ({', '.join(quiz_said)}):"
        dispatcher.utter_message(text=head)
        dispatcher.utter_message(elements=[match_card(program, match) for match in result.matches])
        if result.relaxed:
            dispatcher.utter_message(text="Not quite it? I can help you choose with a few quick questions.",
                                     buttons=[QUIZ_BUTTON])
        return shown
