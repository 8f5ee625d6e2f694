from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.handoff import ActionRequestHandoff
from bot.models import HandoffRequest
from tests.actions.conftest import make_tracker, saved_tracker


async def test_handoff_is_stored_with_context_and_the_shopper_is_told_what_happens(demo_store) -> None:
    dispatcher = CollectingDispatcher()
    await ActionRequestHandoff().run(dispatcher, saved_tracker("alice_asks_for_a_person"), {})
    [message] = dispatcher.messages
    assert "passed this conversation to the Oak & Ember team (request #1)" in message["text"]
    assert "within one business day" in message["text"] and "Monday to Friday" in message["text"]
    assert "I'll stay quiet" in message["text"] and 'say "talk to the bot"' in message["text"]
    with demo_store.session() as session:
        [request] = session.execute(select(HandoffRequest)).scalars().all()
    assert (request.channel, request.sender_id, request.status) == ("rest", "alice", "open")
    assert request.customer_id == 1
    assert [m["role"] for m in request.last_messages] == ["shopper", "bot", "shopper", "bot", "shopper"]
    assert request.last_messages[2]["text"] == "that's wrong, I want to talk to someone"
    assert request.reason == "that's wrong, I want to talk to someone", "why they asked, in their words"
    assert request.requested_at is not None


async def test_asking_twice_keeps_one_open_request_and_guests_are_recorded(demo_store) -> None:
    for _ in range(2):
        await ActionRequestHandoff().run(CollectingDispatcher(), make_tracker("guest-7", "yes", "affirm"), {})
    with demo_store.session() as session:
        requests = session.execute(select(HandoffRequest)).scalars().all()
    assert len(requests) == 1 and requests[0].customer_id is None


def test_the_reason_is_the_whole_message_when_it_held_several_requests() -> None:
    from actions.handoff import handoff_reason

    whole = "my oak table came with a cracked leg, I want to talk to a real person"
    tracker = make_tracker("several-reason", "I want to talk to a real person", "human_handoff")
    tracker.events[-1]["metadata"] = {"several_requests": {"message": whole, "part": 2, "of": 2}}
    assert handoff_reason(tracker) == whole
    assert handoff_reason(make_tracker("one-request", "get me a human", "human_handoff")) == "get me a human"
