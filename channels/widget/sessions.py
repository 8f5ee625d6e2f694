"""Widget sessions, signed by the server: a conversation's token bound to the store customer (or a guest)
and the browser's device key, and the store's customer claim checked with its token (bot/identity/
customer_tokens.py). Pure functions: a copied or forged session id never opens someone else's chat."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from bot.identity.customer_tokens import verify_customer_token

INVALID_CUSTOMER_TOKEN = "invalid customer token"
SESSION_KEY_CONTEXT = b"rapport-widget-session"
DEVICE_HASH_CONTEXT = b"rapport-widget-device:"
_CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_DEVICE_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")
TOKEN_CHARS = 32 + 1 + 64
MAX_CUSTOMER_ID_CHARS = 64  # Customer.external_id


def session_key(secret: str) -> bytes:
    """The key of session signatures, derived from the secret: a session signature can never pass as a
    customer token (those are keyed with the secret itself), nor the reverse."""
    return hmac.new(secret.encode("utf-8"), SESSION_KEY_CONTEXT, hashlib.sha256).digest()


def new_conversation_id() -> str:
    return secrets.token_hex(16)


def device_hash(device_key: str) -> str:
    return hashlib.sha256(DEVICE_HASH_CONTEXT + device_key.encode("utf-8")).hexdigest()


def valid_device_key(value: Any) -> bool:
    return isinstance(value, str) and _DEVICE_KEY.fullmatch(value) is not None


def _binding(conversation_id: str, customer_id: Optional[str], device: Optional[str]) -> bytes:
    # Each field length-prefixed, so that no two different bindings are the same bytes.
    parts = (conversation_id, customer_id or "", device or "")
    return b"".join(b"%d:%s" % (len(part.encode("utf-8")), part.encode("utf-8")) for part in parts)


def sign_session(secret: str, conversation_id: str, customer_id: Optional[str] = None,
                 device: Optional[str] = None) -> str:
    """The token of a conversation bound to a store customer ("" or None: a guest) and a device hash."""
    signature = hmac.new(session_key(secret), _binding(conversation_id, customer_id, device), hashlib.sha256)
    return f"{conversation_id}.{signature.hexdigest()}"


def conversation_of(token: Any) -> Optional[str]:
    """The conversation id of a well-formed token; its signature is NOT checked here."""
    if not isinstance(token, str) or len(token) != TOKEN_CHARS:
        return None
    conversation_id, _, signature = token.partition(".")
    if _CONVERSATION_ID.fullmatch(conversation_id) and _HEX_SHA256.fullmatch(signature):
        return conversation_id
    return None


def verify_session(secret: str, token: Any, customer_id: Optional[str] = None,
                   device: Optional[str] = None) -> Optional[str]:
    """The conversation id if `token` was issued for exactly this customer and device, else None."""
    conversation_id = conversation_of(token)
    if conversation_id is None:
        return None
    expected = sign_session(secret, conversation_id, customer_id, device)
    return conversation_id if hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")) else None


@dataclass(frozen=True)
class CustomerClaim:
    """What a client said about its shopper: a verified store customer id, or why it was refused."""

    customer_id: Optional[str] = None
    error: Optional[str] = None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def store_customer_id(value: Any) -> Optional[str]:
    """The store's customer id as text (JSON numbers accepted), or None if it cannot be one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    # Taken as given (the token signs exactly these characters): no padding, no control characters.
    if not value or value != value.strip() or len(value) > MAX_CUSTOMER_ID_CHARS or not value.isprintable():
        return None
    return value


def customer_claim(secret: str, data: Any) -> Optional[CustomerClaim]:
    """None when `data` names no customer (a guest); else the verified id or the refusal."""
    if not isinstance(data, Mapping):
        return None
    raw_id, raw_token = data.get("customer_id"), data.get("customer_token")
    if _blank(raw_id) and _blank(raw_token):
        return None
    customer_id = store_customer_id(raw_id)
    if customer_id is None or not verify_customer_token(secret, customer_id, raw_token):
        return CustomerClaim(error=INVALID_CUSTOMER_TOKEN)
    return CustomerClaim(customer_id=customer_id)
