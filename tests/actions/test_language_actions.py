"""A shopper who writes in another language: the answers in that language (domain.yml, rendered by Rasa's
own response generator) and the handoff that records the language for the merchant."""
from __future__ import annotations

from typing import Any, Dict, Optional

import pytest
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.feedback import ActionSubmitFeedback
from actions.handoff import ActionRequestHandoff
from bot.languages import ANSWERED_LANGUAGES, detect_language, yes_or_no
from bot.models import HandoffRequest, Transcript
from bot.settings import PROJECT_ROOT
from tests.actions.conftest import make_tracker

SPANISH_HISTORY = [
    {"event": "user", "text": "hola, quiero devolver una silla", "timestamp": 1_789_999_990.0,
     "parse_data": {"intent": {"name": "other_language"}, "entities": [{"entity": "language", "value": "es"}]}},
    {"event": "bot", "text": "Lo siento, por ahora solo hablo inglés. ¿Quiere que pase esta conversación…",
     "timestamp": 1_789_999_991.0, "data": {"buttons": [{"title": "Sí, por favor", "payload": "/affirm"}]}},
]


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT_ROOT / "domain.yml"))


async def _render(domain: Domain, response: str, language: Optional[str], **values: Any) -> Dict[str, Any]:
    tracker = DialogueStateTracker.from_events("shopper", [SlotSet("shopper_language", language)], domain.slots)
    rendered = await TemplatedNaturalLanguageGenerator(domain.responses).generate(
        response, tracker, "rest", **values)
    assert rendered is not None
    return rendered


@pytest.mark.parametrize("language", sorted(ANSWERED_LANGUAGES))
async def test_each_answer_is_in_the_shoppers_language_and_its_buttons_answer_the_offer(
        domain: Domain, language: str) -> None:
    offer = await _render(domain, "utter_other_language", language)
    said, in_english = offer["text"].split("\n\n")
    assert getattr(detect_language(said), "language", None) == language, said
    assert "English" in in_english and detect_language(in_english) is None
    yes, no = offer["buttons"]
    assert (yes["payload"], no["payload"]) == ("/affirm", "/deny")
    # Instagram shows at most 20 characters a button; typing a button's title means what tapping it does.
    assert all(len(button["title"]) <= 20 for button in offer["buttons"])
    assert (yes_or_no(yes["title"]), yes_or_no(no["title"])) == (True, False)

    declined = (await _render(domain, "utter_other_language_declined", language))["text"]
    assert getattr(detect_language(declined), "language", None) == language, declined
    done = (await _render(domain, "utter_handoff_requested_in_language", language, request_id=42))["text"]
    assert "42" in done and getattr(detect_language(done), "language", None) == language, done


async def test_a_language_without_texts_gets_the_english_answer(domain: Domain) -> None:
    offer = await _render(domain, "utter_other_language", "ru")
    assert offer["text"].startswith("Sorry, I only understand English for now.")
    assert [button["title"] for button in offer["buttons"]] == ["Yes, please", "No, thanks"]


async def test_the_handoff_records_the_language_and_says_it_is_done_in_it_first(demo_store) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("guest-es", "/affirm", "affirm", history=SPANISH_HISTORY, slots={"shopper_language": "es"})
    await ActionRequestHandoff().run(dispatcher, tracker, {})
    in_spanish, details = dispatcher.messages
    assert in_spanish["response"] == "utter_handoff_requested_in_language"
    request_id = in_spanish["request_id"]
    assert f"request #{request_id}" in details["text"] and "within one business day" in details["text"]
    with demo_store.session() as session:
        request = session.get(HandoffRequest, request_id)
        transcript = session.get(Transcript, request.transcript_id)
        assert (request.language, transcript.language) == ("es", "es")
        assert transcript.turns[0]["text"] == "hola, quiero devolver una silla"
        assert request.last_messages[1]["text"].startswith("Lo siento")


async def test_an_english_conversation_records_no_language_and_another_script_its_code(demo_store) -> None:
    english = CollectingDispatcher()
    await ActionRequestHandoff().run(english, make_tracker("guest-en", "yes pls", "affirm"), {})
    russian = CollectingDispatcher()
    in_russian = [{"event": "user", "text": "где мой заказ", "parse_data": {"intent": {"name": "other_language"}}}]
    await ActionRequestHandoff().run(russian, make_tracker("guest-ru", "/affirm", "affirm", history=in_russian,
                                                           slots={"shopper_language": "ru"}), {})
    # No texts in Russian: the English confirmation only.
    assert len(english.messages) == 1 and len(russian.messages) == 1
    with demo_store.session() as session:
        languages = dict(session.execute(select(HandoffRequest.sender_id, HandoffRequest.language)).all())
    assert languages == {"guest-en": None, "guest-ru": "ru"}


async def test_a_shopper_who_went_on_in_english_is_english_for_the_team(demo_store) -> None:
    """"hola", then English: the slot still says Spanish, but the shopper writes English now."""
    history = [
        {"event": "user", "text": "hola", "parse_data": {"intent": {"name": "other_language"}}},
        {"event": "bot", "text": "Lo siento, por ahora solo hablo inglés."},
        {"event": "user", "text": "lol jk im english, can i talk to a human",
         "parse_data": {"intent": {"name": "human_handoff"}}},
        {"event": "bot", "text": "Would you like me to pass this conversation to a person on our team?"},
    ]
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("guest-hola", "yes", "affirm", history=history, slots={"shopper_language": "es"})
    await ActionRequestHandoff().run(dispatcher, tracker, {})
    [message] = dispatcher.messages
    assert message["text"].startswith("Done")
    with demo_store.session() as session:
        [request] = session.execute(select(HandoffRequest)).scalars().all()
        assert request.language is None and session.get(Transcript, request.transcript_id).language is None


async def test_feedback_keeps_the_conversations_language_on_its_transcript(demo_store) -> None:
    slots = {"shopper_language": "fr", "feedback_kind": "csat", "feedback_score": 4, "feedback_comment": "bien"}
    tracker = make_tracker("guest-fr", "la livraison était trop lente", "other_language", slots=slots)
    await ActionSubmitFeedback().run(CollectingDispatcher(), tracker, {})
    with demo_store.session() as session:
        [transcript] = session.execute(select(Transcript)).scalars().all()
    assert (transcript.reason, transcript.language) == ("feedback", "fr")
