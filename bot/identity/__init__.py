"""Customers across channels: who is this sender?"""
from bot.identity.customers import (
    IdentityError,
    create_customer,
    customer_for_sender,
    identity_channel,
    link_identity,
)

__all__ = ["IdentityError", "create_customer", "customer_for_sender", "identity_channel", "link_identity"]
