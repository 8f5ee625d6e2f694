"""action_search_products with real trackers against the seeded store: matches as cards, the closest
alternatives with a note and the quiz offer, earlier searches and quiz answers, and every search stored."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Dict, List, Optional

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.search import NOT_UNDERSTOOD, ActionSearchProducts
from bot.models import ProductSearch, QuizRun
from tests.actions.conftest import make_tracker, only_topic_events


async def _search(text: str, sender: str = "searcher", entities: Optional[Dict[str, str]] = None,
                  channel: str = "rest") -> List[Dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(sender, text, "product_search", channel=channel, entities=entities)
    assert only_topic_events(await ActionSearchProducts().run(dispatcher, tracker, {}))
    return dispatcher.messages


def _cards(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [element for message in messages for element in message.get("elements") or []]


def _texts(messages: List[Dict[str, Any]]) -> List[str]:
    return [message["text"] for message in messages if message.get("text")]


def _searches(database) -> List[ProductSearch]:
    with database.session() as session:
        found = session.execute(select(ProductSearch).order_by(ProductSearch.id)).scalars().all()
        session.expunge_all()
        return found


def _finished_quiz(database, sender: str, clock, answers: Dict[str, List[str]]) -> None:
    """A room-makeover quiz this sender finished at `clock` (what their searches may build on)."""
    with database.session(write=True) as session:
        session.add(QuizRun(
            quiz_id="room-makeover", channel="rest", sender_id=sender, status="completed", stage="done",
            answers=answers, pending=[], misses=0, results=[], relaxed=[], points_awarded=0,
            started_at=clock - timedelta(minutes=5), updated_at=clock, completed_at=clock,
        ))


async def test_the_issue_example_finds_the_oak_standing_desk_in_budget(demo_store) -> None:
    said = await _search("do you have standing desks under $400 in oak?",
                         entities={"product_type": "standing desks", "price_range": "under $400", "material": "oak"})
    assert _texts(said) == ["Here's what I found:"]
    [card] = _cards(said)
    assert card["title"] == "Rise standing desk — 120 × 70 cm"
    assert card["subtitle"] == "$389 · standing desk, oak, under $400"
    assert card["buttons"] == [{"title": "View product", "url": "https://oak-and-ember.example/products/rise-standing-desk",
                                "type": "web_url"}]
    [stored] = _searches(demo_store)
    assert stored.criteria["product_type"] == "standing-desk" and stored.criteria["max_price"] == "400"
    assert stored.results == ["OE-DK-001-120"] and stored.relaxed == [] and stored.text.startswith("do you have")


async def test_entities_the_model_missed_are_read_from_the_text(demo_store) -> None:
    said = await _search("have you got a sage couch", entities={})
    [first, *_] = _cards(said)
    assert first["title"] == "Harbour 3-seat sofa — Sage" and "sage" in first["subtitle"]


async def test_no_match_gives_the_closest_alternatives_with_a_note_and_the_quiz(demo_store) -> None:
    said = await _search("indigo sofa")  # the indigo Harbour is out of stock
    assert _texts(said)[0] == "Nothing in indigo right now — the closest:"
    cards = _cards(said)
    assert cards and all("Indigo" not in card["title"] for card in cards)
    assert said[-1]["buttons"] == [{"title": "Help me choose", "payload": "/start_quiz"}]
    [stored] = _searches(demo_store)
    assert stored.relaxed == ["colour"]


async def test_a_message_naming_nothing_the_shop_has_is_offered_the_quiz(demo_store) -> None:
    said = await _search("something nice for my auntie")
    assert _texts(said) == [NOT_UNDERSTOOD] and said[0]["buttons"] == [{"title": "Help me choose", "payload": "/start_quiz"}]
    assert _cards(said) == []
    assert _searches(demo_store)[0].results == []


async def test_a_follow_up_keeps_the_earlier_product_type(demo_store, clock) -> None:
    await _search("show me sofas", sender="follow")
    said = await _search("any in charcoal?", sender="follow")
    [first, *_] = _cards(said)
    assert first["title"] == "Harbour 3-seat sofa — Charcoal"
    # a day later, "in charcoal" stands on its own
    clock.advance(days=2)
    await _search("any in charcoal?", sender="follow")
    first_search, second, third = _searches(demo_store)
    assert second.criteria["product_type"] == "sofa" and third.criteria["product_type"] is None


async def test_quiz_answers_leave_out_what_the_shopper_ruled_out(demo_store, clock) -> None:
    _finished_quiz(demo_store, "quizzed", clock=clock.current, answers={
        "room": ["office"], "work-style": ["seated"], "materials": ["no-leather"],
        "extras": [], "budget": ["under-400"]})
    said = await _search("office chairs", sender="quizzed")
    assert _texts(said)[0] == "Here's what I found, with your quiz answers in mind (no leather, up to $400):"
    titles = [card["title"] for card in _cards(said)]
    assert titles and all("leather" not in title.lower() for title in titles)
    # someone who never said "no leather" sees the leather chair
    other = await _search("office chairs", sender="not-quizzed")
    assert any("leather" in card["title"].lower() for card in _cards(other))


async def test_the_quiz_budget_is_not_claimed_when_the_search_names_its_own_price(demo_store, clock) -> None:
    _finished_quiz(demo_store, "own-price", clock=clock.current, answers={
        "room": ["living"], "living-space": ["roomy"], "materials": [],
        "extras": [], "budget": ["under-150"]})
    said = await _search("sofas over $800", sender="own-price")
    assert "quiz" not in _texts(said)[0] and _cards(said)


async def test_an_absurd_price_is_searched_not_crashed_on(demo_store) -> None:
    said = await _search("sofas under $" + "9" * 29)
    assert _cards(said) and _texts(said)[0] == "Here are the 2 best matches:"


async def test_the_quiz_budget_is_not_claimed_for_matches_outside_it(demo_store, clock) -> None:
    _finished_quiz(demo_store, "over-budget", clock=clock.current, answers={
        "room": ["office"], "work-style": ["seated"], "materials": [],
        "extras": [], "budget": ["under-400"]})
    sofas = await _search("do you have a green couch?", sender="over-budget")  # the sofas all cost more
    assert _texts(sofas)[0] == "Here are the 2 best matches:"
    chairs = await _search("office chairs", sender="over-budget")  # $259 and $489: one is over
    assert _texts(chairs)[0] == "Here are the 2 best matches:"
    lamps = await _search("table lamps", sender="over-budget")
    assert _texts(lamps)[0].endswith(", with your quiz answers in mind (up to $400):")
