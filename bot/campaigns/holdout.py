"""Which audience members of a campaign are held out (not messaged): a keyed hash of the campaign and the
customer, so the split is the same at every dry run and at the send, independent between campaigns, and
random-looking (no relation to ids, sign-up order or anything else about the customer)."""
from __future__ import annotations

import hashlib

BUCKETS = 10_000  # percent × 100: shares down to 0.01 %


def holdout_bucket(campaign_id: int, customer_id: int) -> int:
    digest = hashlib.sha256(f"rapport-campaign-holdout:{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_holdout(campaign_id: int, customer_id: int, percent: float) -> bool:
    return holdout_bucket(campaign_id, customer_id) < round(percent * BUCKETS / 100)
