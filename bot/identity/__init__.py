"""Customers across channels: who is this sender, which customer does the store mean."""
from bot.identity.customers import (
    ChatOwner,
    chat_owner,
    chat_reachability,
    chat_time_zone,
    record_time_zone,
    record_reachability,
    link_chat_to_store_customer,
    CustomerConflict,
    CustomerFacts,
    CustomerRef,
    FoundCustomer,
    IdentityError,
    create_customer,
    customer_by_email,
    customer_by_store_id,
    customer_for_sender,
    find_customer,
    find_customers,
    find_or_create_customer,
    identity_channel,
    link_identity,
    link_store_customer,
)

__all__ = [
    "ChatOwner", "chat_owner", "chat_reachability", "chat_time_zone", "record_time_zone", "record_reachability", "link_chat_to_store_customer",
    "CustomerConflict", "CustomerFacts", "CustomerRef", "FoundCustomer", "IdentityError", "create_customer",
    "customer_by_email", "customer_by_store_id", "customer_for_sender", "find_customer", "find_customers", "find_or_create_customer",
    "identity_channel", "link_identity", "link_store_customer",
]
