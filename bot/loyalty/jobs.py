"""The scheduled loyalty jobs: tier reviews at the end of a term, then points expiry.

The web app runs `run_loyalty_jobs` every LOYALTY_JOBS_INTERVAL_MINUTES; the CLI can run the same
function by hand. Both jobs are idempotent, so a repeated or overlapping run (two web processes, a
manual run during a scheduled one) changes nothing twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Dict, List, Set

from sqlalchemy.orm import Session

from bot.log import get_logger
from bot.loyalty.earning import award_tier_entry
from bot.loyalty.expiry import expire_points
from bot.loyalty.program import Program
from bot.loyalty.tiers import customers_due_for_review, recompute_tier

if TYPE_CHECKING:
    from bot.db import Database

log = get_logger(__name__)

TIER_REVIEW_BATCH = 200


@dataclass(frozen=True)
class TierReviewReport:
    reviewed: int = 0
    promoted: int = 0
    demoted: int = 0
    failed: int = 0


def review_tiers(
    database: "Database", program: Program, now: datetime, *, batch_size: int = TIER_REVIEW_BATCH
) -> TierReviewReport:
    """Recompute the tier of every customer whose held tier's term has ended, one short write
    transaction per batch (row locks are held for one batch, not for the whole run).

    A reviewed customer is no longer due (their term moves on), so each batch asks again from the
    start. A customer whose review fails is rolled back alone (savepoint), logged, and skipped for
    the rest of this run, so one bad row can neither block the others nor loop forever.
    """
    attempted: Set[int] = set()
    reviewed = promoted = demoted = failed = 0
    while True:
        with database.session(write=True) as session:
            batch = _next_batch(session, now, batch_size, attempted)
            if not batch:
                break
            for customer_id in batch:
                attempted.add(customer_id)
                try:
                    with session.begin_nested():
                        change = recompute_tier(session, program, customer_id, now, "tier review", award_tier_entry)
                except Exception:  # noqa: BLE001 - isolate the customer; the next run retries them
                    failed += 1
                    log.exception("tiers.review_failed", customer_id=customer_id)
                    continue
                reviewed += 1
                if change is not None and change.direction == "up":
                    promoted += 1
                elif change is not None:
                    demoted += 1
    return TierReviewReport(reviewed=reviewed, promoted=promoted, demoted=demoted, failed=failed)


def _next_batch(session: Session, now: datetime, batch_size: int, attempted: Set[int]) -> List[int]:
    for ids in customers_due_for_review(session, now, batch_size):
        fresh = [customer_id for customer_id in ids if customer_id not in attempted]
        if fresh:
            return fresh
    return []


def run_loyalty_jobs(database: "Database", program: Program, now: datetime) -> Dict[str, int]:
    """Tier reviews, then points expiry, as of `now`; the counts of what changed."""
    tiers = review_tiers(database, program, now)
    expiry = expire_points(database, program, now)
    return {
        "tiers_reviewed": tiers.reviewed,
        "tiers_promoted": tiers.promoted,
        "tiers_demoted": tiers.demoted,
        "tiers_failed": tiers.failed,
        "customers_expired": expiry.expired_customers,
        "points_expired": expiry.expired_points,
        "expiry_warnings_queued": expiry.warnings_queued,
    }
