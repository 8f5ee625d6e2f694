from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import select

from bot.db import Database
from bot.handoff import open_requests, request_handoff
from bot.models import HandoffRequest


def test_one_open_request_per_sender_even_when_asked_concurrently(any_db: Database) -> None:
    workers = 6
    barrier = Barrier(workers)

    def ask(index: int) -> int:
        barrier.wait()
        with any_db.session(write=True) as session:
            return request_handoff(session, "rest", "ann", None, [{"role": "shopper", "text": f"help {index}"}]).id

    with ThreadPoolExecutor(workers) as pool:
        ids = set(pool.map(ask, range(workers)))
    assert len(ids) == 1
    with any_db.session() as session:
        [request] = open_requests(session)
        assert request.last_messages[0]["text"].startswith("help ")


def test_a_closed_request_does_not_block_a_new_one(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        first = request_handoff(session, "rest", "ann", None, [])
        first.status = "closed"
    with any_db.session(write=True) as session:
        second = request_handoff(session, "rest", "ann", None, [{"role": "shopper", "text": "again"}])
    assert second.id != first.id
    with any_db.session() as session:
        assert len(session.execute(select(HandoffRequest)).scalars().all()) == 2


def test_context_is_capped_to_the_last_ten_messages(sqlite_db: Database) -> None:
    messages = [{"role": "shopper", "text": str(i)} for i in range(25)]
    with sqlite_db.session(write=True) as session:
        request = request_handoff(session, "telegram", "42", None, messages)
    assert [m["text"] for m in request.last_messages] == [str(i) for i in range(15, 25)]


# --- what the channels ask for every shopper message ------------------------------------------------

import pytest  # noqa: E402

from bot.console.accounts import add_merchant  # noqa: E402
from bot.handoff import (  # noqa: E402
    RETURNED_BY_SHOPPER, conversation_lines, route_shopper_message, set_status, wants_the_bot,
)
from bot.models import HandoffMessage, Merchant  # noqa: E402


@pytest.mark.parametrize("text", [
    "talk to the bot", "Talk to the BOT please", "i want to talk to the bot", "back to the bot!", "cancel",
    "/cancel", "nvm", "never mind", "can i speak to the chatbot again", "go back to bot", "ok cancel that",
    "bot pls",
])
def test_an_explicit_wish_for_the_bot_is_recognised(text: str) -> None:
    assert wants_the_bot(text)


@pytest.mark.parametrize("text", [
    "cancel my order", "the bot was useless", "can you cancel the delivery and refund me?", "thanks",
    "how many points do I have", "is this a bot?", "talk to the manager",
])
def test_a_message_for_the_person_is_not_taken_for_the_bot(text: str) -> None:
    assert not wants_the_bot(text)


def _agent(db: Database, clock) -> Merchant:
    with db.session(write=True) as session:
        return add_merchant(session, "olive@shop.example", "Olive", "agent", "correct horse battery", clock.current)


def test_the_shopper_can_go_back_to_the_bot_and_a_closed_request_reopens_within_a_day(any_db: Database, clock) -> None:
    assert route_shopper_message("widget", "w-1", "hello", database=any_db).to_bot, "no request: the bot answers"
    with any_db.session(write=True) as session:
        request_id = request_handoff(session, "widget", "w-1", None, [{"role": "shopper", "text": "human pls"}]).id
    held = route_shopper_message("widget", "w-1", "cancel my order 1042 please", database=any_db)
    assert (held.to_bot, held.reply, held.handoff_id) == (False, None, request_id)
    back = route_shopper_message("widget", "w-1", "nvm, talk to the bot", database=any_db)
    assert (back.to_bot, back.reply) == (False, RETURNED_BY_SHOPPER)
    with any_db.session() as session:
        request = session.get(HandoffRequest, request_id)
        assert (request.status, request.resolution, request.closed_by) == ("closed", "shopper_returned", "shopper")
    assert route_shopper_message("widget", "w-1", "how many points?", database=any_db).to_bot
    assert route_shopper_message("widget", "w-1", "cancel", database=any_db).to_bot, "no request to cancel"

    # Closed by a person: the shopper writing again within a day reopens it; after a day, the bot answers.
    olive = _agent(any_db, clock)
    with any_db.session(write=True) as session:
        again = request_handoff(session, "widget", "w-1", None, [{"role": "shopper", "text": "person again"}]).id
        set_status(session, again, "closed", session.get(Merchant, olive.id), clock.current)
    clock.advance(hours=20)
    reopened = route_shopper_message("widget", "w-1", "sorry one more question", database=any_db)
    assert (reopened.to_bot, reopened.handoff_id) == (False, again)
    with any_db.session(write=True) as session:
        assert session.get(HandoffRequest, again).status == "open"
        set_status(session, again, "closed", session.get(Merchant, olive.id), clock.current)
    clock.advance(days=1, minutes=1)
    assert route_shopper_message("widget", "w-1", "hi again", database=any_db).to_bot


def test_the_widget_transcript_gets_the_handoff_lines_and_pending_replies_count_as_shown(sqlite_db: Database,
                                                                                         clock) -> None:
    from bot.handoff import agent_reply, claim_replies

    olive = _agent(sqlite_db, clock)
    with sqlite_db.session(write=True) as session:
        request_id = request_handoff(session, "widget", "w-9", None, []).id
    route_shopper_message("widget", "w-9", "my lamp flickers", database=sqlite_db)
    clock.advance(minutes=1)
    with sqlite_db.session(write=True) as session:
        agent_reply(session, request_id, session.get(Merchant, olive.id), "Try the other bulb?", clock.current)
    lines = conversation_lines("widget", "w-9", database=sqlite_db)
    assert [(line.sender, line.text) for line in lines] == [("user", "my lamp flickers"),
                                                            ("bot", "Olive: Try the other bulb?")]
    # Shown with the transcript of the shopper's next visit: the socket loop does not send it again.
    assert claim_replies("widget", database=sqlite_db, only={"w-9"}) == []
    with sqlite_db.session() as session:
        [reply] = session.execute(select(HandoffMessage).where(HandoffMessage.role == "agent")).scalars().all()
        assert (reply.delivery, reply.delivery_note) == ("sent", "shown on the shopper's next visit")
