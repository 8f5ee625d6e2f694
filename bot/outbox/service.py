"""The outbox: every proactive message is one OutboundMessage row, queued once per occasion (its dedupe key),
given a channel by `route_due` (the web app's scheduler runs it) and sent by that channel's sender, which
reports back (`claim_routed`, `mark_delivered`, `mark_failed`, `retry_later`, `window_closed`).

Routing decides, per due message: still relevant (expires_at), consent (bot.consent: a chat that said
"unsubscribe" gets nothing), quiet hours and the cap per 30 days (ProactivePolicy), and the shopper's best
reachable chat: Telegram, then Instagram, then the website widget (the latest linked chat of a channel; a chat
that blocked the bot is unreachable). Senders keep their platform's own rules and report what happened.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.consent import may_message
from bot.db import Database, transaction
from bot.identity.customers import identity_channel
from bot.models import ChannelIdentity, Customer, OutboundMessage, TierChange
from bot.outbox.policy import CAP_WINDOW, ProactivePolicy

# The channels a proactive message can go out on, best first: Telegram delivers at once to a chat that
# started the bot, Instagram only inside 24 hours of the shopper's last message, the widget when it is opened.
CHANNEL_PREFERENCE = ("telegram", "instagram", "widget")
# Kinds of the outbox (others exist: content and social decisions, referral reversals).
KINDS = ("review_request", "feedback_request", "points_expiry_warning", "tier_change", "review_approved",
         "referral_rewarded", "campaign")
DEFAULT_RELEVANCE = timedelta(days=30)  # a message not sent within this long of its due time is dropped
RECHECK = timedelta(hours=1)  # a shopper with no chat to reach is looked at again this much later
# States that used up one of the shopper's messages in the cap's window.
COUNTED = ("queued", "sent", "delivered", "waiting_for_window")
MAX_TEXT_CHARS = 255
# Skipped because every chat of the shopper said "unsubscribe": nothing is pushed, but a notice about
# something the shopper did may still be told when they next ask (bot.notices.claim_chat_messages).
UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True)
class RouteReport:
    routed: int = 0
    postponed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class OutboxDelivery:
    """A claimed message for one chat: `recipient` is the shopper's id on `channel`."""

    message_id: int
    customer_id: int
    kind: str
    channel: str
    recipient: str
    text: str
    buttons: Tuple[Dict[str, str], ...] = field(default=())


def enqueue(session: Session, customer_id: int, kind: str, text: str, dedupe_key: str, now: datetime, *,
            payload: Optional[Dict[str, Any]] = None, due: Optional[datetime] = None,
            expires_at: Optional[datetime] = None) -> OutboundMessage:
    """Queue a message once per `dedupe_key` (a repeat, even a concurrent one, returns the first row), due at
    `due` (default now) and worth sending until `expires_at` (default 30 days after it is due)."""
    existing = _find(session, dedupe_key)
    if existing is not None:
        return existing
    due = due or now
    message = OutboundMessage(
        customer_id=customer_id, kind=kind, text=text, payload=payload or {}, dedupe_key=dedupe_key,
        status="queued", created_at=now, send_after=due, expires_at=expires_at or due + DEFAULT_RELEVANCE,
        attempts=0, updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:  # the same occasion queued concurrently
        found = _find(session, dedupe_key)
        assert found is not None
        return found
    return message


def _find(session: Session, dedupe_key: str) -> Optional[OutboundMessage]:
    return session.execute(select(OutboundMessage).where(OutboundMessage.dedupe_key == dedupe_key)).scalar_one_or_none()


# -- routing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chat:
    channel: str
    external_id: str
    reachable: bool
    consented: bool


@dataclass(frozen=True)
class RouteDecision:
    """What routing does with one due message: "route" (to `channel`/`recipient`), "postpone" (until
    `send_after`; `channel` is where it would go after quiet hours, when known) or "skip", with the reason."""

    outcome: str
    reason: Optional[str] = None
    channel: Optional[str] = None
    recipient: Optional[str] = None
    send_after: Optional[datetime] = None


def decide_route(chats: Sequence[_Chat], zone: Optional[str], counted: int, policy: ProactivePolicy, now: datetime,
                 channels: Sequence[str] = CHANNEL_PREFERENCE, tried: Iterable[str] = (),
                 expires_at: Optional[datetime] = None) -> RouteDecision:
    """The outbox's rules for one message to one shopper, in order: relevance, consent, a reachable chat on a
    channel this shop runs, quiet hours, the cap per 30 days (`counted`: their messages in the window), then
    the best chat. route_due applies it; a campaign's dry run asks it the same question."""
    if expires_at is not None and expires_at <= now:
        return RouteDecision("skip", "no longer relevant")
    consented = [chat for chat in chats if chat.consented]
    if chats and not consented:
        return RouteDecision("skip", UNSUBSCRIBED)
    tried = set(tried)
    usable = [chat for chat in consented if chat.reachable and chat.channel not in tried and chat.channel in channels]
    if not usable:
        return RouteDecision("postpone", (
            "no linked chat yet" if not chats else
            "no chat on a channel this shop runs" if not any(chat.channel in channels for chat in consented) else
            "no other reachable chat" if tried else "no reachable chat (blocked the bot)"), send_after=now + RECHECK)
    best = min(usable, key=lambda chat: CHANNEL_PREFERENCE.index(chat.channel))
    quiet_until = policy.quiet_until(now, zone)
    if quiet_until is not None:
        return RouteDecision("postpone", f"quiet hours until {quiet_until:%Y-%m-%d %H:%M} UTC", best.channel,
                             best.external_id, quiet_until)
    if counted >= policy.max_per_30_days:
        return RouteDecision("skip", f"frequency cap: {policy.max_per_30_days} messages in 30 days")
    return RouteDecision("route", None, best.channel, best.external_id)


def preview_routes(session: Session, policy: ProactivePolicy, customer_ids: Sequence[int], now: datetime,
                   channels: Sequence[str] = CHANNEL_PREFERENCE) -> Dict[int, RouteDecision]:
    """What routing would decide now for one new message to each customer (nothing is written)."""
    decisions: Dict[int, RouteDecision] = {}
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), 500):  # bounded IN lists
        chunk = ids[start:start + 500]
        chats = _chats(session, chunk)
        zones = dict(session.execute(select(Customer.id, Customer.time_zone).where(Customer.id.in_(chunk))).all())
        counted = _counted(session, chunk, now)
        for customer_id in chunk:
            decisions[customer_id] = decide_route(chats.get(customer_id, []), zones.get(customer_id),
                                                  counted.get(customer_id, 0), policy, now, channels)
    return decisions


def route_due(session: Session, policy: ProactivePolicy, now: datetime, limit: int = 200,
              channels: Sequence[str] = CHANNEL_PREFERENCE) -> RouteReport:
    """Decide for up to `limit` due, unrouted messages (oldest due first): skip, postpone or give a chat on one
    of `channels` (the ones this installation runs)."""
    messages = session.execute(
        select(OutboundMessage)
        .where(OutboundMessage.status == "queued", OutboundMessage.channel.is_(None), OutboundMessage.send_after <= now)
        .order_by(OutboundMessage.send_after, OutboundMessage.id)
        .limit(limit)
        .with_for_update(of=OutboundMessage, skip_locked=True)
    ).scalars().all()
    if not messages:
        return RouteReport()
    customers = sorted({message.customer_id for message in messages})
    chats = _chats(session, customers)
    zones = dict(session.execute(select(Customer.id, Customer.time_zone).where(Customer.id.in_(customers))).all())
    counted = _counted(session, customers, now)
    routed = postponed = skipped = 0
    for message in messages:
        message.updated_at = now
        decision = decide_route(
            chats.get(message.customer_id, []), zones.get(message.customer_id), counted.get(message.customer_id, 0),
            policy, now, channels, (message.payload or {}).get("tried_channels") or (), message.expires_at)
        if decision.outcome == "skip":
            _skip(message, decision.reason or "")
            skipped += 1
        elif decision.outcome == "postpone":
            message.send_after, message.reason = decision.send_after, decision.reason
            postponed += 1
        else:
            message.channel, message.recipient, message.routed_at, message.reason = (
                decision.channel, decision.recipient, now, None)
            counted[message.customer_id] = counted.get(message.customer_id, 0) + 1
            routed += 1
    session.flush()
    return RouteReport(routed, postponed, skipped)


def _chats(session: Session, customer_ids: Sequence[int]) -> Dict[int, List[_Chat]]:
    """Each customer's chats on the outbox's channels, the latest linked first within a channel."""
    found: Dict[int, List[_Chat]] = {}
    rows = session.execute(
        select(ChannelIdentity.customer_id, ChannelIdentity.channel, ChannelIdentity.external_id,
               ChannelIdentity.unreachable_since)
        .where(ChannelIdentity.customer_id.in_(customer_ids), ChannelIdentity.channel.in_(CHANNEL_PREFERENCE))
        .order_by(ChannelIdentity.created_at.desc(), ChannelIdentity.id.desc())
    ).all()
    seen = set()
    for customer_id, channel, external_id, unreachable_since in rows:
        if (customer_id, channel) in seen:  # the latest chat of each channel speaks for it
            continue
        seen.add((customer_id, channel))
        found.setdefault(customer_id, []).append(_Chat(
            channel, external_id, unreachable_since is None, may_message(session, channel, external_id)))
    return found


def _counted(session: Session, customer_ids: Sequence[int], now: datetime) -> Dict[int, int]:
    return dict(session.execute(
        select(OutboundMessage.customer_id, func.count())
        .where(OutboundMessage.customer_id.in_(customer_ids), OutboundMessage.routed_at > now - CAP_WINDOW,
               OutboundMessage.status.in_(COUNTED))
        .group_by(OutboundMessage.customer_id)
    ).all())


def _skip(message: OutboundMessage, reason: str) -> None:
    message.status, message.reason = "skipped", reason[:MAX_TEXT_CHARS]


def route_due_messages(policy: ProactivePolicy, now: datetime, *, database: Optional[Database] = None,
                       limit: int = 200, channels: Sequence[str] = CHANNEL_PREFERENCE) -> RouteReport:
    """route_due in its own write transaction, for the scheduler."""
    return transaction(lambda session: route_due(session, policy, now, limit, channels), write=True,
                       database=database)


# -- senders --------------------------------------------------------------------------------------------------


def buttons_of(message: OutboundMessage) -> Tuple[Dict[str, str], ...]:
    """The buttons a message's payload carries ([{"title", "payload"}]); none for most kinds."""
    buttons = (message.payload or {}).get("buttons") or ()
    return tuple({"title": str(button["title"]), "payload": str(button["payload"])}
                 for button in buttons if isinstance(button, dict) and button.get("title") and button.get("payload"))


def claim_routed(session: Session, channel: str, now: datetime, limit: int = 20,
                 recipients: Optional[Iterable[str]] = None) -> List[OutboxDelivery]:
    """Due messages routed to `channel` (to `recipients` only, when given), oldest first, marked sent before
    anything is sent (at most once). Consent and reachability are checked again: a chat that unsubscribed
    since routing is skipped, one that became unreachable goes back to routing."""
    channel = identity_channel(channel)
    query = (select(OutboundMessage)
             .where(OutboundMessage.status == "queued", OutboundMessage.channel == channel,
                    OutboundMessage.send_after <= now)
             .order_by(OutboundMessage.send_after, OutboundMessage.id).limit(limit)
             .with_for_update(of=OutboundMessage, skip_locked=True))
    if recipients is not None:
        query = query.where(OutboundMessage.recipient.in_(sorted(set(recipients))))
    messages = session.execute(query).scalars().all()
    unreachable = set(session.execute(
        select(ChannelIdentity.external_id).where(
            ChannelIdentity.channel == channel, ChannelIdentity.unreachable_since.is_not(None),
            ChannelIdentity.external_id.in_({message.recipient for message in messages}))
    ).scalars()) if messages else set()
    claimed = []
    for message in messages:
        message.updated_at = now
        if message.expires_at is not None and message.expires_at <= now:  # waited too long for its channel
            _skip(message, "no longer relevant")
            continue
        if not may_message(session, channel, message.recipient):
            _skip(message, UNSUBSCRIBED)
            continue
        if message.recipient in unreachable:
            _unroute(message)
            continue
        message.status, message.sent_at, message.attempts = "sent", now, (message.attempts or 0) + 1
        claimed.append(OutboxDelivery(message.id, message.customer_id, message.kind, channel, message.recipient,
                                      message.text, buttons_of(message)))
    session.flush()
    return claimed


def claim_for_chat(session: Session, channel: str, sender_id: str, now: datetime, limit: int = 5) -> List[OutboxDelivery]:
    """A chat just opened (the widget): the due messages routed to `channel` for the customer it is linked to,
    whichever of their chats on the channel routing picked, now addressed to this one. [] for a guest's chat."""
    channel = identity_channel(channel)
    customer_id = session.execute(
        select(ChannelIdentity.customer_id).where(ChannelIdentity.channel == channel,
                                                  ChannelIdentity.external_id == sender_id)
    ).scalar_one_or_none()
    if customer_id is None:
        return []
    for message in session.execute(
        select(OutboundMessage).where(OutboundMessage.status == "queued", OutboundMessage.channel == channel,
                                      OutboundMessage.customer_id == customer_id, OutboundMessage.send_after <= now)
        .with_for_update(of=OutboundMessage, skip_locked=True)
    ).scalars():
        message.recipient = sender_id
    session.flush()
    return claim_routed(session, channel, now, limit, [sender_id])


def _unroute(message: OutboundMessage, tried: Optional[str] = None) -> None:
    """Back to routing (another chat, or later)."""
    if tried:
        payload = dict(message.payload or {})
        payload["tried_channels"] = sorted(set(payload.get("tried_channels") or ()) | {tried})
        message.payload = payload
    message.status, message.channel, message.recipient, message.routed_at = "queued", None, None, None


def mark_delivered(session: Session, message_id: int, now: datetime) -> bool:
    message = session.get(OutboundMessage, message_id)
    if message is None:
        return False
    message.status, message.delivered_at, message.updated_at, message.error = "delivered", now, now, None
    change_id = (message.payload or {}).get("tier_change_id")
    if message.kind == "tier_change" and change_id:  # told: the conversation does not announce it again
        change = session.get(TierChange, change_id)
        if change is not None and change.announced_at is None:
            change.announced_at = now
    session.flush()
    return True


def mark_failed(session: Session, message_id: int, error: str, now: Optional[datetime] = None) -> bool:
    """The send failed for good: status failed with the error (≤ 255 characters; the caller keeps secrets out).
    The payload keeps it too (payload["error"], ≤ 200), as earlier notices had it."""
    message = session.get(OutboundMessage, message_id)
    if message is None:
        return False
    message.status, message.error = "failed", error[:MAX_TEXT_CHARS]
    message.payload = {**(message.payload or {}), "error": error[:200]}
    message.updated_at = now or message.updated_at
    session.flush()
    return True


def retry_later(session: Session, message_id: int, wait_seconds: float, now: datetime, reason: str) -> bool:
    """The platform asked to wait (Telegram 429 retry_after): queued again on the same chat, due after the wait."""
    message = session.get(OutboundMessage, message_id)
    if message is None:
        return False
    message.status, message.send_after = "queued", now + timedelta(seconds=max(wait_seconds, 0))
    message.reason, message.updated_at = reason[:MAX_TEXT_CHARS], now
    session.flush()
    return True


WINDOW_REASON = "Instagram's 24-hour window is closed: sent when the shopper writes again"


def window_closed(session: Session, message_id: int, now: datetime) -> str:
    """The channel may not send now (Instagram past 24 hours): to another reachable, consenting chat of the
    shopper if there is one (back to routing, this channel left out), else waiting_for_window. The new status."""
    message = session.get(OutboundMessage, message_id)
    if message is None:
        return "missing"
    channel = message.channel
    others = [chat for chat in _chats(session, [message.customer_id]).get(message.customer_id, [])
              if chat.channel != channel and chat.reachable and chat.consented
              and chat.channel not in set((message.payload or {}).get("tried_channels") or ())]
    message.updated_at = now
    if others:
        _unroute(message, tried=channel)
        message.send_after = now
        message.reason = f"{channel} window closed: another chat"
    else:
        message.status, message.reason = "waiting_for_window", WINDOW_REASON
    session.flush()
    return message.status


def window_opened(session: Session, channel: str, sender_id: str, now: datetime) -> int:
    """The shopper wrote on `channel`: their messages waiting for the window go out now if still relevant
    (else skipped). How many were queued again."""
    channel = identity_channel(channel)
    waiting = session.execute(
        select(OutboundMessage).where(OutboundMessage.status == "waiting_for_window",
                                      OutboundMessage.channel == channel, OutboundMessage.recipient == sender_id)
        .with_for_update(of=OutboundMessage, skip_locked=True)
    ).scalars().all()
    queued = 0
    for message in waiting:
        message.updated_at = now
        if message.expires_at is not None and message.expires_at <= now:
            _skip(message, "no longer relevant")
            continue
        message.status, message.send_after, message.reason = "queued", now, None
        queued += 1
    session.flush()
    return queued


# -- the same, each in its own transaction, for the channels (which open no sessions) --------------------------


def claim_outbox(channel: str, now: datetime, limit: int = 20, recipients: Optional[Iterable[str]] = None, *,
                 database: Optional[Database] = None) -> List[OutboxDelivery]:
    return transaction(lambda session: claim_routed(session, channel, now, limit, recipients), write=True,
                       database=database)


def claim_outbox_for_chat(channel: str, sender_id: str, now: datetime, limit: int = 5, *,
                          database: Optional[Database] = None) -> List[OutboxDelivery]:
    return transaction(lambda session: claim_for_chat(session, channel, sender_id, now, limit), write=True,
                       database=database)


def outbox_delivered(message_id: int, now: datetime, *, database: Optional[Database] = None) -> bool:
    return transaction(lambda session: mark_delivered(session, message_id, now), write=True, database=database)


def outbox_failed(message_id: int, error: str, now: datetime, *, database: Optional[Database] = None) -> bool:
    return transaction(lambda session: mark_failed(session, message_id, error, now), write=True, database=database)


def outbox_retry_later(message_id: int, wait_seconds: float, now: datetime, reason: str, *,
                       database: Optional[Database] = None) -> bool:
    return transaction(lambda session: retry_later(session, message_id, wait_seconds, now, reason), write=True,
                       database=database)


def outbox_window_closed(message_id: int, now: datetime, *, database: Optional[Database] = None) -> str:
    return transaction(lambda session: window_closed(session, message_id, now), write=True, database=database)


def outbox_window_opened(channel: str, sender_id: str, now: datetime, *, database: Optional[Database] = None) -> int:
    return transaction(lambda session: window_opened(session, channel, sender_id, now), write=True, database=database)


# -- the console --------------------------------------------------------------------------------------------------


def list_messages(session: Session, state: Optional[str] = None, limit: int = 100,
                  before_id: Optional[int] = None) -> List[OutboundMessage]:
    """The newest messages first, of one state when given."""
    query = select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(limit)
    if state:
        query = query.where(OutboundMessage.status == state)
    if before_id:
        query = query.where(OutboundMessage.id < before_id)
    return list(session.execute(query).scalars())


def state_counts(session: Session) -> Dict[str, int]:
    return dict(session.execute(select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)).all())
