"""The outbox's Instagram sender (channels/instagram/outbox.py) against the fake Graph API and a real database:
inside the 24-hour window the message goes out untagged; outside it, it waits for the shopper's next message
(and goes out before the reply) or moves to another of the shopper's chats; Meta's own "outside of allowed
window" answer is treated the same."""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Optional

import pytest

from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.models import OutboundMessage
from bot.outbox.service import WINDOW_REASON, enqueue, route_due
from channels.instagram.inbound import InstagramInput
from tests.fakes.graph_api import OUTSIDE_WINDOW_ERROR, FakeGraphApi
from tests.unit.test_instagram_channel import (
    ACCESS_TOKEN, SHOPPER, Clock, FlakyState, Harness, Recorder, Sleeps, _serve, _stop, echo_reply, fixture,
    instagram_env,
)
from tests.unit.test_telegram_notices import ANY_TIME

__all__ = ["instagram_env"]  # the fixture, shared with the channel's tests

DAY = 24 * 60 * 60


class Outbox:
    def __init__(self, harness: Harness, database: Database, clock: Any) -> None:
        self.harness, self.database, self.clock = harness, database, clock

    def customer(self, **other_chats: str) -> int:
        with self.database.session(write=True) as session:
            customer = create_customer(session, "ig@example.com", first_name="Ann")
            link_identity(session, customer.id, "instagram", SHOPPER)
            for channel, external_id in other_chats.items():
                link_identity(session, customer.id, channel, external_id)
            return customer.id

    def message(self, customer_id: int, text: str = "You're Gold now: 1.5 points per $1",
                buttons: Optional[list] = None) -> int:
        with self.database.session(write=True) as session:
            message_id = enqueue(session, customer_id, "tier_change", text, f"tier:{text}", self.clock.current,
                                 payload={"buttons": buttons} if buttons else None).id
        with self.database.session(write=True) as session:
            route_due(session, ANY_TIME, self.clock.current)
        return message_id

    def row(self, message_id: int) -> OutboundMessage:
        with self.database.session() as session:
            return session.get(OutboundMessage, message_id)

    async def shopper_writes(self) -> None:
        body = fixture("text_message.json")
        payload = json.loads(body)
        payload["entry"][0]["messaging"][0]["message"]["mid"] = f"mid-{self.harness.clock.now}"
        assert (await self.harness.post(json.dumps(payload).encode())).status == 200


@pytest.fixture()
async def outbox(instagram_env, sqlite_db: Database, clock: Any) -> AsyncIterator[Outbox]:
    graph = await FakeGraphApi(access_token=ACCESS_TOKEN).start()
    instagram_env(graph.base_url)
    recorder, state_clock, sleeps, store = Recorder(), Clock(), Sleeps(), FlakyState()
    channel = InstagramInput(clock=state_clock, state=store, sleep=sleeps, database=sqlite_db)
    _app, server, base = await _serve(channel, recorder)
    harness = Harness(graph, channel, recorder, base, state_clock, sleeps, store)
    yield Outbox(harness, sqlite_db, clock)
    await harness.http.close()
    await _stop(server)
    await graph.stop()


async def test_inside_the_window_the_message_goes_out_untagged(outbox: Outbox) -> None:
    await outbox.shopper_writes()
    message_id = outbox.message(outbox.customer(), buttons=[{"title": "See perks", "payload": "/check_tier"}])
    assert outbox.row(message_id).channel == "instagram"

    assert await outbox.harness.channel.outbox.run_once() == 1
    [sent] = outbox.harness.graph.delivered
    assert sent == {"recipient": {"id": SHOPPER}, "message": {
        "text": "You're Gold now: 1.5 points per $1",
        "quick_replies": [{"content_type": "text", "title": "See perks", "payload": "/check_tier"}]}}
    assert "tag" not in sent and "messaging_type" not in sent  # never HUMAN_AGENT for the bot's own messages
    row = outbox.row(message_id)
    assert (row.status, row.recipient, row.delivered_at) == ("delivered", SHOPPER, outbox.clock.current)


async def test_outside_the_window_it_waits_and_goes_out_when_the_shopper_writes(outbox: Outbox) -> None:
    await outbox.shopper_writes()
    outbox.harness.clock.now += DAY + 60  # the shopper's last message is now more than 24 hours old
    message_id = outbox.message(outbox.customer())

    assert await outbox.harness.channel.outbox.run_once() == 0
    assert outbox.harness.graph.requests == []  # nothing is even tried outside the window
    row = outbox.row(message_id)
    assert (row.status, row.reason) == ("waiting_for_window", WINDOW_REASON)

    outbox.harness.recorder.reply = echo_reply("Here to help: {}")
    outbox.clock.advance(days=2)
    await outbox.shopper_writes()
    texts = [body["message"]["text"] for body in outbox.harness.graph.delivered]
    assert texts == ["You're Gold now: 1.5 points per $1", "Here to help: Do you have standing desks?"]
    row = outbox.row(message_id)
    assert (row.status, row.attempts, row.delivered_at) == ("delivered", 2, outbox.clock.current)


async def test_meta_refusing_as_outside_the_window_is_the_same(outbox: Outbox) -> None:
    await outbox.shopper_writes()  # the channel believes the window is open
    message_id = outbox.message(outbox.customer())
    outbox.harness.graph.fail_next(1, 400, OUTSIDE_WINDOW_ERROR)

    assert await outbox.harness.channel.outbox.run_once() == 0
    assert outbox.row(message_id).status == "waiting_for_window"
    assert not await outbox.harness.channel.state.within_window(SHOPPER)  # and it now knows better


async def test_outside_the_window_another_linked_chat_takes_it(outbox: Outbox) -> None:
    message_id = outbox.message(outbox.customer(widget="w-77"))  # never wrote on Instagram: window closed
    assert outbox.row(message_id).channel == "instagram"  # Instagram is preferred over the widget

    assert await outbox.harness.channel.outbox.run_once() == 0
    with outbox.database.session(write=True) as session:
        route_due(session, ANY_TIME, outbox.clock.current)
    row = outbox.row(message_id)
    assert (row.status, row.channel, row.recipient) == ("queued", "widget", "w-77")
    assert outbox.harness.graph.requests == []
