"""Earning rules besides orders: each pays once per occasion."""
from datetime import datetime, timezone

import pytest

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.earning import award, credit_for, custom_credit
from bot.loyalty.ledger import LedgerError, balance, verify_balances
from bot.models import Customer

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def test_each_rule_pays_once_per_occasion(any_db: Database, program) -> None:
    with any_db.session(write=True) as session:
        cid = create_customer(session, "e@example.com").id
        occasions = [
            ("signup", None, NOW), ("signup", None, NOW),                      # once ever
            ("birthday", None, NOW), ("birthday", None, NOW.replace(month=9)),  # once a year …
            ("birthday", None, NOW.replace(year=2027)),                         # … every year
            ("social_follow", "Instagram", NOW), ("social_follow", "instagram", NOW), ("social_follow", "tiktok", NOW),
            ("review_photo", "review-7", NOW), ("review_photo", "review-7", NOW),
            ("quiz_completion", "chair-finder", NOW), ("quiz_completion", "chair-finder", NOW),
        ]
        created = [award(session, program, cid, credit_for(program, cid, action, ref, at), at=at).created
                   for action, ref, at in occasions]
        assert created == [True, False, True, False, True, True, False, True, True, False, True, False]
        assert balance(session, cid) == 100 + 500 * 2 + 50 * 2 + 200 + 25
        assert verify_balances(session) == []


def test_custom_actions_come_from_the_config_and_need_a_key(any_db: Database, program) -> None:
    with any_db.session(write=True) as session:
        cid = create_customer(session, "c@example.com").id
        credit = custom_credit(program, cid, "newsletter_signup", "shopify-42")
        assert award(session, program, cid, credit).created
        assert not award(session, program, cid, custom_credit(program, cid, "newsletter_signup", "shopify-42")).created
        assert balance(session, cid) == 50
        with pytest.raises(LedgerError, match="unknown custom action 'free_money'"):
            custom_credit(program, cid, "free_money", "k")
        with pytest.raises(LedgerError, match="idempotency key"):
            custom_credit(program, cid, "newsletter_signup", "")


@pytest.mark.parametrize(
    "action, reference, problem",
    [("social_follow", "myspace", "one of instagram, tiktok, facebook"), ("review_text", None, "review's id"),
     ("quiz_completion", "", "quiz id"), ("jackpot", None, "unknown earning action 'jackpot'")],
)
def test_unknown_occasions_are_refused(program, action, reference, problem) -> None:
    with pytest.raises(LedgerError, match=problem):
        credit_for(program, 1, action, reference, NOW)


def test_one_review_earns_once_whatever_kind_it_is_reported_as(sqlite_db: Database, program) -> None:
    with sqlite_db.session(write=True) as session:
        cid = create_customer(session, "rv@example.com").id
        assert award(session, program, cid, credit_for(program, cid, "review_text", "REV-1", NOW)).created
    for kind in ("review_photo", "review_video"):
        with pytest.raises(LedgerError, match="already used for 100 points"):
            with sqlite_db.session(write=True) as session:
                award(session, program, cid, credit_for(program, cid, kind, "REV-1", NOW))
    with sqlite_db.session() as session:
        assert balance(session, cid) == 100


def test_a_changed_entry_reward_does_not_block_a_customer_who_had_the_old_one(sqlite_db: Database, program, clock) -> None:
    from dataclasses import replace
    from decimal import Decimal

    from bot.loyalty.orders import record_paid_order

    clock.at(NOW)
    with sqlite_db.session(write=True) as session:
        cid = create_customer(session, "tier@example.com").id
        record_paid_order(session, program, cid, "o1", Decimal("400"), NOW)  # Silver: +100 entry reward
        customer_balance = balance(session, cid)
        # Demoted at the end of the term, then the merchant raises Silver's entry reward.
        session.get(Customer, cid).tier_name = "Bronze"
    richer = replace(program, tiers=tuple(replace(t, entry_reward_points=150) if t.name == "Silver" else t
                                          for t in program.tiers))
    with sqlite_db.session(write=True) as session:
        recorded = record_paid_order(session, richer, cid, "o2", Decimal("10"), NOW)
        assert recorded.created and balance(session, cid) == customer_balance + recorded.points_awarded
