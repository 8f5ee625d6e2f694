"""Earning rules besides orders: each pays once per occasion."""
from datetime import datetime, timezone

import pytest

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.earning import award, credit_for, custom_credit
from bot.loyalty.ledger import LedgerError, balance, verify_balances

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
