"""Social-follow claims: the network a shopper means, one claim per network, the merchant's approval paying
earning.social_follow once."""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Optional

import pytest
from sqlalchemy import func, select

from bot.advocacy.moderation import ModerationError
from bot.advocacy.social import SocialClaimOutcome, claim_social_follow, moderate_social_claim, normalize_network
from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.earning import award, credit_for
from bot.loyalty.ledger import balance, verify_balances
from bot.models import LedgerEntry, OutboundMessage, SocialFollowClaim


@pytest.mark.parametrize("text, network", [
    ("instagram", "instagram"), ("Instagram", "instagram"), ("insta", "instagram"), ("IG", "instagram"),
    ("@instagram", "instagram"), ("fb", "facebook"), ("Facebook", "facebook"), ("tik tok", "tiktok"),
    ("Tik-Tok", "tiktok"), ("TikTok", "tiktok"), ("I follow you on insta now", "instagram"),
    ("youtube", None),  # not in this program
    ("insta and fb", None),  # two networks
    ("", None), ("pizza", None),
])
def test_normalize_network(program, text: str, network: Optional[str]) -> None:
    assert normalize_network(text, program) == network


def _customer(db: Database, email: str = "ann@example.com") -> int:
    with db.session(write=True) as session:
        return create_customer(session, email, "Ann").id


def _claim(db: Database, program, customer_id: int, network: str, clock, handle: Optional[str] = "@ann.smith"):
    with db.session(write=True) as session:
        return claim_social_follow(session, program, customer_id, network, handle, "telegram", clock.current)


def _claim_id(db: Database, customer_id: int, network: str) -> int:
    with db.session() as session:
        return session.execute(select(SocialFollowClaim.id).where(
            SocialFollowClaim.customer_id == customer_id, SocialFollowClaim.network == network)).scalar_one()


def test_one_claim_per_network(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    assert _claim(sqlite_db, program, ann, "insta", clock) == SocialClaimOutcome("pending", "instagram", 50)
    assert _claim(sqlite_db, program, ann, "IG", clock) == SocialClaimOutcome("already_pending", "instagram", 50)
    assert _claim(sqlite_db, program, ann, "tik tok", clock, handle="not a handle!") == SocialClaimOutcome(
        "pending", "tiktok", 50)
    assert _claim(sqlite_db, program, ann, "myspace", clock) == SocialClaimOutcome("unknown_network", None, 50)
    with sqlite_db.session() as session:
        claims = session.execute(select(SocialFollowClaim.network, SocialFollowClaim.handle, SocialFollowClaim.channel,
                                        SocialFollowClaim.status).order_by(SocialFollowClaim.id)).all()
        assert [tuple(claim) for claim in claims] == [
            ("instagram", "ann.smith", "telegram", "pending"), ("tiktok", None, "telegram", "pending")]
        assert balance(session, ann) == 0


def test_follows_earn_nothing_when_the_program_pays_nothing(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    off = dataclasses.replace(program, earning=dataclasses.replace(program.earning, social_follow=0))
    assert _claim(sqlite_db, off, ann, "insta", clock) == SocialClaimOutcome("off", "instagram", 0)
    with sqlite_db.session() as session:
        assert session.execute(select(func.count(SocialFollowClaim.id))).scalar_one() == 0


def test_a_follow_already_credited_through_the_ledger_cannot_be_claimed_again(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    with sqlite_db.session(write=True) as session:
        award(session, program, ann, credit_for(program, ann, "social_follow", "facebook", clock.current))
    assert _claim(sqlite_db, program, ann, "fb", clock) == SocialClaimOutcome("already_approved", "facebook", 50)


def test_concurrent_double_claims_store_one(any_db: Database, program, clock) -> None:
    ann = _customer(any_db)
    workers = 6
    barrier = Barrier(workers)

    def claim(_: int) -> str:
        barrier.wait()
        with any_db.session(write=True) as session:
            return claim_social_follow(session, program, ann, "instagram", None, "telegram", clock.current).status

    with ThreadPoolExecutor(workers) as pool:
        statuses = list(pool.map(claim, range(workers)))
    assert sorted(statuses) == ["already_pending"] * (workers - 1) + ["pending"]
    with any_db.session() as session:
        assert session.execute(select(func.count(SocialFollowClaim.id))).scalar_one() == 1


def test_approval_pays_once_and_rejection_tells_why(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    _claim(sqlite_db, program, ann, "instagram", clock)
    _claim(sqlite_db, program, ann, "tiktok", clock)
    instagram, tiktok = _claim_id(sqlite_db, ann, "instagram"), _claim_id(sqlite_db, ann, "tiktok")
    with sqlite_db.session(write=True) as session:
        result = moderate_social_claim(session, program, instagram, approve=True, actor="mia", note=None,
                                       now=clock.current)
        assert (result.status, result.points_awarded, result.customer_id) == ("approved", 50, ann)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ModerationError, match=f"social follow claim #{instagram} is already approved"):
            moderate_social_claim(session, program, instagram, approve=True, actor="mia", note=None, now=clock.current)
        with pytest.raises(ModerationError, match="needs a reason"):
            moderate_social_claim(session, program, tiktok, approve=False, actor="mia", note="", now=clock.current)
        moderate_social_claim(session, program, tiktok, approve=False, actor="mia",
                              note="We couldn't find @ann.smith among our followers", now=clock.current)
        assert balance(session, ann) == 50 and verify_balances(session) == []
        assert session.execute(select(LedgerEntry.idempotency_key)).scalars().all() == [f"social:{ann}:instagram"]
        notices = session.execute(select(OutboundMessage.kind, OutboundMessage.text).order_by(OutboundMessage.id)).all()
    # A claim once decided stays decided.
    assert _claim(sqlite_db, program, ann, "insta", clock).status == "already_approved"
    assert _claim(sqlite_db, program, ann, "tiktok", clock).status == "already_rejected"
    assert [tuple(notice) for notice in notices] == [
        ("social_approved", "Thanks for following us on Instagram! We've added 50 points to your account."),
        ("social_rejected", "Thanks for following us on TikTok. We couldn't confirm the follow: "
                                   "We couldn't find @ann.smith among our followers."),
    ]


def test_a_network_taken_out_of_the_program_cannot_be_approved(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    _claim(sqlite_db, program, ann, "facebook", clock)
    claim_id = _claim_id(sqlite_db, ann, "facebook")
    changed = dataclasses.replace(program, earning=dataclasses.replace(
        program.earning, social_networks=("instagram", "tiktok")))
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ModerationError, match="no longer one of the program's social networks"):
            moderate_social_claim(session, changed, claim_id, approve=True, actor="mia", note=None, now=clock.current)
        assert session.get(SocialFollowClaim, claim_id).status == "pending"
        assert moderate_social_claim(session, changed, claim_id, approve=False, actor="mia",
                                     note="We no longer reward Facebook follows", now=clock.current).status == "rejected"
