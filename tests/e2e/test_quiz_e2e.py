"""Discovery with the trained model and the real action server: the quiz by buttons and by typing,
interrupted and resumed; catalog search; FAQ and the brand story."""
from __future__ import annotations

import uuid
from typing import Dict, List

import pytest
from sqlalchemy import select

from tests.e2e.test_conversations import Conversation

pytestmark = pytest.mark.e2e


def _guest() -> str:
    return f"quiz-{uuid.uuid4().hex[:8]}"


def _texts(replies: List[dict]) -> List[str]:
    return [reply["text"] for reply in replies if reply.get("text")]


def _buttons(replies: List[dict]) -> Dict[str, str]:
    return {button["title"]: button["payload"] for reply in replies for button in reply.get("buttons") or []
            if button.get("payload")}


def _question(replies: List[dict]) -> str:
    """The last question asked, without the line under it saying how to answer."""
    return [text for text in _texts(replies) if text.startswith("(")][-1].splitlines()[0]


def _card_lines(replies: List[dict]) -> List[str]:
    """Product cards as the plain output channel sends them: "title : subtitle" (each card one message)."""
    return [text for text in _texts(replies) if " : $" in text]


class QuizShopper(Conversation):
    """Taps buttons by their title, as the widget and Telegram do (the payload is sent)."""

    last: List[dict] = []

    async def send(self, text: str) -> List[dict]:
        self.last = await self.say(text)
        assert self.last, f"no reply to {text!r}"
        return self.last

    async def tap(self, title: str) -> List[dict]:
        buttons = _buttons(self.last)
        assert title in buttons, f"no button {title!r} in {list(buttons)}"
        return await self.send(buttons[title])


def _run(e2e_env, sender: str):
    from bot.db import Database
    from bot.models import QuizRun
    from bot.settings import Settings

    database = Database(Settings.from_env(e2e_env).database_url)
    try:
        with database.session() as session:
            runs = session.execute(select(QuizRun).where(QuizRun.sender_id == sender).order_by(QuizRun.id)).scalars().all()
            session.expunge_all()
            return runs
    finally:
        database.dispose()


async def test_a_quiz_completed_by_buttons_recommends_products_with_reasons(agent, e2e_env) -> None:
    sender = _guest()
    chat = QuizShopper(agent, sender)
    opening = await chat.send("help me choose")
    assert _question(opening) == "(1/5) Which room are we making over?"
    await chat.tap("Home office")
    await chat.tap("Standing desk")
    await chat.tap("Oak")
    await chat.tap("Done")
    await chat.tap("Just the main piece")
    await chat.tap("Done")
    results = await chat.tap("Up to $1,000")
    cards = _card_lines(results)
    assert len(cards) == 3 and cards[0].startswith("Rise standing desk : $389 · because you said: a standing desk")
    assert _texts(results)[0] == "Here are my top 3 picks for you:"
    closing = await chat.tap("No thanks")
    assert _texts(closing)[-1].startswith("Anything else?")
    [run] = _run(e2e_env, sender)
    assert run.status == "completed" and run.results[0]["sku"] == "OE-DK-001"
    # after the quiz the conversation is back to normal
    await chat.send("what tier am i in")
    assert (await chat.intent_and_action())[1] == "action_check_tier"


async def test_typed_answers_an_interruption_and_resuming_later(agent, e2e_env) -> None:
    sender = _guest()
    chat = QuizShopper(agent, sender)
    await chat.send("which chair suits me?")
    asked = await chat.send("it's for the dining room")
    assert _question(asked) == "(2/5) How many do you usually seat?"
    # a question of another kind mid-quiz is answered, then the quiz question comes back
    aside = await chat.send("how many points do I have?")
    assert any("linked to this chat" in text for text in _texts(aside))
    assert _question(aside) == "(2/5) How many do you usually seat?"
    await chat.send("usually six of us")
    paused = await chat.send("stop the quiz")
    assert _texts(paused)[-1].startswith("Okay, I've stopped the quiz")
    await chat.send("thanks")
    assert (await chat.intent_and_action()) == ("thank_you", "action_you_are_welcome")
    resumed = await chat.send("continue the quiz")
    assert _texts(resumed)[0].startswith("Welcome back!")
    assert _texts(resumed)[-1].startswith("(3/5) Which materials do you love?")
    await chat.send("walnut please")
    await chat.send("done")
    noted = await chat.send("nothing else")  # the option "Just the main piece"
    assert "So far: Just the main piece." in _texts(noted)[-1]
    await chat.send("done")
    results = await chat.send("no limit")
    assert _card_lines(results)[0].startswith("Long walnut dining table : $1,450 · because you said:")
    [run] = _run(e2e_env, sender)
    assert run.answers["dining-size"] == ["many"] and run.answers["materials"] == ["walnut"]


async def test_an_unclear_answer_is_reasked_then_skip_is_offered(agent) -> None:
    chat = QuizShopper(agent, _guest())
    await chat.send("take the quiz")
    for _ in range(2):
        again = await chat.send("purple elephants")
        assert _question(again) == "(1/5) Which room are we making over?"
    offer = await chat.send("zebra crossing")
    assert {"Skip question", "Stop quiz"} <= set(_buttons(offer))
    skipped = await chat.tap("Skip question")
    assert _question(skipped) == "(2/5) How much room is there?"


async def test_search_faq_and_brand(agent, e2e_env) -> None:
    sender = _guest()
    chat = QuizShopper(agent, sender)
    found = await chat.send("do you have standing desks under $400 in oak?")
    assert _texts(found)[0] == "Here's what I found:"
    assert _card_lines(found) == ["Rise standing desk — 120 × 70 cm : $389 · standing desk, oak, under $400"]
    sofas = await chat.send("show me sofas")
    assert _card_lines(sofas) and all("sofa" in line.lower() or "loveseat" in line.lower() for line in _card_lines(sofas))
    charcoal = await chat.send("any in charcoal?")  # keeps "sofa" from the search before
    assert _card_lines(charcoal)[0].startswith("Harbour 3-seat sofa — Charcoal : $1,290")
    nothing = await chat.send("have you got a purple hammock")
    assert "Help me choose" in _buttons(nothing)
    shipping = await chat.send("how long will delivery take to my house?")
    assert "business days" in _texts(shipping)[0]
    assert (await chat.intent_and_action())[0] == "faq"
    brand = await chat.send("tell me about your brand")
    assert "Our mission:" in _texts(brand)[0]


def _wait_for(chat, before: int, expected: str) -> List[dict]:
    """The messages sent since `before`, once one contains `expected` (replies come as several messages)."""
    import time

    from tests.e2e.test_telegram_e2e import REPLY_TIMEOUT_SECONDS, texts

    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        sent = chat.sent()[before:]
        if expected in texts(sent):
            return sent
        time.sleep(0.2)
    raise AssertionError(f"no {expected!r} in {chat.sent()[before:]}")


def test_the_quiz_on_telegram_runs_on_inline_buttons(rasa_server, e2e_env, platform_fakes) -> None:
    from tests.e2e.test_telegram_e2e import TelegramChat, texts

    chat = TelegramChat(e2e_env, platform_fakes)

    def keyboard(messages: List[dict]) -> Dict[str, str]:
        return {button["text"]: button.get("callback_data", "") for message in messages
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for button in row}

    def press(title: str, messages: List[dict], expected: str) -> List[dict]:
        buttons = keyboard(messages)
        assert title in buttons, buttons
        before = len(chat.sent())
        status, body = chat.post(chat.press_update(buttons[title]))
        assert status == 200 and body["processed"] is True
        return _wait_for(chat, before, expected)

    before = len(chat.sent())
    status, _ = chat.post(chat.message_update("help me choose"))
    assert status == 200
    messages = _wait_for(chat, before, "(1/5) Which room are we making over?")
    messages = press("Home office", messages, "(2/5) How do you like to work?")
    messages = press("Seated all day", messages, "(3/5) Which materials")
    messages = press("None of these", messages, "(4/5) Anything else")
    messages = press("None of these", messages, "(5/5) What would you like to spend")
    results = press("Up to $400", messages, "Task office chair")
    assert "Here are my top 3 picks for you:" in texts(results)
