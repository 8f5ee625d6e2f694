"""The handoffs pages (every merchant): the queue (first words, reason, channel, waiting time, who has it),
and one conversation answered live — its transcript streamed as server-sent events, a reply box whose
replies the shopper's channel delivers, assignment, statuses, internal notes and "return to the bot"
(bot/handoff.py does all of it)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Optional, Set, Tuple
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.audit import record
from bot.console.accounts import list_merchants
from bot.console.page import (
    ID, MERCHANT, PREFIX, SECURITY_HEADERS, error_page, has_nul, in_store, int_param, render, small_int,
)
from bot.console.transcripts import masked
from bot.handoff import (
    HANDOFF_STATUSES, LIVE_STATUSES, HandoffRefused, UnknownHandoff, WindowClosed, add_note, agent_reply, assign,
    continue_elsewhere,
    close_handoff, handoff_counts, handoff_detail, list_handoffs, messages_after, return_to_bot, set_status,
)
from bot.log import get_logger
from bot.models import HandoffMessage, HandoffRequest, Merchant

log = get_logger(__name__)

PAGE_SIZE = 50
# The live transcript: how often the stream looks for news, how long one stream lives before the browser
# reconnects (EventSource does so by itself, with Last-Event-ID), and a comment line that keeps proxies
# from closing an idle stream.
STREAM_POLL_SECONDS = 1.0
STREAM_LIFETIME_SECONDS = 120.0
STREAM_KEEPALIVE_SECONDS = 15.0


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/handoffs", handoffs_page, name="console_handoffs")
    one = PREFIX + "/handoffs/{id:" + ID + "}"
    app.router.add_get(one, handoff_page, name="console_handoff")
    app.router.add_get(one + "/events", handoff_events, name="console_handoff_events")
    app.router.add_post(one + "/reply", handoff_reply)
    app.router.add_post(one + "/note", handoff_note)
    app.router.add_post(one + "/assign", handoff_assign)
    app.router.add_post(one + "/status", handoff_status)
    app.router.add_post(one + "/return", handoff_return)
    app.router.add_post(one + "/continue", handoff_continue)
    app.router.add_post(one + "/close", handoff_close)


def message_json(message: HandoffMessage) -> Dict[str, Any]:
    """A handoff message as the live transcript's script shows it (handoff.js renders it as text), codes
    masked like every transcript view."""
    return {"id": message.id, "role": message.role, "author": message.author_name or "", "text": masked(message.text),
            "at": message.created_at.strftime("%Y-%m-%d %H:%M UTC"), "delivery": message.delivery or "",
            "delivery_note": message.delivery_note or ""}


def _state_json(request: HandoffRequest, assignee: Optional[Merchant]) -> Dict[str, Any]:
    return {"status": request.status, "resolution": request.resolution or "",
            "assignee": assignee.name if assignee is not None else "",
            "assignee_id": assignee.id if assignee is not None else None}


async def handoffs_page(request: web.Request) -> web.StreamResponse:
    status = request.query.get("status", "open")
    if status not in HANDOFF_STATUSES:
        status = "open"
    mine = request.query.get("mine") == "1"
    page = int_param(request, "page", 1, 1, 10_000)
    closed_id = small_int(request.query.get("closed", ""))
    merchant = request[MERCHANT]

    def work(session: Session) -> Tuple[Any, Dict[str, int], Any]:
        rows = list_handoffs(session, status, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE,
                             assignee_id=merchant.id if mine else None)
        just_closed = session.get(HandoffRequest, closed_id) if closed_id is not None else None
        return rows, handoff_counts(session), just_closed

    rows, counts, just_closed = await in_store(request, work)
    return render(request, "handoffs.html", {
        "status": status, "mine": mine, "rows": rows[:PAGE_SIZE], "counts": counts, "page": page,
        "has_more": len(rows) > PAGE_SIZE, "now": clock.now(),
        "just_closed": just_closed if just_closed is not None and just_closed.status == "closed" else None,
    })


async def handoff_page(request: web.Request) -> web.StreamResponse:
    request_id = int(request.match_info["id"])
    notice = request.query.get("notice", "")[:300]
    try:
        detail, team = await in_store(
            request, lambda session: (handoff_detail(session, request_id),
                                      [m for m in list_merchants(session) if m.active]))
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    messages = [message_json(message) for message in detail.messages]
    return render(request, "handoffs_detail.html", {
        "detail": detail, "turns": detail.turns, "messages": messages, "team": team,
        "last_id": max([m["id"] for m in messages] or [0]), "window": detail.reply_window, "notice": notice,
        "live": detail.request.status in LIVE_STATUSES, "state": _state_json(detail.request, detail.assignee),
    })


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _back(request_id: int, notice: str = "") -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}/handoffs/{request_id}" + (f"?notice={quote(notice)}" if notice else ""))


async def _form(request: web.Request) -> Dict[str, str]:
    form = await request.post()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    if has_nul(*values.values()):
        raise HandoffRefused("The form holds characters that cannot be stored.")
    return values


async def _act(request: web.Request, work: Any) -> web.StreamResponse:
    """Run a change of one request; answer JSON to the page's script, or send the browser back to the
    conversation with what happened."""
    request_id = int(request.match_info["id"])
    try:
        result = await work(request_id)
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    except WindowClosed as refused:
        others = ", ".join(f"{channel} {sender}" for channel, sender in refused.other_channels)
        text = str(refused) + (f" The customer's other linked chats: {others}." if others else
                               " The customer has no other linked chat.")
        if _wants_json(request):
            return web.json_response({"ok": False, "error": text, "window_closed": True,
                                      "other_channels": refused.other_channels}, status=409)
        raise _back(request_id, text)
    except HandoffRefused as refused:
        if _wants_json(request):
            return web.json_response({"ok": False, "error": str(refused)}, status=409)
        raise _back(request_id, str(refused))
    message = result if isinstance(result, str) else ""
    if _wants_json(request):
        return web.json_response({"ok": True, "notice": message})
    raise _back(request_id, message)


async def handoff_reply(request: web.Request) -> web.StreamResponse:
    merchant = request[MERCHANT]

    async def work(request_id: int) -> str:
        text = (await _form(request)).get("text", "")
        def work(session: Session) -> HandoffMessage:
            agent = session.get(Merchant, merchant.id)
            message = agent_reply(session, request_id, agent, text, clock.now())
            record(session, agent, "handoff_reply", f"handoff {request_id}", message.text, clock.now())
            return message

        message = await in_store(request, work, write=True)
        log.info("console.handoff_reply", handoff_id=request_id, merchant_id=merchant.id, message_id=message.id)
        return "Reply sent." if message.delivery == "pending" else "Reply kept in the transcript."

    return await _act(request, work)


async def handoff_note(request: web.Request) -> web.StreamResponse:
    merchant = request[MERCHANT]

    async def work(request_id: int) -> str:
        text = (await _form(request)).get("text", "")
        def work(session: Session) -> None:
            agent = session.get(Merchant, merchant.id)
            note = add_note(session, request_id, agent, text, clock.now())
            record(session, agent, "handoff_note", f"handoff {request_id}", note.text, clock.now())

        await in_store(request, work, write=True)
        return "Note added."

    return await _act(request, work)


async def handoff_assign(request: web.Request) -> web.StreamResponse:
    merchant = request[MERCHANT]

    async def work(request_id: int) -> str:
        form = await _form(request)
        target = form.get("to", "")
        to = merchant.id if target == "me" else (None if target == "nobody" else small_int(target))
        if to is None and target != "nobody":
            raise HandoffRefused("Choose who should have this conversation.")
        expected_text = form.get("expected", "")
        expected = small_int(expected_text) if expected_text else None
        if expected_text and expected is None:
            raise HandoffRefused("The form is out of date: reload the page.")
        def work(session: Session) -> Any:
            agent = session.get(Merchant, merchant.id)
            result = assign(session, request_id, to, expected, agent, clock.now())
            if result.won:
                record(session, agent, "handoff_assigned", f"handoff {request_id}",
                       f"to {result.assignee.name}" if result.assignee is not None else "to nobody", clock.now())
            return result

        result = await in_store(request, work, write=True)
        log.info("console.handoff_assign", handoff_id=request_id, merchant_id=merchant.id, won=result.won)
        if not result.won:
            holder = result.assignee.name if result.assignee is not None else "nobody"
            raise HandoffRefused(f"Someone was quicker: this conversation is now with {holder}. Nothing changed.")
        return ("Assigned to " + result.assignee.name + ".") if result.assignee is not None else "Unassigned."

    return await _act(request, work)


async def handoff_status(request: web.Request) -> web.StreamResponse:
    merchant = request[MERCHANT]

    async def work(request_id: int) -> str:
        status = (await _form(request)).get("status", "")
        if status not in HANDOFF_STATUSES:
            raise HandoffRefused("Choose open, waiting for the shopper or closed.")
        def work(session: Session) -> None:
            agent = session.get(Merchant, merchant.id)
            set_status(session, request_id, status, agent, clock.now())
            record(session, agent, "handoff_status", f"handoff {request_id}", status, clock.now())

        await in_store(request, work, write=True)
        log.info("console.handoff_status", handoff_id=request_id, merchant_id=merchant.id, status=status)
        return {"open": "Marked open.", "waiting": "Waiting for the shopper.",
                "closed": "Closed. If the shopper writes within a day it reopens."}[status]

    return await _act(request, work)


async def handoff_return(request: web.Request) -> web.StreamResponse:
    merchant = request[MERCHANT]

    async def work(request_id: int) -> str:
        await _form(request)
        def work(session: Session) -> None:
            agent = session.get(Merchant, merchant.id)
            before = session.get(HandoffRequest, request_id)
            live = before is not None and before.status in LIVE_STATUSES
            return_to_bot(session, request_id, agent, clock.now())
            if live:
                record(session, agent, "handoff_returned", f"handoff {request_id}", "the bot answers again",
                       clock.now())

        await in_store(request, work, write=True)
        log.info("console.handoff_returned", handoff_id=request_id, merchant_id=merchant.id)
        return "Returned to the bot: it answers the shopper again and has told them so."

    return await _act(request, work)


async def handoff_continue(request: web.Request) -> web.StreamResponse:
    """Carry the conversation over to another linked chat of the customer and open it there."""
    merchant = request[MERCHANT]
    request_id = int(request.match_info["id"])
    try:
        form = await _form(request)
        channel, _, sender = form.get("chat", "").partition(":")

        def work(session: Session) -> HandoffRequest:
            agent = session.get(Merchant, merchant.id)
            there = continue_elsewhere(session, request_id, channel, sender, agent, clock.now())
            record(session, agent, "handoff_assigned", f"handoff {there.id}",
                   f"continued from handoff {request_id} on {channel}", clock.now())
            return there

        there = await in_store(request, work, write=True)
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    except HandoffRefused as refused:
        raise _back(request_id, str(refused))
    log.info("console.handoff_continued", handoff_id=request_id, on=there.id, merchant_id=merchant.id)
    raise _back(there.id, f"Continued from handoff #{request_id}: write your reply here.")


async def handoff_close(request: web.Request) -> web.StreamResponse:
    request_id = int(request.match_info["id"])
    merchant = request[MERCHANT]
    def work(session: Session) -> HandoffRequest:
        before = session.get(HandoffRequest, request_id)
        live = before is not None and before.status in LIVE_STATUSES
        closed = close_handoff(session, request_id, merchant.email, clock.now())
        if live:
            record(session, session.get(Merchant, merchant.id), "handoff_status", f"handoff {request_id}", "closed",
                   clock.now())
        return closed

    try:
        closed = await in_store(request, work, write=True)
    except UnknownHandoff:
        return error_page(request, 404, "No such handoff", f"There is no handoff request #{request_id}.")
    log.info("console.handoff_closed", handoff_id=closed.id, merchant_id=merchant.id)
    raise web.HTTPSeeOther(f"{PREFIX}/handoffs?closed={closed.id}")


# --- the live transcript --------------------------------------------------------------------------------


def _news(session: Session, request_id: int, after: int, watching: Set[int]) -> Tuple[List[HandoffMessage], Any]:
    request = session.get(HandoffRequest, request_id)
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    assignee = session.get(Merchant, request.assigned_to_id) if request.assigned_to_id is not None else None
    return messages_after(session, request_id, after, watching), _state_json(request, assignee)


async def handoff_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `message` for each new line of the handoff (and again when a reply's delivery
    changes), `state` when its status or assignee changes. Ids are message ids, so a reconnecting
    EventSource (Last-Event-ID) misses nothing."""
    request_id = int(request.match_info["id"])
    given = request.headers.get("Last-Event-ID") or request.query.get("after", "")
    after = small_int(given) or 0
    watching: Set[int] = set()
    try:
        messages, state = await in_store(request, lambda session: _news(session, request_id, after, watching))
    except UnknownHandoff:
        raise web.HTTPNotFound()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        **SECURITY_HEADERS})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    started = last_write = loop.time()
    last_state: Optional[Dict[str, Any]] = None
    try:
        await response.write(b"retry: 1000\n\n")
        while True:
            for message in messages:
                after = max(after, message.id)
                if message.delivery in ("pending", "sending"):
                    watching.add(message.id)
                else:
                    watching.discard(message.id)
                data = json.dumps(message_json(message))
                await response.write(f"id: {after}\nevent: message\ndata: {data}\n\n".encode())
                last_write = loop.time()
            if state != last_state:
                await response.write(f"event: state\ndata: {json.dumps(state)}\n\n".encode())
                last_state, last_write = state, loop.time()
            if loop.time() - last_write > STREAM_KEEPALIVE_SECONDS:
                await response.write(b": still here\n\n")
                last_write = loop.time()
            if loop.time() - started > STREAM_LIFETIME_SECONDS:
                break
            await asyncio.sleep(STREAM_POLL_SECONDS)
            try:
                messages, state = await in_store(
                    request, lambda session: _news(session, request_id, after, set(watching)))
            except UnknownHandoff:  # erased meanwhile
                break
    except ConnectionResetError:  # the page was closed
        pass
    return response
