"""The store's proof that a website-widget shopper is its signed-in customer: hex HMAC-SHA256 of the store's
customer id keyed with WIDGET_SIGNING_SECRET. The store's back-end makes it (bot/web/demo_store.py plays
one); the widget channel checks it before linking the chat to that customer."""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def customer_token(secret: str, customer_id: str) -> str:
    """What the store's back-end puts in its page for a signed-in shopper: hex HMAC-SHA256 of its own
    customer id with WIDGET_SIGNING_SECRET."""
    return hmac.new(secret.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_customer_token(secret: str, customer_id: Any, token: Any) -> bool:
    if not isinstance(customer_id, str) or not customer_id or not isinstance(token, str):
        return False
    given = token.strip().lower()
    if _HEX_SHA256.fullmatch(given) is None:
        return False
    return hmac.compare_digest(customer_token(secret, customer_id).encode("ascii"), given.encode("ascii"))
