"""forget_me on real trackers and the real store: the question first, the erasure only after a yes (the same
bot/privacy.py erasure as the console), then a goodbye; no keeps everything."""
from __future__ import annotations

import asyncio

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.privacy import ActionAskForgetMe, ActionForgetMe, ActionKeepData
from bot.models import ChannelIdentity, Customer, LedgerEntry, MessageConsent, QuizRun
from bot.consent import record_consent
from bot.settings import reset_settings
from tests.actions.conftest import make_tracker
from tests.services import REDIS_URL, require_service

ALICE = 1


async def _run(action, sender: str, text: str, intent: str, channel: str = "rest") -> list:
    dispatcher = CollectingDispatcher()
    assert await action.run(dispatcher, make_tracker(sender, text, intent, channel=channel), {}) == []
    return dispatcher.messages


async def test_alice_is_asked_first_then_erased_and_told_goodbye(demo_store, clock) -> None:
    [question] = await _run(ActionAskForgetMe(), "alice", "delete all my data pls", "forget_me")
    assert "erasing your personal data removes your name, e-mail and birthday" in question["text"]
    assert "Your 1,598 points will be forfeited" in question["text"]
    assert [b["payload"] for b in question["buttons"]] == ["/affirm", "/deny"]
    with demo_store.session() as session:  # asking erased nothing
        assert session.get(Customer, ALICE).email == "alice.moreau@example.com"

    [goodbye] = await _run(ActionForgetMe(), "alice", "yes", "affirm")
    assert goodbye["text"].startswith("Done: I've erased your personal data. 1,598 points were forfeited.")
    assert goodbye["text"].endswith("Goodbye, and thank you for shopping with us.")
    with demo_store.session() as session:
        alice = session.get(Customer, ALICE)
        assert (alice.email, alice.first_name, alice.points_balance) == (None, None, 0)
        assert session.execute(select(func.count()).select_from(ChannelIdentity)
                               .where(ChannelIdentity.customer_id == ALICE)).scalar_one() == 0
        forfeit = session.execute(select(LedgerEntry).where(LedgerEntry.customer_id == ALICE)
                                  .order_by(LedgerEntry.id.desc())).scalars().first()
        assert (forfeit.points, forfeit.source) == (-1598, "privacy")

    # The chat is a guest's now: asking again is about this conversation, and erasing it again is harmless.
    [question] = await _run(ActionAskForgetMe(), "alice", "forget me", "forget_me")
    assert question["text"].startswith("Before I do that: I'll delete this conversation")


async def test_no_keeps_everything(demo_store) -> None:
    await _run(ActionAskForgetMe(), "bob", "erase my account", "forget_me")
    [reply] = await _run(ActionKeepData(), "bob", "no wait", "deny")
    assert reply["text"].startswith("Okay — I haven't erased anything")
    with demo_store.session() as session:
        bob = session.get(Customer, 2)
        assert (bob.email, bob.points_balance) == ("bob.okafor@example.com", 545)


async def test_a_guest_chat_loses_its_quiz_email_and_consent_record(demo_store, clock) -> None:
    with demo_store.session(write=True) as session:
        session.add(QuizRun(quiz_id="home-office", channel="widget", sender_id="guest-12", status="completed",
                            stage="done", answers={}, email="g@example.com", consent_text="yes send me news",
                            consent_at=clock.current, started_at=clock.current, updated_at=clock.current))
        record_consent(session, "widget", "guest-12", "subscribed", now=clock.current, words="updates pls")
    [question] = await _run(ActionAskForgetMe(), "guest-12", "delete my info", "forget_me", channel="widget")
    assert "quiz answers and any e-mail you gave" in question["text"]
    [goodbye] = await _run(ActionForgetMe(), "guest-12", "yes do it", "affirm", channel="widget")
    assert goodbye["text"].startswith("Done: I've erased this conversation and what you told me in it.")
    with demo_store.session() as session:
        run = session.execute(select(QuizRun)).scalar_one()
        assert (run.email, run.consent_text, run.sender_id) == (None, None, "erased")
        assert session.execute(select(func.count()).select_from(MessageConsent)).scalar_one() == 0


async def test_on_redis_the_conversation_the_turn_saves_back_is_swept_a_moment_later(
        demo_store, monkeypatch: pytest.MonkeyPatch) -> None:
    require_service("Redis", 6379)
    from rasa.core.tracker_store import RedisTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from actions import privacy
    from bot.conversation_storage import redis_kwargs

    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("TRACKER_STORE", "redis")
    reset_settings()
    monkeypatch.setattr(privacy, "TRACKER_SWEEP_SECONDS", 0.1)
    domain = Domain.from_dict({"intents": ["forget_me"]})
    store = RedisTrackerStore(domain=domain, **redis_kwargs(REDIS_URL))
    tracker = DialogueStateTracker("bob", domain.slots)
    tracker.update(UserUttered("my address is 12 Elm St, erase me", {"name": "forget_me", "confidence": 1.0}))
    try:
        await store.save(tracker)
        [goodbye] = await _run(ActionForgetMe(), "bob", "yes", "affirm")
        assert goodbye["text"].startswith("Done: I've erased your personal data.")
        assert await store.retrieve("bob") is None
        await store.save(tracker)  # what Rasa does after the action: the whole tracker written back
        await asyncio.sleep(0.5)
        assert await store.retrieve("bob") is None
    finally:
        store.red.delete(store.key_prefix + "bob")
