"""Customers and who they are on each channel: the one place a customer is looked up (by our id, email, the
store's id or a chat sender), found or created from what the store knows, and linked to a chat."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Dict, Iterable, List, Optional, Sequence

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.db import Database, transaction
from bot.log import get_logger
from bot.models import ChannelIdentity, Customer
from bot.shared.text import has_control_characters, normalize_email
from bot.shared.time_zones import known_time_zone

log = get_logger(__name__)

# Rasa's developer channels share one namespace of sender ids: `rasa shell` ("cmdline") talks
# through the REST channel, so a demo sender linked on "rest" is the same person in the shell.
_CHANNEL_NAMESPACES = {"cmdline": "rest", "rest": "rest"}
CUSTOMER_KEYS = ("id", "email", "external_id")
MAX_ID = 2 ** 31 - 1  # ids are 32-bit integers in the database: a larger one is nobody, not an overflow


class IdentityError(ValueError):
    """A customer or identity cannot be created or linked as asked."""


class CustomerConflict(IdentityError):
    """What the store says about a customer contradicts what we know (an email and a store id that belong to
    two customers, or a store id that would change)."""


# --- looking customers up ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRef:
    """How a caller names a customer: our id, their email, or the store's own customer id."""

    key: str  # one of CUSTOMER_KEYS
    value: Any

    @classmethod
    def parse(cls, text: str) -> "CustomerRef":
        """An operator's "42" (our id) or "ann@example.com" (an email)."""
        text = (text or "").strip()
        if text.isascii() and text.isdigit():
            return cls("id", int(text))
        return cls("email", normalize_email(text))

    def __str__(self) -> str:
        return f"{self.key} {self.value!r}"


def find_customer(session: Session, ref: CustomerRef) -> Optional[Customer]:
    """The customer `ref` names, or None."""
    if ref.key == "id":
        return session.get(Customer, ref.value) if isinstance(ref.value, int) and 1 <= ref.value <= MAX_ID else None
    if ref.key == "email":
        return customer_by_email(session, ref.value)
    if ref.key == "external_id":
        return customer_by_store_id(session, ref.value)
    raise ValueError(f"a customer is named by one of {', '.join(CUSTOMER_KEYS)}, not {ref.key!r}")


def customer_by_email(session: Session, email: Optional[str]) -> Optional[Customer]:
    wanted = normalize_email(email)
    if not wanted:
        return None
    return session.execute(select(Customer).where(Customer.email == wanted)).scalar_one_or_none()


def customers_by_email(session: Session, emails: Iterable[str]) -> Dict[str, Customer]:
    """customer_by_email for many emails in one query: normalised email → customer, for those found."""
    wanted = sorted({normalize_email(email) for email in emails} - {""})
    found: Dict[str, Customer] = {}
    for start in range(0, len(wanted), 500):
        for customer in session.execute(select(Customer).where(Customer.email.in_(wanted[start:start + 500]))).scalars():
            found[customer.email] = customer
    return found


def customer_ids_by_email(session: Session, emails: Iterable[str]) -> Dict[str, int]:
    """customers_by_email's ids alone (no rows loaded as objects: a bulk import needs only the ids)."""
    wanted = sorted({normalize_email(email) for email in emails} - {""})
    found: Dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        found.update((email, customer_id) for customer_id, email in session.execute(
            select(Customer.id, Customer.email).where(Customer.email.in_(wanted[start:start + 500]))))
    return found


def customer_by_store_id(session: Session, store_id: Optional[str]) -> Optional[Customer]:
    if not store_id:
        return None
    return session.execute(select(Customer).where(Customer.external_id == store_id)).scalar_one_or_none()


def customers_by_store_id(session: Session, store_ids: Iterable[Optional[str]]) -> Dict[str, Customer]:
    """customer_by_store_id for many store ids in one query per 500: store id → customer, for those found."""
    wanted = sorted({store_id for store_id in store_ids if store_id})
    found: Dict[str, Customer] = {}
    for start in range(0, len(wanted), 500):
        for customer in session.execute(
                select(Customer).where(Customer.external_id.in_(wanted[start:start + 500]))).scalars():
            found[customer.external_id] = customer
    return found


def find_customers(session: Session, query: str, limit: int = 20) -> List[Customer]:
    """Customers by e-mail (exact, any case), by id ("42" or "#42") or by a chat sender id on any channel —
    what a merchant types to find someone; none for a query with control characters."""
    wanted = (query or "").strip()
    if not wanted or has_control_characters(wanted):
        return []
    found: Dict[int, Customer] = {}
    if "@" in wanted:
        by_email = customer_by_email(session, wanted)
        if by_email is not None:
            found[by_email.id] = by_email
    number = wanted.lstrip("#")
    # ASCII digits only: "²" and "①" are isdigit() but int() refuses them; the length bound keeps int() cheap.
    if number.isascii() and number.isdigit() and len(number) <= len(str(MAX_ID)):
        by_id = find_customer(session, CustomerRef("id", int(number)))
        if by_id is not None:
            found[by_id.id] = by_id
    by_sender = select(Customer).join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id) \
        .where(ChannelIdentity.external_id == wanted).order_by(Customer.id).limit(limit)
    for customer in session.execute(by_sender).scalars():
        found.setdefault(customer.id, customer)
    return list(found.values())[:limit]


def identity_channel(input_channel: Optional[str]) -> str:
    """The namespace a channel's sender ids live in."""
    name = (input_channel or "rest").lower()
    return _CHANNEL_NAMESPACES.get(name, name)


def customer_for_sender(session: Session, input_channel: Optional[str], sender_id: str) -> Optional[Customer]:
    """The customer linked to this sender on this channel, or None for a guest."""
    return session.execute(
        select(Customer)
        .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
        .where(
            ChannelIdentity.channel == identity_channel(input_channel),
            ChannelIdentity.external_id == sender_id,
        )
    ).scalar_one_or_none()


# --- finding or creating -----------------------------------------------------------------------------


def create_customer(
    session: Session,
    email: Optional[str],
    first_name: Optional[str] = None,
    last_name: Optional[str] = None,
    birthday: Optional[date] = None,
    *,
    store_id: Optional[str] = None,
    created_at: Optional[datetime] = None,
) -> Customer:
    """A new customer (in a savepoint); IdentityError when the email or store id is already someone's."""
    normalized = normalize_email(email) or None
    if normalized is not None and "@" not in normalized:
        raise IdentityError(f"{email!r} is not an email address")
    customer = Customer(
        email=normalized,
        first_name=first_name,
        last_name=last_name,
        birthday=birthday,
        external_id=store_id,
        points_balance=0,
        created_at=created_at or clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(customer)
            session.flush()
    except IntegrityError:
        taken = f"email {normalized}" if customer_by_email(session, normalized) is not None else f"store id {store_id}"
        raise IdentityError(f"a customer with {taken} already exists") from None
    return customer


@dataclass(frozen=True)
class CustomerFacts:
    """What a store (its API call, its export) says about one of its customers."""

    email: str
    store_id: Optional[str] = None
    first_name: Optional[str] = None
    last_name: Optional[str] = None
    birthday: Optional[date] = None


@dataclass(frozen=True)
class FoundCustomer:
    customer: Customer
    created: bool  # a new customer row
    joined: bool  # the store named this customer with an email for the first time: new, or one a chat made
    updated: bool  # an existing customer was given a store id, an email, a name or a birthday


def find_or_create_customer(session: Session, facts: CustomerFacts, *, email_may_change: bool = False,
                            at: Optional[datetime] = None, store_id_label: str = "external_id") -> FoundCustomer:
    """The customer these facts describe, created when new; missing store id, names and birthday filled in.

    Matched by email and by store id. A customer a chat made from a store id alone (the widget's signed-in
    shopper, no email yet) is the one the store now names. When the store id belongs to a customer with
    another email, `email_may_change` (an export: the shopper changed it in the store) takes the new email;
    otherwise it is a CustomerConflict, like an email whose customer has another store id. Messages call the
    store id what the caller's store calls it (`store_id_label`).
    """
    email = normalize_email(facts.email)
    if "@" not in email:
        raise IdentityError(f"{facts.email!r} is not an email address")
    by_email = customer_by_email(session, email)
    by_id = customer_by_store_id(session, facts.store_id)
    if by_email is not None and by_id is not None and by_email.id != by_id.id:
        raise CustomerConflict(f"{store_id_label} {facts.store_id} is {by_id.email or f'customer {by_id.id}'}, "
                               f"but {email} is another customer")
    if by_email is not None and facts.store_id and by_email.external_id not in (None, facts.store_id):
        raise CustomerConflict(f"{email} has {store_id_label} {by_email.external_id}, not {facts.store_id}")
    if by_email is None and by_id is not None and by_id.email is not None and not email_may_change:
        raise CustomerConflict(f"{store_id_label} {facts.store_id!r} belongs to a customer with another email")
    customer = by_email or by_id
    if customer is None:
        try:
            created = create_customer(session, email, facts.first_name, facts.last_name, facts.birthday,
                                      store_id=facts.store_id, created_at=at)
        except IdentityError:
            # A concurrent request created them first (or took the store id): theirs is the customer.
            if customer_by_email(session, email) is None and customer_by_store_id(session, facts.store_id) is None:
                raise
            return find_or_create_customer(session, facts, email_may_change=email_may_change, at=at,
                                           store_id_label=store_id_label)
        return FoundCustomer(created, created=True, joined=True, updated=False)
    joined = customer.email is None
    changes = {
        "email": email if customer.email != email else None,
        "external_id": facts.store_id if facts.store_id and customer.external_id is None else None,
        "first_name": facts.first_name if facts.first_name and not customer.first_name else None,
        "last_name": facts.last_name if facts.last_name and not customer.last_name else None,
        "birthday": facts.birthday if facts.birthday and customer.birthday is None else None,
    }
    changes = {name: value for name, value in changes.items() if value is not None}
    if changes:
        try:
            with session.begin_nested():
                for name, value in changes.items():
                    setattr(customer, name, value)
                session.flush()
        except IntegrityError:
            session.refresh(customer)
            raise CustomerConflict(f"{store_id_label} {facts.store_id!r} or {email} belongs to another customer") from None
    return FoundCustomer(customer, created=False, joined=joined, updated=bool(changes))


def found_unchanged(customer: Customer, facts: CustomerFacts) -> bool:
    """Whether find_or_create_customer, given these facts, would return this customer (found by the facts'
    email) as it is: no conflict, nothing to fill in. Bulk callers (bot/membership.py join_many) answer such
    rows without a statement and send every other one through find_or_create_customer."""
    return (customer.email == normalize_email(facts.email)
            and (not facts.store_id or customer.external_id == facts.store_id)
            and not (facts.first_name and not customer.first_name)
            and not (facts.last_name and not customer.last_name)
            and not (facts.birthday and customer.birthday is None))


def insert_customers(session: Session, facts: Sequence[CustomerFacts], created_at: datetime) -> Dict[str, int]:
    """New customers, as create_customer makes each, with one INSERT: normalised email → id. The caller has
    checked that no customer has these emails or store ids (a customer who does fails the whole statement with
    IntegrityError: then create them one by one)."""
    rows = []
    for fact in facts:
        email = normalize_email(fact.email)
        if "@" not in email:
            raise IdentityError(f"{fact.email!r} is not an email address")
        rows.append({"email": email, "first_name": fact.first_name, "last_name": fact.last_name,
                     "birthday": fact.birthday, "external_id": fact.store_id, "points_balance": 0,
                     "created_at": created_at})
    if not rows:
        return {}
    connection = session.connection()
    connection.execute(insert(Customer.__table__), rows)
    emails = [row["email"] for row in rows]
    ids: Dict[str, int] = {}
    for start in range(0, len(emails), 500):
        ids.update((email, customer_id) for customer_id, email in connection.execute(
            select(Customer.id, Customer.email).where(Customer.email.in_(emails[start:start + 500]))))
    return ids


# --- chats -------------------------------------------------------------------------------------------


def link_identity(session: Session, customer_id: int, input_channel: str, external_id: str) -> ChannelIdentity:
    """Link a channel sender to a customer (idempotent for the same customer)."""
    channel = identity_channel(input_channel)
    existing = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.customer_id != customer_id:
            raise IdentityError(f"{channel} sender {external_id!r} is already linked to another customer")
        return existing
    identity = ChannelIdentity(
        channel=channel, external_id=external_id, customer_id=customer_id, created_at=clock.now()
    )
    session.add(identity)
    session.flush()
    return identity


def record_reachability(session: Session, input_channel: str, sender_id: str, reachable: bool,
                        at: datetime) -> bool:
    """The chat took (reachable) or refused (blocked the bot) messages as of `at`. True when the chat is linked
    to a customer and so was recorded; a guest's chat has nowhere to record it and nothing pushed to it."""
    identity = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == identity_channel(input_channel),
                                      ChannelIdentity.external_id == sender_id)
    ).scalar_one_or_none()
    if identity is None:
        return False
    if reachable:
        identity.unreachable_since = None
    elif identity.unreachable_since is None:
        identity.unreachable_since = at
    session.flush()
    return True


def chat_reachability(input_channel: str, sender_id: str, reachable: bool, at: datetime, *,
                      database: Optional[Database] = None) -> bool:
    """record_reachability in its own write transaction (for channels, which open none)."""
    return transaction(lambda session: record_reachability(session, input_channel, sender_id, reachable, at),
                       write=True, database=database)


def record_time_zone(session: Session, input_channel: str, sender_id: str, zone: Any) -> bool:
    """The chat's browser reports the shopper's time zone: the outbox keeps quiet hours in it. True when the
    chat is linked to a customer and the zone is a known one (anything else is ignored, never stored)."""
    if known_time_zone(zone) is None:
        return False
    customer = customer_for_sender(session, input_channel, sender_id)
    if customer is None:
        return False
    if customer.time_zone != zone:
        customer.time_zone = zone
        session.flush()
    return True


def chat_time_zone(input_channel: str, sender_id: str, zone: Any, *, database: Optional[Database] = None) -> bool:
    """record_time_zone in its own transaction (for channels, which open none); writes only for a known zone."""
    if known_time_zone(zone) is None:
        return False
    return transaction(lambda session: record_time_zone(session, input_channel, sender_id, zone),
                       write=True, database=database)


@dataclass(frozen=True)
class ChatOwner:
    """The customer a chat is linked to; `store_id` is the store's own id for them, None when the customer
    was linked another way (a one-time code) and the store never named them by id."""

    customer_id: int
    store_id: Optional[str]


def chat_owner(input_channel: str, sender_id: str, *, database: Optional[Database] = None) -> Optional[ChatOwner]:
    """Whose this chat is, in its own transaction (for channels, which open none); None for a guest."""

    def read(session: Session) -> Optional[ChatOwner]:
        customer = customer_for_sender(session, input_channel, sender_id)
        return None if customer is None else ChatOwner(customer.id, customer.external_id)

    return transaction(read, database=database)


def link_chat_to_store_customer(input_channel: str, sender_id: str, store_id: str, *,
                                database: Optional[Database] = None) -> int:
    """link_store_customer in its own transaction (for channels); the customer's id."""
    return transaction(lambda session: link_store_customer(session, input_channel, sender_id, store_id).id,
                       write=True, database=database)


def link_store_customer(session: Session, input_channel: str, sender_id: str, store_id: str) -> Customer:
    """Link a chat to the store's customer with this store id (a signed-in widget shopper), making the
    customer when the store's shopper is new to us: a customer with the store id and no email yet, which
    the store's later registration of that shopper completes (find_or_create_customer).
    IdentityError when the chat is someone else's."""
    customer = customer_by_store_id(session, store_id)
    if customer is None:
        try:
            customer = create_customer(session, None, store_id=store_id)
            log.info("customer.created_for_chat", customer_id=customer.id, channel=identity_channel(input_channel))
        except IdentityError:  # created meanwhile by another conversation of the same shopper
            customer = customer_by_store_id(session, store_id)
            if customer is None:
                raise
    link_identity(session, customer.id, input_channel, sender_id)
    return customer
