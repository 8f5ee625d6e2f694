"""subscribe / unsubscribe on real trackers: the choice is recorded per chat with its words, and the outbox
(routing, then the Telegram sender) sends nothing to a chat that unsubscribed."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.loyalty import ActionCheckPoints
from actions.messages import ActionSubscribe, ActionUnsubscribe
from bot.consent import may_message
from bot.identity import create_customer, link_identity
from bot.models import MessageConsent, OutboundMessage
from bot.notices import queue_notice
from bot.privacy import export_customer_data
from tests.actions.conftest import make_tracker
from bot.outbox.service import route_due
from tests.unit.test_telegram_notices import ANY_TIME, LAMP, Server, _shut, _start

CHAT, OTHER_CHAT = "5550001", "5550002"


async def _say(action, sender: str, text: str, intent: str, channel: str) -> dict:
    dispatcher = CollectingDispatcher()
    assert await action.run(dispatcher, make_tracker(sender, text, intent, channel=channel), {}) == []
    [message] = dispatcher.messages
    return message


@pytest.fixture()
async def telegram(tmp_path: Path, demo_store) -> AsyncIterator[Server]:
    """The Telegram channel with its notice delivery on the same store the actions use, against a fake Bot API."""
    running = await _start(tmp_path, demo_store, notice_interval=3600)
    yield running
    await _shut(running)


def _telegram_customer(store, chat: str, email: str) -> int:
    with store.session(write=True) as session:
        customer = create_customer(session, email, first_name="Mia")
        link_identity(session, customer.id, "telegram", chat)
        return customer.id


def _notice(store, customer_id: int, text: str, key: str) -> int:
    from bot import clock

    with store.session(write=True) as session:
        return queue_notice(session, customer_id, "review_approved", text, key, clock.now()).id


def _route(store) -> None:
    """What the web app's scheduler does (bot/outbox/): give the due messages a chat."""
    from bot import clock

    with store.session(write=True) as session:
        route_due(session, ANY_TIME, clock.now())


async def test_an_unsubscribed_telegram_shopper_is_sent_no_notice_until_they_subscribe_again(
        telegram: Server, demo_store) -> None:
    mia = _telegram_customer(demo_store, CHAT, "mia@example.com")
    other = _telegram_customer(demo_store, OTHER_CHAT, "noor@example.com")

    reply = await _say(ActionUnsubscribe(), CHAT, "pls stop sending me msgs", "unsubscribe", "telegram")
    assert reply["text"].startswith("Done — I won't send you messages on my own here on Telegram any more")
    assert "This is for this chat only" in reply["text"]
    assert [b["payload"] for b in reply["buttons"]] == ["/subscribe"]

    held = _notice(demo_store, mia, LAMP, "lamp-mia")
    _notice(demo_store, other, "Your photo was approved", "photo-noor")
    _route(demo_store)
    assert await telegram.channel.notices.run_once() == 1
    assert telegram.sent() == [(OTHER_CHAT, "Your photo was approved")]  # only the shopper who did not say stop
    with demo_store.session() as session:
        held_row = session.get(OutboundMessage, held)
        assert (held_row.status, held_row.reason, held_row.channel) == ("skipped", "unsubscribed", None)

    # Asked in the conversation, the news is still told: the shopper wrote first.
    dispatcher = CollectingDispatcher()
    await ActionCheckPoints().run(dispatcher, make_tracker(CHAT, "my points?", "check_points", channel="telegram"), {})
    assert dispatcher.messages[0]["text"] == LAMP

    reply = await _say(ActionSubscribe(), CHAT, "ok you can message me again", "subscribe", "telegram")
    assert reply["text"].startswith("You're subscribed: I'll message you here on Telegram")
    _notice(demo_store, mia, "Your friend's order earned you 500 points", "referral-mia")
    _route(demo_store)
    assert await telegram.channel.notices.run_once() == 1
    assert telegram.sent()[-1] == (CHAT, "Your friend's order earned you 500 points")


async def test_the_choice_is_recorded_per_chat_with_time_source_and_words(demo_store, clock) -> None:
    await _say(ActionUnsubscribe(), "alice", "unsubscribe me from everything", "unsubscribe", "rest")
    again = await _say(ActionUnsubscribe(), "alice", "stop messaging me!!", "unsubscribe", "rest")
    assert again["text"].startswith("You're already unsubscribed in this chat")
    await _say(ActionSubscribe(), "alice", "actually sign me up again", "subscribe", "rest")
    with demo_store.session() as session:
        rows = session.execute(select(MessageConsent).order_by(MessageConsent.id)).scalars().all()
        assert [(r.channel, r.sender_id, r.customer_id, r.status, r.source, r.words) for r in rows] == [
            ("rest", "alice", 1, "unsubscribed", "chat", "unsubscribe me from everything"),
            ("rest", "alice", 1, "subscribed", "chat", "actually sign me up again"),
        ]
        assert all(r.recorded_at == clock.current for r in rows)
        exported = export_customer_data(session, 1, now=clock.current)["message_consents"]  # a data request shows them
        assert [row["status"] for row in exported] == ["unsubscribed", "subscribed"]
        assert may_message(session, "cmdline", "alice")  # rasa shell shares the REST chat
        assert may_message(session, "telegram", "alice")  # another channel is another chat


async def test_a_guest_can_subscribe_and_is_told_linking_brings_points_news(demo_store) -> None:
    reply = await _say(ActionSubscribe(), "guest-91", "send me updates", "subscribe", "widget")
    assert reply["text"].startswith("You're subscribed: I'll message you in this chat on our website")
    assert "need your rewards account linked to this chat" in reply["text"]
    with demo_store.session() as session:
        assert session.execute(select(MessageConsent.customer_id)).scalar_one() is None
