"""Live handoffs in the console through its real HTTP endpoints, on SQLite and PostgreSQL: the shopper's
messages reach the agent (kept by bot/handoff.py, which the channels call) and appear on the open page's
event stream, replies are stored with the agent's name and handed to the channel's delivery, assignment is
decided by one conditional update, Instagram's windows are enforced, and the bot answers again once the
agent returns the conversation."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from html import unescape
from typing import Any, Dict, Optional, Tuple

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.db import Database
from bot.handoff import (
    HUMAN_AGENT_TAG, RETURNED_BY_AGENT, claim_replies, reply_delivered, request_handoff, route_shopper_message,
)
from bot.identity import create_customer, link_identity
from bot.models import HandoffMessage, HandoffRequest
from tests.web.console import Console, csrf_of, make_merchant

OLIVE, RAVI = "olive@oak-and-ember.example", "ravi@oak-and-ember.example"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def flat(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def ask_for_a_person(db: Database, channel: str = "telegram", sender: str = "100",
                     reason: str = "the oak table arrived with a cracked leg") -> Tuple[int, int]:
    """Ann, linked on Telegram and Instagram, asked for a person on `channel`: (customer id, request id)."""
    with db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        link_identity(session, ann, "telegram", "100")
        link_identity(session, ann, "instagram", "ig-ann")
        request = request_handoff(session, channel, sender, ann, [
            {"role": "shopper", "text": "hi, my table arrived broken"},
            {"role": "bot", "text": "I'm sorry to hear that."},
            {"role": "shopper", "text": "I want a person"},
        ], reason=reason)
        return ann, request.id


class Stream:
    """The page's server-sent events, read as the browser's EventSource would."""

    def __init__(self, response: Any) -> None:
        self.response = response

    async def next(self, kind: str, timeout: float = 15.0) -> Dict[str, Any]:
        event: Optional[str] = None
        data = []
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), timeout)).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            elif line == "":
                if event == kind and data:
                    return json.loads("\n".join(data))
                event, data = None, []

    def close(self) -> None:
        self.response.close()


async def open_stream(console: Console, request_id: int, after: int = 0) -> Stream:
    response = await console.get(f"/console/handoffs/{request_id}/events", {"after": str(after)})
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    return Stream(response)


async def another_agent(console: Console, email: str) -> Console:
    """A second browser on the same console (its own cookies)."""
    other = Console(TestClient(console.client.server), console.db)
    await other.client.start_server()
    assert (await other.sign_in(email)).status == 303
    return other


def messages(db: Database, request_id: int) -> list:
    with db.session() as session:
        return [(m.role, m.author_name, m.text, m.delivery) for m in session.execute(
            select(HandoffMessage).where(HandoffMessage.handoff_id == request_id).order_by(HandoffMessage.id)).scalars()]


def request_row(db: Database, request_id: int) -> HandoffRequest:
    with db.session() as session:
        return session.get(HandoffRequest, request_id)


async def test_an_agent_answers_live_and_hands_the_conversation_back_to_the_bot(any_console: Console, clock) -> None:
    db = any_console.db
    _, request_id = ask_for_a_person(db)
    make_merchant(db, OLIVE, "agent", "Olive")
    assert (await any_console.sign_in(OLIVE)).status == 303

    page = await any_console.get(f"/console/handoffs/{request_id}")
    html = await page.text()
    assert "Why they asked the oak table arrived with a cracked leg" in flat(html)
    assert 'id="reply-form"' in html and 'src="/console/static/handoff.js"' in html
    stream = await open_stream(any_console, request_id)
    assert (await stream.next("state"))["status"] == "open"

    # The bot stays quiet: what the shopper writes now is kept for the person and streamed to the page.
    clock.advance(minutes=2)
    route = route_shopper_message("telegram", "100", "it's the leg near the drawer, can u send a new one?", database=db)
    assert not route.to_bot and route.reply is None
    seen = await stream.next("message")
    assert (seen["role"], seen["text"]) == ("shopper", "it's the leg near the drawer, can u send a new one?")

    reply = await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": f"So sorry! {XSS} A new leg ships today."})
    assert reply.status == 303 and "Reply%20sent" in reply.headers["Location"]
    sent = await stream.next("message")
    assert (sent["role"], sent["author"], sent["delivery"]) == ("agent", "Olive", "pending")
    state = await stream.next("state")
    assert (state["status"], state["assignee"]) == ("waiting", "Olive"), "replying takes an unassigned request"

    # The Telegram channel's delivery loop claims it (once) and reports back; the page sees the delivery.
    [pending] = claim_replies("telegram", database=db)
    assert claim_replies("telegram", database=db) == []
    assert (pending.recipient, pending.tag) == ("100", None)
    assert pending.text == f"Olive: So sorry! {XSS} A new leg ships today."
    reply_delivered(pending.message_id, True, database=db)
    delivered = await stream.next("message")
    assert (delivered["id"], delivered["delivery"]) == (sent["id"], "sent")

    # The shopper answers: the request is open again; an internal note stays in the console.
    route_shopper_message("telegram", "100", "great thx", database=db)
    assert (await stream.next("message"))["text"] == "great thx"
    assert (await stream.next("state"))["status"] == "open"
    note = await any_console.post(f"/console/handoffs/{request_id}/note", {"text": f"Courier ref 88. {XSS}"})
    assert note.status == 303
    assert (await stream.next("message"))["role"] == "note"
    stream.close()

    html = await (await any_console.get(f"/console/handoffs/{request_id}")).text()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") == 2

    # Return to the bot: closed, the bot tells the shopper, and the next message is the bot's to answer.
    back = await any_console.post(f"/console/handoffs/{request_id}/return")
    assert back.status == 303
    again = await any_console.post(f"/console/handoffs/{request_id}/return")  # a double submit
    assert again.status == 303
    [returned] = claim_replies("telegram", database=db)
    assert returned.text == RETURNED_BY_AGENT
    row = request_row(db, request_id)
    assert (row.status, row.resolution, row.closed_by) == ("closed", "returned_to_bot", OLIVE)
    assert route_shopper_message("telegram", "100", "how many points do I have?", database=db).to_bot
    assert [(role, author) for role, author, _, _ in messages(db, request_id)] == [
        ("shopper", None), ("agent", "Olive"), ("shopper", None), ("note", "Olive"), ("event", "Olive"), ("bot", None)]
    closed = await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": "one more thing"},)
    assert "This%20conversation%20is%20closed" in closed.headers["Location"]


async def test_two_agents_assigning_at_once_one_wins_and_the_other_is_told(any_console: Console) -> None:
    db = any_console.db
    _, request_id = ask_for_a_person(db)
    make_merchant(db, OLIVE, "agent", "Olive")
    make_merchant(db, RAVI, "agent", "Ravi")
    await any_console.sign_in(OLIVE)
    ravi = await another_agent(any_console, RAVI)
    try:
        # Both opened the page while nobody had it, and both click "Assign to me" at the same moment.
        for agent in (any_console, ravi):
            html = await (await agent.get(f"/console/handoffs/{request_id}")).text()
            assert 'name="expected" value=""' in html
        answers = await asyncio.gather(*(
            agent.client.post(f"/console/handoffs/{request_id}/assign",
                              data={"csrf_token": agent.csrf, "to": "me", "expected": ""},
                              headers={"Accept": "application/json"})
            for agent in (any_console, ravi)))
        bodies = [await answer.json() for answer in answers]
        winner = request_row(db, request_id).assigned_to_id
        assert sorted(answer.status for answer in answers) == [200, 409], bodies
        won = bodies[[answer.status for answer in answers].index(200)]
        lost = bodies[[answer.status for answer in answers].index(409)]
        name = "Olive" if winner == 1 else "Ravi"
        assert won["notice"] == f"Assigned to {name}."
        assert lost["error"] == f"Someone was quicker: this conversation is now with {name}. Nothing changed."
        assert [m for m in messages(db, request_id) if m[0] == "event"] == [("event", name, f"Assigned to {name}", None)]
        # Taking it over on purpose names the current holder.
        loser = ravi if name == "Olive" else any_console
        html = await (await loser.get(f"/console/handoffs/{request_id}")).text()
        take = await loser.post(f"/console/handoffs/{request_id}/assign",
                                {"to": "me", "expected": csrf_of(html) and str(winner)})
        assert take.status == 303 and "Assigned%20to" in take.headers["Location"]

        # Both have the conversation open: each sees the other's reply and note as they are written.
        with db.session() as session:
            seen = max(session.execute(select(HandoffMessage.id)).scalars())
        olive_sees, ravi_sees = await open_stream(any_console, request_id, seen), await open_stream(ravi, request_id, seen)
        await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": "Olive here, checking now."})
        await ravi.post(f"/console/handoffs/{request_id}/note", {"text": "Ravi: courier says Tuesday"})
        for stream in (olive_sees, ravi_sees):
            lines = [await stream.next("message") for _ in range(2)]
            assert [(m["role"], m["author"]) for m in lines] == [("agent", "Olive"), ("note", "Ravi")]
            stream.close()
    finally:
        await ravi.client.close()


async def test_instagram_replies_follow_metas_windows(any_console: Console, clock) -> None:
    db = any_console.db
    _, request_id = ask_for_a_person(db, "instagram", "ig-ann")
    make_merchant(db, OLIVE, "agent", "Olive")
    await any_console.sign_in(OLIVE)

    clock.advance(hours=3)
    await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": "Hi Ann, Olive here."})
    [inside] = claim_replies("instagram", database=db)
    assert inside.tag is None, "within 24 hours: a normal message"

    clock.advance(days=2)
    await any_console.sign_in(OLIVE)  # a console session lasts 12 idle hours
    html = await (await any_console.get(f"/console/handoffs/{request_id}")).text()
    assert "HUMAN_AGENT tag" in html and 'id="reply-form"' in html
    await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": "Checking with the warehouse."})
    [tagged] = claim_replies("instagram", database=db)
    assert tagged.tag == HUMAN_AGENT_TAG, "between 24 hours and 7 days: tagged as a person's reply"

    # Written at 6 days 23 hours, but the channel only gets to it after the 7 days: not sent.
    clock.advance(days=4, hours=20)
    await any_console.sign_in(OLIVE)
    await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": "Any news on your side?"})
    clock.advance(hours=2)
    assert claim_replies("instagram", database=db) == []
    assert messages(db, request_id)[-1][3] == "failed"

    refused = await any_console.client.post(
        f"/console/handoffs/{request_id}/reply", data={"csrf_token": any_console.csrf, "text": "Hello?"},
        headers={"Accept": "application/json"})
    body = await refused.json()
    assert refused.status == 409 and body["window_closed"] is True
    assert body["other_channels"] == [["telegram", "100"]]
    page = flat(await (await any_console.get(f"/console/handoffs/{request_id}")).text())
    assert "Instagram's window is closed" in page and "Other linked chats: telegram 100." in page
    assert "Continue on telegram (100)" in page

    # The agent carries the conversation over to her Telegram chat and answers there.
    moved = await any_console.post(f"/console/handoffs/{request_id}/continue", {"chat": "telegram:100"})
    there = int(re.search(r"/console/handoffs/(\d+)\?", moved.headers["Location"]).group(1))
    assert there != request_id and "Continued%20from%20handoff" in moved.headers["Location"]
    await any_console.post(f"/console/handoffs/{there}/reply", {"text": "Writing here on Telegram instead."})
    [telegram] = claim_replies("telegram", database=db)
    assert (telegram.recipient, telegram.text) == ("100", "Olive: Writing here on Telegram instead.")
    assert request_row(db, there).assigned_to_id is not None
    assert messages(db, request_id)[-1][2] == f"Continued on telegram (handoff #{there}) by Olive"
    stranger = await any_console.post(f"/console/handoffs/{request_id}/continue", {"chat": "telegram:999"})
    assert "not%20linked%20to%20this%20customer" in stranger.headers["Location"]
    assert not route_shopper_message("telegram", "100", "ok thanks", database=db).to_bot, "quiet there too"

    # The shopper writes again: the window opens again.
    route_shopper_message("instagram", "ig-ann", "hello??", database=db)
    ok = await any_console.post(f"/console/handoffs/{request_id}/reply", {"text": "Hi! The leg ships Monday."})
    assert "Reply%20sent" in ok.headers["Location"]
    assert claim_replies("instagram", database=db)[0].tag is None


async def test_the_queue_shows_who_has_what_and_the_header_counts_open_requests(console: Console, clock) -> None:
    db = console.db
    _, first = ask_for_a_person(db)
    clock.advance(minutes=30)
    with db.session(write=True) as session:
        guest = request_handoff(session, "widget", "w-1", None, [{"role": "shopper", "text": f"{XSS} hello"}],
                                reason="need help with my order 1042").id
    make_merchant(db, OLIVE, "agent", "Olive")
    await console.sign_in(OLIVE)
    await console.post(f"/console/handoffs/{first}/assign", {"to": "me", "expected": ""})
    clock.advance(minutes=15)
    html = await (await console.get("/console/handoffs")).text()
    text = flat(html)
    assert f"#{first} · Ann hi, my table arrived broken Why: the oak table arrived with a cracked leg telegram 45 min Olive" in text
    assert f"#{guest} · Guest {XSS} hello Why: need help with my order 1042 widget 15 min nobody yet" in text
    assert "<script>alert(1)" not in html
    assert "Handoffs 2" in text
    mine = flat(await (await console.get("/console/handoffs", {"mine": "1"})).text())
    assert f"#{first} ·" in mine and f"#{guest} ·" not in mine
    await console.post(f"/console/handoffs/{first}/status", {"status": "closed"})
    assert "Handoffs 1" in flat(await (await console.get("/console/feedback")).text())
