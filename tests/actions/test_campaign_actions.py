"""A campaign's poll and buttons answered in chat, on real trackers against the demo store: the poll goes out
through the outbox and the fake Telegram Bot API with its option buttons; a tap (the button's payload's
entities) or a typed answer (mapped to the same payload before NLU by bot.rasa_hooks) records the answer and
credits the bonus once; a message button ("Redeem") records the tap, credits once, and still does what it says."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Dict, List, Optional

import pytest
from rasa.core.channels.channel import UserMessage
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.campaigns import NOT_OPEN, ActionAnswerPoll
from actions.rewards import ActionOfferReward
from bot.campaigns.service import create_campaign, responses, send_campaign
from bot.identity import create_customer, link_identity
from bot.loyalty.earning import Credit, award
from bot.loyalty.program import get_program
from bot.models import LedgerEntry
from bot.outbox.service import route_due
from bot.rasa_hooks import poll_answer_in
from tests.unit.test_telegram_notices import ANY_TIME, Server, _shut, _start

CHAT = "5551001"
NOON = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def tracker(text: str, intent: str, entities: Dict[str, Any], metadata: Optional[Dict[str, Any]] = None) -> Tracker:
    """A tracker as the action server gets it after the shopper's message (a button's payload's entities)."""
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0},
              "entities": [{"entity": name, "value": value} for name, value in entities.items()],
              "metadata": metadata or {}}
    events = [{"event": "user", "text": text, "parse_data": latest, "input_channel": "telegram",
               "metadata": metadata or {}, "timestamp": 1_790_000_000.0}]
    return Tracker(CHAT, {}, latest, events, False, None, {}, "action_listen")


async def run(action: Any, said: Tracker) -> List[str]:
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, said, {})
    return [message.get("text") for message in dispatcher.messages]


@pytest.fixture()
async def telegram(tmp_path: Path, demo_store: Any, clock: Any) -> AsyncIterator[Server]:
    clock.at(NOON)
    running = await _start(tmp_path, demo_store, notice_interval=3600)
    yield running
    await _shut(running)


def _customer(store: Any, points: int = 0) -> int:
    with store.session(write=True) as session:
        customer = create_customer(session, "mia@example.com", first_name="Mia")
        link_identity(session, customer.id, "telegram", CHAT)
        if points:
            award(session, get_program(), customer.id, Credit("custom", points, "Start", "start"), NOON)
        return customer.id


def _sent(store: Any, customer_id: int, **options: Any) -> int:
    program = get_program()
    with store.session(write=True) as session:
        campaign = create_campaign(session, program, audience={"customer_ids": [customer_id]}, now=NOON,
                                   holdout_percent=0, **options)
        send_campaign(session, program, campaign.id, NOON)
        route_due(session, ANY_TIME, NOON)
        return campaign.id


def _bonus_entries(store: Any) -> List[int]:
    with store.session() as session:
        return list(session.execute(select(LedgerEntry.points).where(LedgerEntry.source == "campaign")).scalars())


async def test_a_poll_tapped_in_telegram_is_recorded_and_pays_its_bonus_once(telegram: Server, demo_store: Any) -> None:
    member = _customer(demo_store)
    poll = _sent(demo_store, member, name="More of", kind="poll", text="{first_name}, what should we do more of?",
                 options=["Free shipping", "New colours"], bonus_points=30)
    assert await telegram.channel.notices.run_once() == 1
    [sent] = telegram.api.called("sendMessage")
    assert sent["text"] == "Mia, what should we do more of?"
    markup = sent["reply_markup"] if isinstance(sent["reply_markup"], dict) else json.loads(sent["reply_markup"])
    payloads = [button["callback_data"] for row in markup["inline_keyboard"] for button in row]
    assert payloads == [f'/answer_poll{{"campaign":{poll},"poll_option":1}}',
                        f'/answer_poll{{"campaign":{poll},"poll_option":2}}']

    tap = {"campaign": poll, "poll_option": 2}
    assert await run(ActionAnswerPoll(), tracker(payloads[1], "answer_poll", tap)) == [
        "Thanks — noted: New colours. 30 bonus points are on your account."]
    assert await run(ActionAnswerPoll(), tracker(payloads[1], "answer_poll", tap)) == [
        "Thanks — I've changed your answer to New colours."]  # the double tap: no second bonus
    assert _bonus_entries(demo_store) == [30]
    assert await run(ActionAnswerPoll(), tracker("/answer_poll", "answer_poll", {"campaign": poll + 99,
                                                                                  "poll_option": 1})) == [NOT_OPEN]


async def test_a_typed_answer_becomes_the_polls_payload_and_is_recorded(telegram: Server, demo_store: Any) -> None:
    member = _customer(demo_store)
    poll = _sent(demo_store, member, name="More of", kind="poll", text="What should we do more of?",
                 options=["Free shipping", "New colours"])
    assert await telegram.channel.notices.run_once() == 1
    no_agent = SimpleNamespace(processor=None)
    other = await poll_answer_in(no_agent, UserMessage("what are my points?", sender_id=CHAT, input_channel="telegram"))
    assert other.text == "what are my points?"  # not an option: answered as usual
    typed = await poll_answer_in(no_agent, UserMessage("free shipping please", sender_id=CHAT,
                                                       input_channel="telegram"))
    assert typed.text == f'/answer_poll{{"campaign":{poll},"poll_option":1}}'
    assert typed.metadata == {"typed_answer": "free shipping please"}

    said = tracker(typed.text, "answer_poll", {"campaign": poll, "poll_option": 1}, typed.metadata)
    assert await run(ActionAnswerPoll(), said) == ["Thanks — noted: Free shipping."]
    with demo_store.session() as session:
        [answer] = responses(session, poll)
        assert (answer.option, answer.typed, answer.channel) == (1, "free shipping please", "telegram")
    answered = await poll_answer_in(no_agent, UserMessage("new colours", sender_id=CHAT, input_channel="telegram"))
    assert answered.text == "new colours"  # answered: no longer an open poll


async def test_a_message_button_records_the_tap_pays_once_and_does_what_it_says(telegram: Server,
                                                                                demo_store: Any) -> None:
    member = _customer(demo_store, points=600)
    offer = _sent(demo_store, member, name="Spend", text="{first_name}, {balance} points to spend",
                  buttons=["redeem"], bonus_points=15)
    assert await telegram.channel.notices.run_once() == 1
    tap = tracker(f'/redeem_reward{{"campaign":{offer}}}', "redeem_reward", {"campaign": offer})
    said = await run(ActionOfferReward(), tap)
    assert said[0] == "Thanks for stopping by — 15 bonus points are on your account."
    assert len(said) >= 2  # and the redeem answer itself
    again = await run(ActionOfferReward(), tap)
    assert not any("bonus" in (text or "") for text in again)
    assert _bonus_entries(demo_store) == [15]
    with demo_store.session() as session:
        [tapped] = responses(session, offer)
        assert tapped.option == 1
