from __future__ import annotations

from datetime import date
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.models import ChannelIdentity, Customer

# Rasa's developer channels share one namespace of sender ids: `rasa shell` ("cmdline") talks
# through the REST channel, so a demo sender linked on "rest" is the same person in the shell.
_CHANNEL_NAMESPACES = {"cmdline": "rest", "rest": "rest"}


class IdentityError(ValueError):
    """A customer or identity cannot be created or linked as asked."""


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


def create_customer(
    session: Session,
    email: Optional[str],
    first_name: Optional[str] = None,
    last_name: Optional[str] = None,
    birthday: Optional[date] = None,
) -> Customer:
    normalized = email.strip().lower() if email else None
    if normalized is not None and "@" not in normalized:
        raise IdentityError(f"{email!r} is not an email address")
    customer = Customer(
        email=normalized,
        first_name=first_name,
        last_name=last_name,
        birthday=birthday,
        points_balance=0,
        created_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(customer)
            session.flush()
    except IntegrityError:
        raise IdentityError(f"a customer with email {normalized} already exists") from None
    return customer


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
