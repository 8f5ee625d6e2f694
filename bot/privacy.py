"""Erasing a customer's personal data across the loyalty store and the conversation trackers: what is deleted,
what is anonymised and what is kept for every table (the README's "Erasure" table), a guest's rows found by
their chats' senders, and the tracker store's conversations of those senders. `erase_customer_everywhere`
does both in order and logs it; erasing twice is harmless."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from sqlalchemy import String, and_, cast, delete, false, func, literal, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.checkout import mask_codes_in
from bot.db import Database
from bot.identity.customers import customer_by_email as find_by_email, identity_channel
from bot.log import get_logger
from bot.loyalty.ledger import post_entry
from bot.loyalty.program import Program
from bot.models import (
    AuditEvent, ChannelIdentity, ContentSubmission, Customer, Feedback, FeedbackNote, FriendOffer, HandoffMessage,
    HandoffRequest, LinkAttempt, LinkCode, MessageConsent, Order, OutboundMessage, ProductSearch, QuizRun, Referral,
    ReferralClick, Review, SocialFollowClaim, Transcript,
)
from bot.settings import Settings
from bot.shared.text import has_control_characters

log = get_logger(__name__)

# What an anonymised row keeps as its sender: no conversation has this id (Rasa's are opaque strings,
# Telegram's and Instagram's numbers, the widget's random tokens).
ERASED_SENDER = "erased"
FORFEIT_SOURCE = "privacy"
# Channels whose sender ids share a namespace are one channel for matching (bot/identity/customers.py).
_KNOWN_CHANNELS = ("rest", "cmdline", "telegram", "instagram", "widget", "socketio")

Pair = Tuple[str, str]


class UnknownCustomer(LookupError):
    """No customer has this id (or e-mail)."""


@dataclass(frozen=True)
class ErasureReport:
    """What one erasure did: rows per table, points forfeited, and the conversations (channel, sender)
    whose trackers must go too. No personal data besides those sender ids."""

    customer_id: Optional[int]  # None: a guest's chat (erase_chat)
    actor: str
    erased_at: datetime
    deleted: Dict[str, int]
    anonymised: Dict[str, int]
    points_forfeited: int
    conversations: Tuple[Pair, ...]
    # Set by erase_customer_everywhere: conversations found (and deleted) in the tracker store.
    trackers_erased: Optional[int] = None

    @property
    def sender_ids(self) -> List[str]:
        return sorted({sender for _, sender in self.conversations})

    @property
    def rows_deleted(self) -> int:
        return sum(self.deleted.values())

    @property
    def rows_anonymised(self) -> int:
        return sum(self.anonymised.values())

    @property
    def nothing_left(self) -> bool:
        """True when there was nothing to erase any more: an earlier erasure had done it all."""
        return not self.rows_deleted and not self.rows_anonymised and not self.points_forfeited \
            and not self.conversations and not self.trackers_erased


@dataclass(frozen=True)
class IdentityRow:
    channel: str
    external_id: str
    created_at: datetime


@dataclass(frozen=True)
class CustomerProfile:
    """What the erasure page shows about a customer before the owner decides."""

    id: int
    email: Optional[str]
    first_name: Optional[str]
    last_name: Optional[str]
    external_id: Optional[str]
    created_at: datetime
    points_balance: int
    tier: str
    identities: List[IdentityRow]
    counts: Dict[str, int] = field(default_factory=dict)  # feedback, transcripts, orders, … (guest rows included)

    @property
    def has_personal_data(self) -> bool:
        return bool(self.email or self.first_name or self.last_name or self.external_id or self.identities
                    or any(self.counts.get(name) for name in PERSONAL_COUNTS))


# The counts that mean personal data is still held (orders and ledger stay after an erasure).
PERSONAL_COUNTS = ("feedback", "transcripts", "handoffs", "reviews", "content", "quiz_runs", "searches")


# ---------------------------------------------------------------------------------------------
# Finding customers


def customer_by_email(session: Session, email: str) -> Customer:
    """The customer with this e-mail; UnknownCustomer when there is none."""
    if has_control_characters(email or ""):
        raise UnknownCustomer("no customer with that e-mail: it contains control characters")
    customer = find_by_email(session, email)
    if customer is None:
        raise UnknownCustomer(f"no customer with e-mail {(email or '').strip()}")
    return customer


def customer_profile(session: Session, customer_id: int, program: Program, now: datetime) -> CustomerProfile:
    """The customer, their chat identities and how many rows of each kind are theirs (as a guest too)."""
    from bot.loyalty.tiers import tier_status

    customer = _customer(session, customer_id)
    identities = [
        IdentityRow(channel, external_id, created_at)
        for channel, external_id, created_at in session.execute(
            select(ChannelIdentity.channel, ChannelIdentity.external_id, ChannelIdentity.created_at)
            .where(ChannelIdentity.customer_id == customer_id).order_by(ChannelIdentity.id))
    ]
    pairs = _conversations(session, customer_id)
    counts = {
        "feedback": _count(session, Feedback, _owned(Feedback, customer_id, pairs)),
        "transcripts": _count(session, Transcript, _owned(Transcript, customer_id, pairs)),
        "handoffs": _count(session, HandoffRequest, _owned(HandoffRequest, customer_id, pairs)),
        "reviews": _count(session, Review, _owned(Review, customer_id, pairs)),
        "content": _count(session, ContentSubmission, _owned(ContentSubmission, customer_id, pairs)),
        "quiz_runs": _count(session, QuizRun, _owned(QuizRun, customer_id, pairs)),
        "searches": _count(session, ProductSearch, _owned(ProductSearch, customer_id, pairs)),
        "orders": _count(session, Order, Order.customer_id == customer_id),
    }
    return CustomerProfile(
        id=customer.id, email=customer.email, first_name=customer.first_name, last_name=customer.last_name,
        external_id=customer.external_id, created_at=customer.created_at, points_balance=customer.points_balance,
        tier=tier_status(session, customer_id, program, now).tier.name, identities=identities, counts=counts,
    )


# ---------------------------------------------------------------------------------------------
# Erasure


def erase_customer(session: Session, customer_id: int, *, actor: str, now: datetime) -> ErasureReport:
    """Remove the customer's personal data from the store (see the module's table); idempotent.

    UnknownCustomer when no customer has this id. The customer row itself stays as an anonymous tombstone.
    """
    customer = session.execute(
        select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
    if customer is None:
        raise UnknownCustomer(f"no customer with id {customer_id}")
    pairs = _conversations(session, customer_id)
    deleted: Dict[str, int] = {}
    anonymised: Dict[str, int] = {}

    owned = lambda model: _owned(model, customer_id, pairs)  # noqa: E731
    _erase_conversation_rows(session, owned, actor=actor, now=now, deleted=deleted, anonymised=anonymised)

    claims = SocialFollowClaim.customer_id == customer_id
    deleted["social_follow_claims"] = _delete(session, SocialFollowClaim, and_(claims, SocialFollowClaim.status == "pending"))
    anonymised["social_follow_claims"] = _update(
        session, SocialFollowClaim,
        and_(claims, or_(SocialFollowClaim.handle.is_not(None), SocialFollowClaim.moderation_note.is_not(None))),
        {"handle": None, "moderation_note": None})

    deleted["link_codes"] = _delete(session, LinkCode, LinkCode.customer_id == customer_id)
    deleted["link_attempts"] = _delete(session, LinkAttempt, _any_pair(LinkAttempt.channel, LinkAttempt.sender, pairs))
    deleted["outbound_messages"] = _delete(session, OutboundMessage, OutboundMessage.customer_id == customer_id)
    deleted["message_consents"] = _delete(session, MessageConsent, or_(
        MessageConsent.customer_id == customer_id, _any_pair(MessageConsent.channel, MessageConsent.sender_id, pairs)))

    anonymised["orders"] = _update(
        session, Order,
        and_(Order.customer_id == customer_id, or_(Order.shipping_address_hash.is_not(None), Order.ip_hash.is_not(None))),
        {"shipping_address_hash": None, "ip_hash": None})
    as_friend = or_(Referral.friend_customer_id == customer_id,
                    _any_pair(Referral.friend_channel, Referral.friend_sender_id, pairs))
    # Their own visits through a referral link: the click their referral came from (its IP hash is where the
    # referral's was copied from) and the clicks behind the friend offers they used.
    click_ids = set(session.execute(
        select(Referral.click_id).where(as_friend, Referral.click_id.is_not(None))).scalars())
    click_ids.update(session.execute(
        select(FriendOffer.click_id).where(FriendOffer.used_by_customer_id == customer_id,
                                           FriendOffer.click_id.is_not(None))).scalars())
    anonymised["referral_clicks"] = _update(
        session, ReferralClick,
        and_(ReferralClick.id.in_(sorted(click_ids)),
             or_(ReferralClick.ip_hash.is_not(None), ReferralClick.user_agent.is_not(None)))
        if click_ids else false(),
        {"ip_hash": None, "user_agent": None})
    anonymised["referrals"] = _update(
        session, Referral,
        and_(as_friend, or_(Referral.friend_sender_id.is_not(None), Referral.friend_channel.is_not(None),
                            Referral.ip_hash.is_not(None))),
        {"friend_channel": None, "friend_sender_id": None, "ip_hash": None})

    deleted["channel_identities"] = _delete(session, ChannelIdentity, ChannelIdentity.customer_id == customer_id)
    anonymised["store_events"] = _blank_store_deliveries(session, customer)

    personal = (customer.email, customer.first_name, customer.last_name, customer.birthday, customer.external_id)
    anonymised["customers"] = int(any(value is not None for value in personal))
    customer.email = customer.first_name = customer.last_name = customer.external_id = None
    customer.birthday = None
    session.flush()

    forfeited = 0
    balance = int(customer.points_balance or 0)
    if balance > 0:
        post_entry(session, customer_id, -balance, kind="adjust", reason="personal data erased: points forfeited",
                   source=FORFEIT_SOURCE, idempotency_key=f"erase:{customer_id}:{now.isoformat()}", at=now)
        forfeited = balance

    # Other loaded objects may hold what the statements above changed.
    session.expire_all()
    return ErasureReport(
        customer_id=customer_id, actor=actor, erased_at=now,
        deleted={name: count for name, count in deleted.items() if count},
        anonymised={name: count for name, count in anonymised.items() if count},
        points_forfeited=forfeited, conversations=tuple(sorted(pairs)),
    )


def erase_chat(session: Session, channel: str, sender_id: str, *, actor: str, now: datetime) -> ErasureReport:
    """Remove what a guest's chat (no linked customer) left in the store: its transcripts, feedback, handoffs,
    reviews, photos, quiz runs (e-mail and consent), searches, wrong link codes, consent records and its chat
    as a referred friend. A chat linked to a customer is erased with erase_customer. Idempotent."""
    pairs: List[Pair] = [(identity_channel(channel), sender_id)]
    deleted: Dict[str, int] = {}
    anonymised: Dict[str, int] = {}
    owned = lambda model: _any_pair(model.channel, model.sender_id, pairs)  # noqa: E731
    _erase_conversation_rows(session, owned, actor=actor, now=now, deleted=deleted, anonymised=anonymised)
    deleted["link_attempts"] = _delete(session, LinkAttempt, _any_pair(LinkAttempt.channel, LinkAttempt.sender, pairs))
    deleted["message_consents"] = _delete(
        session, MessageConsent, _any_pair(MessageConsent.channel, MessageConsent.sender_id, pairs))
    anonymised["referrals"] = _update(
        session, Referral, _any_pair(Referral.friend_channel, Referral.friend_sender_id, pairs),
        {"friend_channel": None, "friend_sender_id": None, "ip_hash": None})
    session.expire_all()
    return ErasureReport(
        customer_id=None, actor=actor, erased_at=now,
        deleted={name: count for name, count in deleted.items() if count},
        anonymised={name: count for name, count in anonymised.items() if count},
        points_forfeited=0, conversations=tuple(pairs),
    )


def _erase_conversation_rows(session: Session, owned: Callable[[Any], ColumnElement], *, actor: str, now: datetime,
                             deleted: Dict[str, int], anonymised: Dict[str, int]) -> None:
    """What a customer and a guest's chat share: transcripts, feedback, handoffs, reviews, photos, quiz runs and
    searches that `owned(model)` selects, deleted or anonymised (counts added to `deleted` / `anonymised`)."""
    # Transcripts first: feedback and handoffs point at them and are anonymised next.
    transcript_ids = set(session.execute(select(Transcript.id).where(owned(Transcript))).scalars())
    feedback_ids = list(session.execute(select(Feedback.id).where(owned(Feedback))).scalars())
    handoff_ids = list(session.execute(
        select(HandoffRequest.id).where(owned(HandoffRequest))).scalars())
    for model, ids in ((Feedback, feedback_ids), (HandoffRequest, handoff_ids)):
        if ids:
            transcript_ids.update(session.execute(
                select(model.transcript_id).where(model.id.in_(ids), model.transcript_id.is_not(None))).scalars())
    if transcript_ids:
        for model in (Feedback, HandoffRequest):
            session.execute(update(model).where(model.transcript_id.in_(sorted(transcript_ids))).values(transcript_id=None)
                            .execution_options(synchronize_session=False))
    deleted["transcripts"] = _delete(
        session, Transcript, Transcript.id.in_(sorted(transcript_ids)) if transcript_ids else false())

    deleted["feedback_notes"] = _delete(
        session, FeedbackNote, FeedbackNote.feedback_id.in_(feedback_ids) if feedback_ids else false())
    anonymised["feedback"] = _update(session, Feedback, Feedback.id.in_(feedback_ids) if feedback_ids else false(), {
        "comment": None, "search_text": "", "customer_id": None, "order_id": None, "transcript_id": None,
        "handoff_request_id": None, "sender_id": ERASED_SENDER, "updated_at": now,
    })
    if anonymised["feedback"] and session.get_bind().dialect.name == "sqlite":
        # The update trigger only added FTS5 delete markers: the erased words are still stored in
        # feedback_search_data until segments merge. Optimising merges them all now (about 0.4 s at
        # 100,000 feedback rows), leaving no trace of the old text in the index.
        session.execute(text("INSERT INTO feedback_search(feedback_search) VALUES('optimize')"))

    if handoff_ids:
        # Closed in the same statement that renames the sender: the one-open-request-per-sender index
        # never sees two open requests of the erased sender.
        _update(session, HandoffRequest, and_(HandoffRequest.id.in_(handoff_ids),
                                              HandoffRequest.status.in_(("open", "waiting"))),
                {"status": "closed", "closed_at": now, "closed_by": actor[:320], "sender_id": ERASED_SENDER,
                 "resolution": "erased"})

    # What the shopper and the team wrote while a person had the conversation, also as the audit log quotes it.
    deleted["handoff_messages"] = _delete(
        session, HandoffMessage, HandoffMessage.handoff_id.in_(handoff_ids) if handoff_ids else false())
    anonymised["audit_events"] = _update(
        session, AuditEvent, AuditEvent.subject.in_([f"handoff {i}" for i in handoff_ids]) if handoff_ids else false(),
        {"detail": "(erased with the customer's personal data)"})
    anonymised["handoff_requests"] = _update(
        session, HandoffRequest, HandoffRequest.id.in_(handoff_ids) if handoff_ids else false(),
        {"last_messages": [], "customer_id": None, "transcript_id": None, "sender_id": ERASED_SENDER, "reason": None})

    reviews = owned(Review)
    deleted["reviews"] = _delete(session, Review, and_(reviews, Review.status == "pending"))
    anonymised["reviews"] = _update(session, Review, reviews, {
        "text": "", "media_reference": None, "media_urls": [], "moderation_note": None, "order_external_id": None,
        "customer_id": None,
        # Unique per (channel, sender, product): each anonymised review gets a sender of its own.
        "sender_id": literal(ERASED_SENDER + ":") + cast(Review.id, String),
    })
    deleted["content_submissions"] = _delete(session, ContentSubmission, owned(ContentSubmission))

    quiz_runs = owned(QuizRun)
    _update(session, QuizRun, and_(quiz_runs, QuizRun.status == "in_progress"), {"status": "abandoned", "updated_at": now})
    anonymised["quiz_runs"] = _update(session, QuizRun, quiz_runs, {
        "email": None, "consent_text": None, "consent_at": None, "customer_id": None, "sender_id": ERASED_SENDER,
    })
    anonymised["product_searches"] = _update(session, ProductSearch, owned(ProductSearch), {
        "text": "", "customer_id": None, "sender_id": ERASED_SENDER,
    })


def erase_conversations(settings: Settings, sender_ids: Iterable[str]) -> int:
    """Delete these senders' conversations from the tracker store bot/conversation_stores.py uses (Redis
    with TRACKER_STORE=redis, else the SQL store on TRACKER_DATABASE_URL); how many conversations there were.

    Rasa keys a conversation by sender id alone, whatever the channel, so that is what is deleted. The
    stores are reached directly rather than through Rasa's classes: those retry a database that is down
    for ever, and an erasure must fail (and roll back) instead."""
    senders = sorted({str(sender) for sender in sender_ids if sender and str(sender) != ERASED_SENDER})
    if not senders:
        return 0
    if settings.tracker_store == "redis" and settings.redis_url:
        return _erase_redis_trackers(settings.redis_url, senders)
    return _erase_sql_trackers(settings.tracker_database_url, senders)


def _erase_redis_trackers(url: str, senders: Sequence[str]) -> int:
    import redis
    from rasa.core.tracker_store import DEFAULT_REDIS_TRACKER_STORE_KEY_PREFIX

    from bot.conversation_storage import redis_kwargs

    options = redis_kwargs(url)
    client = redis.StrictRedis(
        host=options["host"], port=options["port"], db=options["db"], username=options["username"],
        password=options["password"], ssl=options["use_ssl"], socket_connect_timeout=10, socket_timeout=30,
    )
    try:
        # RedisTrackerStore's keys: its prefix + sender id (endpoints.yml sets no key_prefix of its own).
        return int(client.delete(*(DEFAULT_REDIS_TRACKER_STORE_KEY_PREFIX + sender for sender in senders)))
    finally:
        client.close()


def _erase_sql_trackers(url: str, senders: Sequence[str]) -> int:
    from rasa.core.tracker_store import SQLTrackerStore
    from sqlalchemy import create_engine, inspect

    from bot.conversation_storage import CONVERSATION_FENCES, sql_kwargs

    options = sql_kwargs(url)
    if options["dialect"] == "sqlite" and not Path(options["db"] or "").is_file():
        return 0  # no conversation was ever stored: do not create the file just to find it empty
    # The URL Rasa's SQLTrackerStore builds from the same options, and its events table.
    engine_url = SQLTrackerStore.get_db_url(**options)
    connect_args = {"timeout": 30} if options["dialect"] == "sqlite" else {"connect_timeout": 10}
    engine = create_engine(engine_url, future=True, hide_parameters=True, connect_args=connect_args)
    events = SQLTrackerStore.SQLEvent.__table__
    try:
        with engine.begin() as connection:
            if not inspect(connection).has_table(events.name):
                return 0
            found = 0
            for start in range(0, len(senders), 500):  # keeps every IN list short, whatever the caller passed
                chunk = list(senders[start:start + 500])
                found += int(connection.execute(
                    select(func.count(func.distinct(events.c.sender_id))).where(events.c.sender_id.in_(chunk))
                ).scalar_one())
                connection.execute(delete(events).where(events.c.sender_id.in_(chunk)))
                if inspect(connection).has_table(CONVERSATION_FENCES.name):
                    connection.execute(delete(CONVERSATION_FENCES).where(CONVERSATION_FENCES.c.sender_id.in_(chunk)))
            return found
    finally:
        engine.dispose()


def erase_customer_everywhere(database: Database, settings: Settings, customer_id: int, *, actor: str,
                              now: datetime) -> ErasureReport:
    """erase_customer and erase_conversations together, then the erasure in the structured log.

    The trackers go while the store's transaction is still open: if they cannot be reached (Redis down),
    nothing is committed and the erasure can simply run again. Once the identities are gone the store
    no longer knows which conversations were the customer's."""
    with database.session(write=True) as session:
        report = erase_customer(session, customer_id, actor=actor, now=now)
        report = replace(report, trackers_erased=erase_conversations(settings, report.sender_ids))
    log_erasure(report)
    return report


def erase_chat_everywhere(database: Database, settings: Settings, channel: str, sender_id: str, *, actor: str,
                          now: datetime) -> ErasureReport:
    """erase_chat and the chat's conversation in the tracker store together (as erase_customer_everywhere)."""
    with database.session(write=True) as session:
        report = erase_chat(session, channel, sender_id, actor=actor, now=now)
        report = replace(report, trackers_erased=erase_conversations(settings, report.sender_ids))
    log_erasure(report)
    return report


def log_erasure(report: ErasureReport) -> None:
    """The audit record: who erased which customer id when, and how much — never what was erased."""
    log.info(
        "privacy.customer_erased", customer_id=report.customer_id, actor=report.actor,
        erased_at=report.erased_at.isoformat(), deleted=report.deleted, anonymised=report.anonymised,
        points_forfeited=report.points_forfeited, conversations=len(report.conversations),
        trackers_erased=report.trackers_erased, nothing_left=report.nothing_left,
    )


def _blank_store_deliveries(session: Session, customer: Customer) -> int:
    """Empty the stored webhook deliveries about the customer (bot/integrations/): those of their store
    customer id and of their orders, which carry their e-mail, name and addresses. Pending ones are ignored
    from now on: what they would have applied is about a person who is gone."""
    from bot.models import StoreEvent, StoreOrderRef

    orders = select(Order.external_id).where(Order.customer_id == customer.id)
    refs = session.execute(select(StoreOrderRef.source, StoreOrderRef.shop, StoreOrderRef.store_order_id)
                           .where(StoreOrderRef.order_external_id.in_(orders))).all()
    resources = [f"order:{store_order}" for _, _, store_order in refs]
    resources += [f"order:{name}" for name in session.execute(orders).scalars()]  # stores that key by our id
    if customer.external_id:
        resources.append(f"customer:{customer.external_id}")
    if not resources:
        return 0
    about = StoreEvent.resource.in_(sorted(set(resources)))
    session.execute(update(StoreEvent).where(about, StoreEvent.state == "pending")
                    .values(state="ignored", outcome="its customer's data was erased", next_attempt_at=None)
                    .execution_options(synchronize_session=False))
    return _update(session, StoreEvent, and_(about, StoreEvent.payload != "{}"), {"payload": "{}"})


# ---------------------------------------------------------------------------------------------
# Export (a data subject's request to see what is held)

# What a data request's file holds, by section: the rows of each kind that are the customer's (as a guest too).
EXPORT_FORMAT = "rapport.customer-data.v1"


def export_customer_data(session: Session, customer_id: int, *, now: datetime) -> Dict[str, Any]:
    """Everything the store holds about the customer, as JSON-ready data the merchant can hand over: the
    profile and chat identities, the points ledger, orders (lines, refunds, tracking), reviews, feedback,
    transcripts, handoffs, quiz runs, searches, submitted content, follow claims and message consents. UnknownCustomer when
    no customer has this id."""
    from bot.models import LedgerEntry, OrderLine, OrderRefund

    customer = _customer(session, customer_id)
    pairs = _conversations(session, customer_id)

    def rows(model: Any, condition: ColumnElement) -> List[Dict[str, Any]]:
        found = session.execute(select(model).where(condition).order_by(model.id)).scalars()
        return [_row(item) for item in found]

    orders = []
    for order in session.execute(select(Order).where(Order.customer_id == customer_id).order_by(Order.id)).scalars():
        view = _row(order)
        view["lines"] = rows(OrderLine, OrderLine.order_id == order.id)
        view["refunds"] = rows(OrderRefund, OrderRefund.order_id == order.id)
        orders.append(view)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "customer": _row(customer),
        "identities": rows(ChannelIdentity, ChannelIdentity.customer_id == customer_id),
        "ledger": rows(LedgerEntry, LedgerEntry.customer_id == customer_id),
        "orders": orders,
        "reviews": rows(Review, _owned(Review, customer_id, pairs)),
        "feedback": rows(Feedback, _owned(Feedback, customer_id, pairs)),
        # Conversations with reward and friend codes masked but their last 4, as in the console: the file
        # passes through the merchant's hands, and a code in it must not be spendable.
        "transcripts": _codes_masked(rows(Transcript, _owned(Transcript, customer_id, pairs))),
        "handoffs": _codes_masked(rows(HandoffRequest, _owned(HandoffRequest, customer_id, pairs))),
        "quiz_runs": rows(QuizRun, _owned(QuizRun, customer_id, pairs)),
        "searches": rows(ProductSearch, _owned(ProductSearch, customer_id, pairs)),
        "content": rows(ContentSubmission, _owned(ContentSubmission, customer_id, pairs)),
        "social_follow_claims": rows(SocialFollowClaim, SocialFollowClaim.customer_id == customer_id),
        "message_consents": rows(MessageConsent, or_(
            MessageConsent.customer_id == customer_id,
            _any_pair(MessageConsent.channel, MessageConsent.sender_id, pairs))),
    }


def _codes_masked(value: Any) -> Any:
    """Every text inside `value` (rows, their JSON columns) with reward and friend codes masked."""
    if isinstance(value, str):
        return mask_codes_in(value)
    if isinstance(value, list):
        return [_codes_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: _codes_masked(item) for key, item in value.items()}
    return value


def _row(item: Any) -> Dict[str, Any]:
    """A model row's columns as JSON values (times in ISO 8601, money as strings)."""
    view: Dict[str, Any] = {}
    for column in item.__table__.columns:
        value = getattr(item, column.key)
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = f"{value:.2f}"
        view[column.key] = value
    return view


# ---------------------------------------------------------------------------------------------
# Helpers


def _customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(f"no customer with id {customer_id}")
    return customer


def _channel_names(channel: str) -> List[str]:
    """Every channel name whose sender ids live in `channel`'s namespace ("rest" → rest, cmdline)."""
    namespace = identity_channel(channel)
    return sorted({channel, namespace} | {name for name in _KNOWN_CHANNELS if identity_channel(name) == namespace})


def _any_pair(channel_column: Any, sender_column: Any, pairs: Sequence[Pair]) -> ColumnElement:
    if not pairs:
        return false()
    return or_(*(and_(channel_column.in_(_channel_names(channel)), sender_column == sender) for channel, sender in pairs))


def _owned(model: Any, customer_id: int, pairs: Sequence[Pair]) -> ColumnElement:
    """Rows of the customer, or of one of their conversations while they were a guest."""
    return or_(model.customer_id == customer_id, _any_pair(model.channel, model.sender_id, pairs))


def _conversations(session: Session, customer_id: int) -> List[Pair]:
    """Every (channel, sender) known to be the customer's: identities, and the senders of their own rows."""
    found: Set[Tuple[Optional[str], Optional[str]]] = set()
    found.update(tuple(row) for row in session.execute(
        select(ChannelIdentity.channel, ChannelIdentity.external_id).where(ChannelIdentity.customer_id == customer_id)
    ).all())
    for model in (Transcript, Feedback, HandoffRequest, QuizRun, ProductSearch, Review, ContentSubmission):
        found.update(tuple(row) for row in session.execute(
            select(model.channel, model.sender_id).where(model.customer_id == customer_id).distinct()).all())
    found.update(tuple(row) for row in session.execute(
        select(LinkCode.used_channel, LinkCode.used_sender)
        .where(LinkCode.customer_id == customer_id, LinkCode.used_sender.is_not(None))).all())
    found.update(tuple(row) for row in session.execute(
        select(Referral.friend_channel, Referral.friend_sender_id)
        .where(Referral.friend_customer_id == customer_id, Referral.friend_sender_id.is_not(None))).all())
    return sorted({(identity_channel(channel), sender) for channel, sender in found
                   if channel and sender and sender != ERASED_SENDER and not sender.startswith(ERASED_SENDER + ":")})


def _count(session: Session, model: Any, condition: ColumnElement) -> int:
    return int(session.execute(select(func.count()).select_from(model).where(condition)).scalar_one())


def _delete(session: Session, model: Any, condition: ColumnElement) -> int:
    result = session.execute(delete(model).where(condition).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def _update(session: Session, model: Any, condition: ColumnElement, values: Dict[str, Any]) -> int:
    result = session.execute(update(model).where(condition).values(**values)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)
