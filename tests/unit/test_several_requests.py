"""Several requests in one message: where a message is cut, and (with the trained model's NLU) which
messages are several requests and which are one request that happens to contain "and"."""
from __future__ import annotations

import asyncio
from typing import List

import pytest

from bot.several_requests import more_requests_note, might_hold_several, pieces, reading_of, split_requests


def _pieces(text: str) -> List[str]:
    return [text[piece.start:piece.end].strip() for piece in pieces(text)]


def test_messages_are_cut_at_the_words_that_join_requests_and_a_question_mark_stays_with_its_clause() -> None:
    assert _pieces("whats my balance and also do u ship to canada") == ["whats my balance", "do u ship to canada"]
    assert _pieces("what tier am i? how do i earn more") == ["what tier am i?", "how do i earn more"]
    assert _pieces("my points; then returns plus delivery") == ["my points", "returns", "delivery"]
    assert _pieces("no thanks. how do i track orders") == ["no thanks.", "how do i track orders"]
    assert _pieces("is the grandstand sofa $1,299.50 or less") == ["is the grandstand sofa $1,299.50 or less"]
    assert _pieces("points?") == ["points?"]


def test_button_presses_and_single_clauses_are_not_looked_at() -> None:
    assert not might_hold_several('/claim_social_follow{"social_network": "instagram"}')
    assert not might_hold_several("how many points do i have")
    assert might_hold_several("points and rewards?")


def test_faq_clauses_are_read_by_their_topic_and_only_as_sure_as_the_answer() -> None:
    parse = {"intent": {"name": "faq", "confidence": 0.97},
             "response_selector": {"faq": {"response": {"intent_response_key": "faq/shipping", "confidence": 0.4}}}}
    reading = reading_of(parse)
    assert (reading.intent, reading.confidence) == ("faq/shipping", 0.4)


def test_the_shopper_is_told_when_more_was_asked_than_answered() -> None:
    assert more_requests_note(["a b", "c d"]) is None
    note = more_requests_note(["whats my balance", "what tier am i", "do u ship to canada"])
    assert note == ("I answered the first two; ask me about the rest (“do u ship to canada”) on its own and "
                    "I'll answer that too.")


# ---------------------------------------------------------------- with the trained model's NLU

@pytest.fixture(scope="module")
def classify(nlu_agent):
    from rasa.core.channels.channel import UserMessage

    async def read(text: str):
        return reading_of(await nlu_agent.processor.parse_message(UserMessage(text)))

    return read


def _split(text: str, classify) -> List[str]:
    return asyncio.run(split_requests(text, classify))


@pytest.mark.parametrize(("message", "requests"), [
    ("whats my balance and also do u ship to canada", ["whats my balance", "do u ship to canada"]),
    ("how many points do i have and what tier am i", ["how many points do i have", "what tier am i"]),
    ("what tier am i? how do i earn more points", ["what tier am i?", "how do i earn more points"]),
    ("do u ship to canada plus whats ur return policy", ["do u ship to canada", "whats ur return policy"]),
    ("can i see my points history then tell me how to earn more",
     ["can i see my points history", "tell me how to earn more"]),
    ("whats my balance and whats ur returns policy and do u ship to canada",
     ["whats my balance", "whats ur returns policy", "do u ship to canada"]),
    ("hi! where is my order", ["hi!", "where is my order"]),
    ("thanks, bye", ["thanks", "bye"]),
    # a request that asks back (here: to confirm a handoff) comes last, so the next "yes" answers it
    ("whats my balance, can i talk to a human", ["whats my balance", "can i talk to a human"]),
    ("can I talk to a human? my parcel never came", ["my parcel never came", "can I talk to a human?"]),
])
def test_several_requests_are_found_in_order(classify, message, requests) -> None:
    assert _split(message, classify) == requests


@pytest.mark.parametrize("message", [
    "black and white lamp",
    "points and rewards?",
    "do you have black and white lamps",
    "oak and walnut desks under 400",
    "i want a desk and a chair",
    "i followed you on insta and tiktok",
    "i stand most of the day and need something comfy",
    "bonjour, ou est ma commande ?",
])
def test_one_request_with_and_in_it_stays_whole(classify, message) -> None:
    assert _split(message, classify) == [message]
