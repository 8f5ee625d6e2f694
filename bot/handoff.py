"""Requests from shoppers to talk to a person, and the live conversation with that person.

While a request is live (open: a person should answer; waiting: a person answered, it is the shopper's turn)
the bot stays quiet in that conversation: the channels ask `route_shopper_message` what to do with each
message, and it keeps the message for the agent instead of handing it to the bot — except an explicit
"talk to the bot" / "cancel", which hands the conversation back. Agents reply, take requests (one
conditional UPDATE decides who), set statuses, write internal notes and return the conversation to the
bot from the console; their replies are queued here and each channel delivers them
(`claim_replies` / `reply_delivered`), Instagram inside Meta's windows (24 h as a normal message, 7 days
with the HUMAN_AGENT tag). A request closed by a person reopens when the shopper writes within a day.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.db import Database, transaction
from bot.models import ChannelIdentity, Customer, HandoffMessage, HandoffRequest, Merchant, Order, Transcript
from bot.shared.text import clean_chat_text

MAX_CONTEXT_MESSAGES = 10
MAX_REASON_CHARS = 500
MAX_REPLY_CHARS = 2000
MAX_NOTE_CHARS = 4000
REOPEN_WITHIN = timedelta(days=1)
# Meta's windows for answering an Instagram shopper (counted from their last message): a normal message
# within 24 hours; a person's reply tagged HUMAN_AGENT within 7 days; nothing after that.
INSTAGRAM_STANDARD_WINDOW = timedelta(hours=24)
INSTAGRAM_HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"
# Channels whose delivery loop sends replies; on others (REST, development) a reply is only stored.
DELIVERING_CHANNELS = ("widget", "telegram", "instagram")

LIVE_STATUSES = ("open", "waiting")
HANDOFF_STATUSES = ("open", "waiting", "closed")

# What the bot says when the conversation comes back to it.
RETURNED_BY_AGENT = ("You're back with the bot now — ask me anything about points, rewards, orders or products. "
                     "Say \"human\" if you need the team again.")
RETURNED_BY_SHOPPER = ("Okay, you're back with the bot: I've cancelled the request for a person. "
                       "What can I help you with?")

# An explicit wish to leave the person and come back to the bot. Only a whole message counts: "cancel my
# order" is for the person, "cancel" or "talk to the bot pls" is not.
_BACK_TO_BOT = re.compile(
    r"^(?:(?:please|pls|plz|ok|okay|no|actually|nvm|never ?mind|sorry|hey|hi) )*"
    r"(?:/cancel|cancel(?: (?:that|it|this|the request|my request|the handoff))?|never ?mind|nvm|forget it"
    r"|(?:i (?:want|wanna|would like|d like) to |can i |let me |just )?"
    r"(?:talk|speak|chat|go back|get back|switch back|return)(?: back)? (?:to|with) (?:the |a |your )?(?:bot|chat ?bot|robot|assistant)"
    r"|back to (?:the )?(?:bot|chat ?bot)|(?:the )?bot (?:please|pls|plz)|i(?:'| a)?m done(?: with the person)?)"
    r"(?: (?:please|pls|plz|thanks|thank you|instead|again))*$"
)


def wants_the_bot(text: str) -> bool:
    """Whether a message (typos in spacing, case and punctuation forgiven) asks to leave the person."""
    words = re.sub(r"[^a-z0-9/' ]+", " ", (text or "").lower().replace("’", "'"))
    return bool(_BACK_TO_BOT.match(" ".join(words.split())))


class UnknownHandoff(LookupError):
    """No handoff request with that id."""


class HandoffRefused(ValueError):
    """What an agent asked cannot be done (the message says why, for the console)."""


class WindowClosed(HandoffRefused):
    """Instagram's 7-day window for a person's reply has passed; `other_channels` are the customer's other
    linked chats the agent could answer on."""

    def __init__(self, message: str, other_channels: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.other_channels = list(other_channels)


# --- the shopper asks --------------------------------------------------------------------------------


def request_handoff(
    session: Session,
    channel: str,
    sender_id: str,
    customer_id: Optional[int],
    last_messages: List[Dict[str, str]],
    reason: Optional[str] = None,
    now: Optional[datetime] = None,
    language: Optional[str] = None,
) -> HandoffRequest:
    """Open a handoff request, or refresh the one this sender already has live.

    `language`: the language the shopper wrote in when it was not English ("fr"), for the team.
    """
    context = last_messages[-MAX_CONTEXT_MESSAGES:]
    now = now or clock.now()
    reason = (reason or "").strip()[:MAX_REASON_CHARS] or None
    existing = _live_request(session, channel, sender_id)
    if existing is None:
        request = HandoffRequest(
            channel=channel, sender_id=sender_id, customer_id=customer_id, status="open", last_messages=context,
            requested_at=now, last_shopper_at=now, reason=reason, language=language or None,
        )
        try:
            with session.begin_nested():
                session.add(request)
                session.flush()
            return request
        except IntegrityError:
            # The same sender's request was opened concurrently; refresh that one instead.
            existing = _live_request(session, channel, sender_id)
            if existing is None:
                raise
    existing.last_messages = context
    existing.last_shopper_at = now
    if existing.status == "waiting":
        existing.status = "open"
    if reason:
        existing.reason = reason
    if language:
        existing.language = language
    return existing


def _live_request(session: Session, channel: str, sender_id: str, lock: bool = False) -> Optional[HandoffRequest]:
    query = select(HandoffRequest).where(
        HandoffRequest.channel == channel, HandoffRequest.sender_id == sender_id,
        HandoffRequest.status.in_(LIVE_STATUSES))
    return session.execute(query.with_for_update() if lock else query).scalar_one_or_none()


def sender_request(session: Session, request_id: int, channel: str, sender_id: str) -> Optional[HandoffRequest]:
    """The request `request_id` when it is this sender's (a chat asks only about its own requests)."""
    request = session.get(HandoffRequest, request_id)
    if request is None or (request.channel, request.sender_id) != (channel, sender_id):
        return None
    return request


def open_requests(session: Session) -> List[HandoffRequest]:
    """Live requests, longest waiting first (the CLI's list)."""
    return list(session.execute(
        select(HandoffRequest).where(HandoffRequest.status.in_(LIVE_STATUSES)).order_by(HandoffRequest.requested_at)
    ).scalars())


# --- what the channels call for every shopper message ----------------------------------------------


@dataclass(frozen=True)
class InboundRoute:
    """What a channel does with a shopper's message. `to_bot`: hand it to the conversation as usual;
    otherwise a person has the conversation (the message is kept for them), and `reply`, when set, is what
    the channel sends the shopper instead of a bot turn."""

    to_bot: bool
    reply: Optional[str] = None
    handoff_id: Optional[int] = None


TO_BOT = InboundRoute(True)


def route_shopper_message(channel: str, sender_id: str, text: str, now: Optional[datetime] = None, *,
                          database: Optional[Database] = None) -> InboundRoute:
    """`route_message` in its own write transaction (channels open no sessions)."""
    if not _may_have_live(channel, sender_id, now or clock.now(), database):
        return TO_BOT
    return transaction(lambda session: route_message(session, channel, sender_id, text, now or clock.now()),
                       write=True, database=database)


def _may_have_live(channel: str, sender_id: str, now: datetime, database: Optional[Database]) -> bool:
    """A read first, so most messages (no request anywhere near) never take SQLite's write lock."""
    def work(session: Session) -> bool:
        return session.execute(
            select(HandoffRequest.id).where(
                HandoffRequest.channel == channel, HandoffRequest.sender_id == sender_id,
                or_(HandoffRequest.status.in_(LIVE_STATUSES),
                    and_(HandoffRequest.resolution == "closed", HandoffRequest.closed_at >= now - REOPEN_WITHIN)))
            .limit(1)
        ).first() is not None
    return transaction(work, database=database)


def route_message(session: Session, channel: str, sender_id: str, text: str, now: datetime) -> InboundRoute:
    """Keep the message for the person who has this conversation (reopening a request a person closed
    within the last day), hand the conversation back to the bot when the shopper asks for it, or let the
    bot answer (no request)."""
    live = _live_request(session, channel, sender_id, lock=True)
    text = (text or "").strip()
    if live is None:
        if wants_the_bot(text):
            return TO_BOT
        live = _reopen(session, channel, sender_id, now)
        if live is None:
            return TO_BOT
    if wants_the_bot(text):
        _add(session, live, "shopper", text, now)
        _close(live, "shopper", "shopper_returned", now)
        _add(session, live, "bot", RETURNED_BY_SHOPPER, now, delivery="sent", note="sent as the answer")
        return InboundRoute(False, RETURNED_BY_SHOPPER, live.id)
    _add(session, live, "shopper", _shown_text(text), now)
    live.last_shopper_at = now
    if live.status == "waiting":
        live.status = "open"
    return InboundRoute(False, None, live.id)


def _shown_text(text: str) -> str:
    if text.startswith("/submit_content"):
        return "(sent a photo or video)"
    return text or "(an empty message)"


def _reopen(session: Session, channel: str, sender_id: str, now: datetime) -> Optional[HandoffRequest]:
    recent = session.execute(
        select(HandoffRequest).where(
            HandoffRequest.channel == channel, HandoffRequest.sender_id == sender_id,
            HandoffRequest.resolution == "closed", HandoffRequest.closed_at >= now - REOPEN_WITHIN)
        .order_by(HandoffRequest.closed_at.desc(), HandoffRequest.id.desc()).limit(1).with_for_update()
    ).scalar_one_or_none()
    if recent is None:
        return None
    try:
        with session.begin_nested():
            recent.status, recent.resolution, recent.closed_at, recent.closed_by = "open", None, None, None
            session.flush()
    except IntegrityError:  # another message of this sender reopened or opened one meanwhile
        return _live_request(session, channel, sender_id, lock=True)
    _add(session, recent, "event", "Reopened: the shopper wrote again", now)
    return recent


def _add(session: Session, request: HandoffRequest, role: str, text: str, now: datetime, *,
         author: Optional[Merchant] = None, delivery: Optional[str] = None, note: Optional[str] = None) -> HandoffMessage:
    message = HandoffMessage(
        handoff_id=request.id, channel=request.channel, role=role, text=text, created_at=now,
        author_id=author.id if author is not None else None, author_name=author.name if author is not None else None,
        delivery=delivery, delivery_note=note, delivered_at=now if delivery == "sent" else None,
    )
    session.add(message)
    session.flush()
    return message


def _close(request: HandoffRequest, closed_by: str, resolution: str, now: datetime) -> None:
    request.status, request.resolution, request.closed_at, request.closed_by = "closed", resolution, now, closed_by[:320]


# --- the merchant's queue (console) ------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffRow:
    """A request as the queue lists it, with the customer it belongs to (None for a guest) and its agent."""

    request: HandoffRequest
    customer: Optional[Customer]
    assignee: Optional[Merchant] = None
    first_words: str = ""

    def waiting_since(self) -> datetime:
        return self.request.last_shopper_at or self.request.requested_at


@dataclass(frozen=True)
class HandoffDetail:
    request: HandoffRequest
    customer: Optional[Customer]
    transcript: Optional[Transcript]  # the whole conversation when it was kept, else only last_messages
    assignee: Optional[Merchant] = None
    messages: List[HandoffMessage] = field(default_factory=list)  # since the shopper asked
    order: Optional[Order] = None  # the customer's latest order
    other_channels: List[Tuple[str, str]] = field(default_factory=list)  # the customer's other linked chats

    @property
    def turns(self) -> List[Dict[str, Any]]:
        """The conversation to show: the stored transcript, or the request's last messages."""
        return list(self.transcript.turns if self.transcript is not None else self.request.last_messages or [])

    @property
    def reply_window(self) -> "ReplyWindow":
        return reply_window(self.request, clock.now())


@dataclass(frozen=True)
class ReplyWindow:
    """Whether (and how) a person may answer the shopper now: `open` (False past Instagram's 7 days),
    `tag` (HUMAN_AGENT between 24 hours and 7 days on Instagram), `closes_at`, and a sentence for the console."""

    open: bool
    tag: Optional[str]
    closes_at: Optional[datetime]
    explanation: str


def reply_window(request: HandoffRequest, now: datetime) -> ReplyWindow:
    if request.channel != "instagram":
        return ReplyWindow(True, None, None, "")
    last = request.last_shopper_at or request.requested_at
    if now - last <= INSTAGRAM_STANDARD_WINDOW:
        return ReplyWindow(True, None, last + INSTAGRAM_STANDARD_WINDOW,
                           "Inside Instagram's 24-hour window: replies go out as normal messages.")
    if now - last <= INSTAGRAM_HUMAN_AGENT_WINDOW:
        return ReplyWindow(True, HUMAN_AGENT_TAG, last + INSTAGRAM_HUMAN_AGENT_WINDOW,
                           "Past 24 hours since the shopper's last message: replies go out with Instagram's "
                           "HUMAN_AGENT tag, allowed for a person's replies until 7 days have passed.")
    return ReplyWindow(False, None, last + INSTAGRAM_HUMAN_AGENT_WINDOW,
                       "Instagram's window is closed: the shopper last wrote more than 7 days ago, and Meta lets "
                       "a business answer only within 7 days. Answer on another linked channel, or wait until "
                       "the shopper writes again.")


def live_count(session: Session) -> int:
    """Requests a person should answer (open), for the console's header."""
    return int(session.execute(
        select(func.count()).select_from(HandoffRequest).where(HandoffRequest.status == "open")).scalar_one())


def handoff_counts(session: Session) -> Dict[str, int]:
    """Requests by status (every status present, zero when none)."""
    found = dict(session.execute(
        select(HandoffRequest.status, func.count()).group_by(HandoffRequest.status)
    ).all())
    return {status: int(found.get(status, 0)) for status in HANDOFF_STATUSES}


def list_handoffs(session: Session, status: str = "open", limit: int = 50, offset: int = 0,
                  assignee_id: Optional[int] = None) -> List[HandoffRow]:
    """Live requests by who has waited longest (since the shopper's last message); closed ones most
    recently closed first. `assignee_id`: only that agent's."""
    if status not in HANDOFF_STATUSES:
        raise ValueError(f"status must be one of {', '.join(HANDOFF_STATUSES)}")
    waiting = func.coalesce(HandoffRequest.last_shopper_at, HandoffRequest.requested_at)
    order = ((waiting, HandoffRequest.id) if status != "closed"
             else (HandoffRequest.closed_at.desc(), HandoffRequest.id.desc()))
    query = (select(HandoffRequest, Customer, Merchant)
             .outerjoin(Customer, Customer.id == HandoffRequest.customer_id)
             .outerjoin(Merchant, Merchant.id == HandoffRequest.assigned_to_id)
             .where(HandoffRequest.status == status))
    if assignee_id is not None:
        query = query.where(HandoffRequest.assigned_to_id == assignee_id)
    rows = session.execute(query.order_by(*order).limit(limit).offset(offset)).all()
    return [HandoffRow(request, customer, assignee, first_words(request)) for request, customer, assignee in rows]


def first_words(request: HandoffRequest, limit: int = 140) -> str:
    """The shopper's first message of the conversation kept with the request."""
    for turn in request.last_messages or []:
        if isinstance(turn, dict) and turn.get("role") == "shopper" and str(turn.get("text") or "").strip():
            text = " ".join(str(turn["text"]).split())
            return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return ""


def handoff_detail(session: Session, request_id: int) -> HandoffDetail:
    request = session.get(HandoffRequest, request_id)
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    customer = session.get(Customer, request.customer_id) if request.customer_id is not None else None
    transcript = session.get(Transcript, request.transcript_id) if request.transcript_id is not None else None
    assignee = session.get(Merchant, request.assigned_to_id) if request.assigned_to_id is not None else None
    order = None
    others: List[Tuple[str, str]] = []
    if customer is not None:
        order = session.execute(select(Order).where(Order.customer_id == customer.id)
                                .order_by(Order.placed_at.desc(), Order.id.desc()).limit(1)).scalar_one_or_none()
        others = other_channels(session, customer.id, request.channel, request.sender_id)
    return HandoffDetail(request, customer, transcript, assignee, messages_after(session, request_id), order, others)


def other_channels(session: Session, customer_id: int, channel: str, sender_id: str) -> List[Tuple[str, str]]:
    """The customer's linked chats other than this one: (channel, sender id)."""
    return [(row.channel, row.external_id) for row in session.execute(
        select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id)
        .order_by(ChannelIdentity.created_at.desc(), ChannelIdentity.id.desc())).scalars()
        if (row.channel, row.external_id) != (channel, sender_id)]


def messages_after(session: Session, request_id: int, after_id: int = 0,
                   also: Collection[int] = ()) -> List[HandoffMessage]:
    """The request's messages with ids above `after_id` (and those in `also`: replies whose delivery the
    console is still watching), oldest first."""
    condition = HandoffMessage.id > after_id
    if also:
        condition = or_(condition, HandoffMessage.id.in_(sorted(also)))
    return list(session.execute(
        select(HandoffMessage).where(HandoffMessage.handoff_id == request_id, condition).order_by(HandoffMessage.id)
    ).scalars())


def _request_for_update(session: Session, request_id: int) -> HandoffRequest:
    request = session.execute(
        select(HandoffRequest).where(HandoffRequest.id == request_id).with_for_update()).scalar_one_or_none()
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    return request


def agent_reply(session: Session, request_id: int, agent: Merchant, text: str, now: datetime) -> HandoffMessage:
    """Queue an agent's reply for the shopper's channel, stored with the agent's name. The request then
    waits for the shopper, and is the agent's when nobody had it. Refused on a closed request and, on
    Instagram, past the 7-day window (WindowClosed names the customer's other linked chats)."""
    body = clean_chat_text(text or "")
    if not body:
        raise HandoffRefused("Write a reply first.")
    if len(body) > MAX_REPLY_CHARS:
        raise HandoffRefused(f"A reply has at most {MAX_REPLY_CHARS:,} characters.")
    request = _request_for_update(session, request_id)
    if request.status not in LIVE_STATUSES:
        raise HandoffRefused("This conversation is closed: reopen it to reply.")
    window = reply_window(request, now)
    if not window.open:
        others = other_channels(session, request.customer_id, request.channel, request.sender_id) \
            if request.customer_id is not None else []
        raise WindowClosed(window.explanation, others)
    delivering = request.channel in DELIVERING_CHANNELS
    message = _add(session, request, "agent", body, now, author=agent,
                   delivery="pending" if delivering else "stored",
                   note=None if delivering else "kept in the transcript: this channel has no delivery")
    request.status = "waiting"
    if request.assigned_to_id is None:
        request.assigned_to_id, request.assigned_at = agent.id, now
    return message


def add_note(session: Session, request_id: int, agent: Merchant, text: str, now: datetime) -> HandoffMessage:
    """An internal note: for the team, never sent to the shopper."""
    body = (text or "").strip().replace("\x00", "")
    if not body:
        raise HandoffRefused("Write a note first.")
    if len(body) > MAX_NOTE_CHARS:
        raise HandoffRefused(f"A note has at most {MAX_NOTE_CHARS:,} characters.")
    return _add(session, _request_for_update(session, request_id), "note", body, now, author=agent)


@dataclass(frozen=True)
class Assignment:
    """What an assignment did: `won` (this click changed it) and who has the request now."""

    won: bool
    assignee: Optional[Merchant]


def assign(session: Session, request_id: int, to: Optional[int], expected: Optional[int], actor: Merchant,
           now: datetime) -> Assignment:
    """Give the request to merchant `to` (None: nobody), if it is still with `expected` (None: nobody), in
    one conditional UPDATE: of two agents clicking at once, one wins and the other is told who has it."""
    target = session.get(Merchant, to) if to is not None else None
    if to is not None and (target is None or not target.active):
        raise HandoffRefused("No such active team member.")
    still = HandoffRequest.assigned_to_id.is_(None) if expected is None else HandoffRequest.assigned_to_id == expected
    changed = session.execute(
        update(HandoffRequest).where(HandoffRequest.id == request_id, still)
        .values(assigned_to_id=to, assigned_at=now if to is not None else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    request = session.get(HandoffRequest, request_id, populate_existing=True)
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    current = session.get(Merchant, request.assigned_to_id) if request.assigned_to_id is not None else None
    if changed:
        what = (f"Assigned to {target.name}" if target is not None else "Unassigned") + \
            (f" by {actor.name}" if target is None or target.id != actor.id else "")
        _add(session, request, "event", what, now, author=actor)
    return Assignment(bool(changed), current)


def set_status(session: Session, request_id: int, status: str, actor: Merchant, now: datetime) -> HandoffRequest:
    """open ↔ waiting for the shopper, or closed (by a person: it reopens when the shopper writes within a
    day, and the bot stays quiet until then)."""
    if status not in HANDOFF_STATUSES:
        raise HandoffRefused(f"status must be one of {', '.join(HANDOFF_STATUSES)}")
    request = _request_for_update(session, request_id)
    if request.status == status:
        return request
    if status == "closed":
        _close(request, actor.email, "closed", now)
        _add(session, request, "event", f"Closed by {actor.name}", now, author=actor)
        return request
    if request.status == "closed":
        try:
            with session.begin_nested():
                request.status, request.resolution, request.closed_at, request.closed_by = status, None, None, None
                session.flush()
        except IntegrityError:
            raise HandoffRefused("The shopper already has another live request: answer them there.") from None
        _add(session, request, "event", f"Reopened by {actor.name}", now, author=actor)
        return request
    request.status = status
    _add(session, request, "event",
         "Waiting for the shopper" if status == "waiting" else f"Marked open by {actor.name}", now, author=actor)
    return request


def continue_elsewhere(session: Session, request_id: int, channel: str, sender_id: str, agent: Merchant,
                       now: datetime) -> HandoffRequest:
    """Carry the conversation over to another chat linked to the same customer (when Instagram's window
    closed, say): a live request there, with this one's reason, assigned to the agent; both say so. The
    bot stays quiet on that chat too until it is returned."""
    request = _request_for_update(session, request_id)
    if request.customer_id is None or (channel, sender_id) not in other_channels(
            session, request.customer_id, request.channel, request.sender_id):
        raise HandoffRefused("That chat is not linked to this customer.")
    if channel not in DELIVERING_CHANNELS:
        raise HandoffRefused(f"Replies cannot be delivered on {channel}.")
    there = request_handoff(session, channel, sender_id, request.customer_id, [],
                            reason=f"Continued from {request.channel} handoff #{request.id}: {request.reason or ''}"
                            .rstrip(": "), now=now)
    there.assigned_to_id, there.assigned_at = agent.id, now
    _add(session, there, "event", f"Continued from {request.channel} handoff #{request.id} by {agent.name}", now,
         author=agent)
    _add(session, request, "event", f"Continued on {channel} (handoff #{there.id}) by {agent.name}", now,
         author=agent)
    return there


def return_to_bot(session: Session, request_id: int, actor: Merchant, now: datetime) -> HandoffRequest:
    """Close the request and give the conversation back to the bot, which tells the shopper so. Returning a
    closed request changes nothing (a double-submitted form sends one message)."""
    request = _request_for_update(session, request_id)
    if request.status not in LIVE_STATUSES:
        return request
    _close(request, actor.email, "returned_to_bot", now)
    _add(session, request, "event", f"Returned to the bot by {actor.name}", now, author=actor)
    delivering = request.channel in DELIVERING_CHANNELS
    _add(session, request, "bot", RETURNED_BY_AGENT, now, delivery="pending" if delivering else "stored")
    return request


def close_handoff(session: Session, request_id: int, closed_by: str, now: datetime) -> HandoffRequest:
    """Close a live request (who, when). Closing a closed request changes nothing: its first closing
    stands, so a double-submitted form or two merchants at once leave one record. A closed request leaves
    the "one live request per sender" index, so the shopper can ask for a person again."""
    session.execute(
        update(HandoffRequest)
        .where(HandoffRequest.id == request_id, HandoffRequest.status.in_(LIVE_STATUSES))
        .values(status="closed", closed_at=now, closed_by=closed_by[:320], resolution="closed")
        .execution_options(synchronize_session=False)
    )
    request = session.get(HandoffRequest, request_id, populate_existing=True)
    if request is None:
        raise UnknownHandoff(f"no handoff request {request_id}")
    return request


# --- delivery by the channels --------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingReply:
    """A claimed reply for the channel to send to `recipient` (the shopper's sender id there); `tag` is
    HUMAN_AGENT when Instagram needs it."""

    message_id: int
    handoff_id: int
    recipient: str
    text: str
    tag: Optional[str] = None


def shown_reply(message: HandoffMessage) -> str:
    """A reply as the shopper sees it: an agent's with their name first, so they know a person wrote it."""
    return f"{message.author_name}: {message.text}" if message.role == "agent" and message.author_name else message.text


def claim_pending(session: Session, channel: str, now: datetime, limit: int = 20,
                  only: Optional[Collection[str]] = None) -> List[PendingReply]:
    """Replies waiting for `channel`, oldest first, marked "sending" by a conditional UPDATE each (so two
    processes never send one twice). `only`: just these conversations (the widget: the sockets this
    process holds). An Instagram reply whose window closed meanwhile is marked failed, not sent."""
    rows = session.execute(
        select(HandoffMessage, HandoffRequest)
        .join(HandoffRequest, HandoffRequest.id == HandoffMessage.handoff_id)
        .where(HandoffMessage.channel == channel, HandoffMessage.delivery == "pending")
        .order_by(HandoffMessage.id).limit(limit * 5 if only is not None else limit)
    ).all()
    claimed: List[PendingReply] = []
    for message, request in rows:
        if only is not None and request.sender_id not in only:
            continue
        window = reply_window(request, now)
        outcome = "sending" if window.open else "failed"
        took = session.execute(
            update(HandoffMessage).where(HandoffMessage.id == message.id, HandoffMessage.delivery == "pending")
            .values(delivery=outcome, delivery_note=None if window.open else "Instagram's window closed")
            .execution_options(synchronize_session=False)
        ).rowcount
        if took and window.open:
            claimed.append(PendingReply(message.id, request.id, request.sender_id, shown_reply(message), window.tag))
        if len(claimed) >= limit:
            break
    return claimed


def claim_replies(channel: str, now: Optional[datetime] = None, limit: int = 20,
                  only: Optional[Collection[str]] = None, *, database: Optional[Database] = None) -> List[PendingReply]:
    """claim_pending in its own write transaction: what a channel's delivery loop calls."""
    if not _has_pending(channel, database):
        return []
    return transaction(lambda session: claim_pending(session, channel, now or clock.now(), limit, only),
                       write=True, database=database)


def _has_pending(channel: str, database: Optional[Database]) -> bool:
    """A read first: the loops poll every second, and an idle poll must not take SQLite's write lock."""
    return transaction(lambda session: session.execute(
        select(HandoffMessage.id).where(HandoffMessage.channel == channel, HandoffMessage.delivery == "pending")
        .limit(1)).first() is not None, database=database)


def reply_delivered(message_id: int, sent: bool, note: Optional[str] = None, now: Optional[datetime] = None, *,
                    database: Optional[Database] = None) -> None:
    """Record how a claimed reply went (sent, or failed with the reason; ≤ 200 characters, no secrets)."""
    def work(session: Session) -> None:
        session.execute(
            update(HandoffMessage).where(HandoffMessage.id == message_id)
            .values(delivery="sent" if sent else "failed", delivery_note=(note or None) and note[:200],
                    delivered_at=(now or clock.now()) if sent else None)
            .execution_options(synchronize_session=False))
    transaction(work, write=True, database=database)


@dataclass(frozen=True)
class HistoryLine:
    """A line of a live handoff as the shopper's transcript shows it."""

    at: datetime
    sender: str  # user | bot
    text: str


def conversation_lines(channel: str, sender_id: str, *, database: Optional[Database] = None) -> List[HistoryLine]:
    """What the shopper and the team said in this conversation's handoffs (the bot never saw those
    messages), for a transcript restored on the next visit; replies still waiting for an open socket count as
    delivered by it."""
    def read(session: Session) -> List[HandoffMessage]:
        rows = session.execute(
            select(HandoffMessage).join(HandoffRequest, HandoffRequest.id == HandoffMessage.handoff_id)
            .where(HandoffRequest.channel == channel, HandoffRequest.sender_id == sender_id,
                   HandoffMessage.role.in_(("shopper", "agent", "bot")))
            .order_by(HandoffMessage.id)
        ).scalars().all()
        session.expunge_all()
        return list(rows)

    rows = transaction(read, database=database)
    pending = [row.id for row in rows if row.delivery == "pending"]
    if pending:
        def shown(session: Session) -> None:
            session.execute(
                update(HandoffMessage).where(HandoffMessage.id.in_(pending), HandoffMessage.delivery == "pending")
                .values(delivery="sent", delivery_note="shown on the shopper's next visit", delivered_at=clock.now())
                .execution_options(synchronize_session=False))
        transaction(shown, write=True, database=database)
    return [HistoryLine(row.created_at, "user" if row.role == "shopper" else "bot", shown_reply(row)) for row in rows]
