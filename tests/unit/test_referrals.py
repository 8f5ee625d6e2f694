"""Referral service on real SQLite and PostgreSQL: codes, clicks and friend offers, chat claims, attribution
of the friend's first order with the fraud rules, the review queue and the merchant's decisions."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from threading import Barrier
from typing import Any, List, Optional, Sequence

import pytest
from sqlalchemy import func, select

from bot.advocacy.fingerprints import address_hash, ip_hash
from bot.advocacy.codes import CODE_LENGTH, ReferralError, normalize_referral_code
from bot.advocacy.friend_offers import MAX_CLICKS_PER_NETWORK, normalize_offer_code, record_click
from bot.advocacy.referrals import (
    ReferralOutcome, ReferralStateError, UnknownReferral, approve_referral, claim_in_chat, find_code_in_text,
    referral_code_for, referral_link, referral_stats, register_signup, reject_referral,
)
from bot.checkout import check_code, use_code
from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.identity.linking import CODE_ALPHABET
from bot.loyalty.ledger import balance, post_entry, verify_balances
from bot.loyalty.orders import cancel_order
from bot.order_events import PaidOrder, Refund, record_cancellation, record_paid, record_refund
from bot.loyalty.rewards import CodeRefused
from bot.models import FriendOffer, LedgerEntry, OutboundMessage, Referral, ReferralClick, ReferralDecision

KEY = b"fingerprint-key-for-tests-000000"
NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
PHONE, LAPTOP, ADVOCATE_HOME = "198.51.100.20", "192.0.2.44", "203.0.113.7"


# --- helpers -----------------------------------------------------------------------------------------


def customer(db: Database, email: str, first_name: Optional[str] = None) -> int:
    with db.session(write=True) as session:
        return create_customer(session, email, first_name).id


def code_of(db: Database, customer_id: int) -> str:
    with db.session(write=True) as session:
        return referral_code_for(session, customer_id, NOW).code


def click(db: Database, program, code: str, ip: Optional[str] = PHONE, agent: str = "Mozilla/5.0") -> Any:
    with db.session(write=True) as session:
        return record_click(session, program, code, ip_hash(ip, KEY), agent, NOW)


def order(db: Database, program, customer_id: int, order_id: str, total: str = "60.00", *, ip: Optional[str] = None,
          address: Any = None, discount_codes: Sequence[str] = (), referral_code: Optional[str] = None,
          at: datetime = NOW) -> Optional[ReferralOutcome]:
    """A paid order event (fingerprints on the order, attribution when it is new); the referral it decided."""
    with db.session(write=True) as session:
        return record_paid(session, program, PaidOrder(
            order_id, customer_id, Decimal(total), at, discount_codes=discount_codes, referral_code=referral_code,
            shipping_address_hash=address_hash(address, KEY), ip_hash=ip_hash(ip, KEY)), now=at).referral


def claim(db: Database, program, code: str, sender: str, channel: str = "telegram", source: str = "telegram") -> Any:
    with db.session(write=True) as session:
        return claim_in_chat(session, program, code, channel, sender, source, NOW)


def take_back(db: Database, program, order_id: str, amount: Optional[str] = None,
              refund_id: str = "r1") -> Optional[Referral]:
    """A refund of `amount`, or the cancellation (None), as an order event: the referral it rejected, if any."""
    with db.session(write=True) as session:
        taken = (record_cancellation(session, program, order_id, now=NOW) if amount is None
                 else record_refund(session, program, Refund(order_id, refund_id, Decimal(amount)), now=NOW))
        return session.get(Referral, taken.referral.referral_id) if taken.referral is not None else None


def points(db: Database, customer_id: int) -> int:
    with db.session() as session:
        return balance(session, customer_id)


def referral(db: Database, referral_id: int) -> Referral:
    with db.session() as session:
        return session.get(Referral, referral_id)


def decisions(db: Database, referral_id: int) -> List[tuple]:
    with db.session() as session:
        return [(d.decision, d.actor) for d in session.execute(
            select(ReferralDecision).where(ReferralDecision.referral_id == referral_id).order_by(ReferralDecision.id)
        ).scalars()]


def count(db: Database, model: Any, *conditions: Any) -> int:
    with db.session() as session:
        return int(session.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one())


def advocate(db: Database, program, email: str = "ann@example.com", name: str = "Ann", ip: str = ADVOCATE_HOME) -> tuple:
    """An advocate with one earlier order from their home network and address; (id, code)."""
    advocate_id = customer(db, email, name)
    order(db, program, advocate_id, f"adv-{advocate_id}", "40.00", ip=ip, address="12 Oak Street, Apt 4")
    return advocate_id, code_of(db, advocate_id)


# --- codes and links ---------------------------------------------------------------------------------


def test_a_customer_has_one_unguessable_code_on_every_call(sqlite_db: Database) -> None:
    codes = set()
    for index in range(40):
        customer_id = customer(sqlite_db, f"c{index}@example.com")
        code = code_of(sqlite_db, customer_id)
        assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET) and re.search(r"\d", code)
        assert code_of(sqlite_db, customer_id) == code
        codes.add(code)
    assert len(codes) == 40
    assert referral_link("https://bot.example/", "K7QM2XDA9P") == "https://bot.example/r/K7QM2XDA9P"
    with sqlite_db.session(write=True) as session, pytest.raises(UnknownReferral):
        referral_code_for(session, 999, NOW)


def test_concurrent_first_requests_for_a_code_agree(any_db: Database) -> None:
    customer_id = customer(any_db, "ann@example.com")
    workers = 6
    barrier = Barrier(workers)

    def ask(_: int) -> str:
        barrier.wait()
        with any_db.session(write=True) as session:
            return referral_code_for(session, customer_id, NOW).code

    with ThreadPoolExecutor(workers) as pool:
        assert len(set(pool.map(ask, range(workers)))) == 1


@pytest.mark.parametrize("typed, expected", [
    ("K7QM2XDA9P", "K7QM2XDA9P"), ("k7qm2xda9p", "K7QM2XDA9P"), (" k7qm-2xda-9p ", "K7QM2XDA9P"),
    ("K7QM2XDA9", None), ("K7QM2XDA9PP", None), ("ABCDEFGHJK", None),  # no digit: a word, not a code
    ("K7QM2XDA0P", None), ("K7QM2XDAIP", None), ("", None), ("Ä" * 10, None), ("K" * 500, None),
])
def test_typed_codes_are_normalized(typed: str, expected: Optional[str]) -> None:
    assert normalize_referral_code(typed) == expected


@pytest.mark.parametrize("text, expected", [
    ("my friend's code is k7qm2xda9p", "K7QM2XDA9P"),
    ("use K7QM-2XDA-9P please", "K7QM2XDA9P"),
    ("https://bot.example/r/K7QM2XDA9P", "K7QM2XDA9P"),
    ("ref_K7QM2XDA9P", "K7QM2XDA9P"),
    ("everything is wonderful", None),
    ("my link code is K7PM-Q2ZX", None),  # a chat link code (8 symbols) is not a referral code
    ("my reward RW-0ABC-DEFG-HJKM", None),
])
def test_codes_are_found_in_chat_messages(text: str, expected: Optional[str]) -> None:
    assert find_code_in_text(text) == expected


# --- clicks and friend offers ------------------------------------------------------------------------


def test_a_click_issues_a_friend_offer_once_per_network_per_day(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    _, code = advocate(sqlite_db, program)
    first = click(sqlite_db, program, code.lower())
    assert first.counted and first.code == code and normalize_offer_code(first.offer_code) == first.offer_code
    again = click(sqlite_db, program, code)
    assert (again.counted, again.offer_code) == (False, first.offer_code)
    assert click(sqlite_db, program, code, ip=LAPTOP).offer_code != first.offer_code
    assert click(sqlite_db, program, code, ip=None).counted  # no address: nothing to tell visits apart by
    with sqlite_db.session(write=True) as session:
        later = record_click(session, program, code, ip_hash(PHONE, KEY), "Mozilla/5.0", NOW + timedelta(hours=25))
    assert later.counted and later.offer_code != first.offer_code
    assert count(sqlite_db, ReferralClick) == count(sqlite_db, FriendOffer) == 4
    with sqlite_db.session() as session:
        offer = session.execute(select(FriendOffer).where(FriendOffer.code == first.offer_code)).scalar_one()
        assert (offer.percent_off, offer.min_order, offer.status) == (10, None, "issued")
        assert offer.expires_at == NOW + timedelta(days=30)


@pytest.mark.parametrize("agent", [
    "TelegramBot (like TwitterBot)", "facebookexternalhit/1.1", "Slackbot-LinkExpanding 1.0", "Twitterbot/1.0",
    "WhatsApp/2.23.20.0", "Mozilla/5.0 (compatible; Discordbot/2.0)", "LinkedInBot/1.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1)", "Mozilla/5.0 (compatible; bingbot/2.0)",
])
def test_link_previews_are_not_clicks(sqlite_db: Database, program, agent: str) -> None:
    _, code = advocate(sqlite_db, program)
    assert click(sqlite_db, program, code, agent=agent) is None
    assert count(sqlite_db, ReferralClick) == count(sqlite_db, FriendOffer) == 0


def test_visits_one_network_records_through_one_link_in_a_day_are_capped(sqlite_db: Database, program) -> None:
    _, code = advocate(sqlite_db, program)
    # Visits with no usable address cannot be told apart (no same-network offer again): they share the cap.
    visits = [click(sqlite_db, program, code, ip=None) for _ in range(MAX_CLICKS_PER_NETWORK + 3)]
    assert all(visit.counted for visit in visits[:MAX_CLICKS_PER_NETWORK])
    assert visits[MAX_CLICKS_PER_NETWORK:] == [None] * 3  # lands on the store without an offer
    assert count(sqlite_db, ReferralClick) == count(sqlite_db, FriendOffer) == MAX_CLICKS_PER_NETWORK
    assert click(sqlite_db, program, code, ip=LAPTOP).counted  # a known network is not affected
    with sqlite_db.session(write=True) as session:
        assert record_click(session, program, code, None, "Mozilla/5.0", NOW + timedelta(hours=25)).counted


def test_an_unknown_code_records_nothing(sqlite_db: Database, program) -> None:
    assert click(sqlite_db, program, "K7QM2XDA9P") is None and click(sqlite_db, program, "junk") is None
    assert count(sqlite_db, ReferralClick) == 0


# --- chat claims -------------------------------------------------------------------------------------


def test_chat_claim_statuses(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, ann_code = advocate(sqlite_db, program)
    bo_id, bo_code = advocate(sqlite_db, program, "bo@example.com", "Bo", ip="203.0.113.99")

    claimed = claim(sqlite_db, program, ann_code.lower(), "tg-guest")
    assert claimed.status == "claimed" and claimed.advocate_name == "Ann"
    assert claimed.offer_code.startswith("FRIEND-") and claimed.percent_off == 10
    assert claimed.expires_at == NOW + timedelta(days=30) and claimed.min_order is None
    again = claim(sqlite_db, program, ann_code, "tg-guest", source="chat")
    assert (again.status, again.offer_code) == ("already_claimed", claimed.offer_code)
    assert claim(sqlite_db, program, bo_code, "tg-guest").status == "other_advocate"
    assert claim(sqlite_db, program, "K7QM2XDA9P", "tg-guest").status == "unknown_code"
    assert claim(sqlite_db, program, "hello", "tg-guest").status == "unknown_code"

    with sqlite_db.session(write=True) as session:
        link_identity(session, ann_id, "telegram", "tg-ann")
        link_identity(session, bo_id, "telegram", "tg-bo")
    assert claim(sqlite_db, program, ann_code, "tg-ann").status == "own_code"
    assert claim(sqlite_db, program, ann_code, "tg-bo").status == "not_first_order"  # Bo has ordered

    # Same person, another account: caught when claiming (same normalized email), no offer.
    twin_id = customer(sqlite_db, "a.n.n+2@example.com", "Ann")
    with sqlite_db.session(write=True) as session:
        link_identity(session, twin_id, "rest", "twin")
    blocked = claim(sqlite_db, program, ann_code, "twin", channel="rest", source="chat")
    assert (blocked.status, blocked.reason, blocked.offer_code) == ("blocked", "self-referral: same email", None)

    with sqlite_db.session() as session:
        referrals = session.execute(select(Referral).order_by(Referral.id)).scalars().all()
        assert [(r.advocate_id, r.status, r.source) for r in referrals] == [
            (ann_id, "joined", "telegram"), (ann_id, "rejected", "chat")]
    assert count(sqlite_db, FriendOffer) == 1  # already_claimed gave the same offer, nothing else was credited
    assert points(sqlite_db, ann_id) == 200


def test_an_already_claimed_offer_says_whether_it_was_used_or_expired(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    _, code = advocate(sqlite_db, program)
    friend_id = customer(sqlite_db, "bob@example.org", "Bob")
    with sqlite_db.session(write=True) as session:
        link_identity(session, friend_id, "telegram", "tg-bob")
    first = claim(sqlite_db, program, code, "tg-bob")
    assert (first.status, first.offer_status) == ("claimed", "issued")
    assert claim(sqlite_db, program, code, "tg-bob").offer_status == "issued"
    order(sqlite_db, program, friend_id, "F1", discount_codes=[first.offer_code])
    used = claim(sqlite_db, program, code, "tg-bob")
    assert (used.status, used.offer_code, used.offer_status) == ("already_claimed", first.offer_code, "used")

    guest = claim(sqlite_db, program, code, "tg-guest")
    with sqlite_db.session(write=True) as session:
        late = claim_in_chat(session, program, code, "telegram", "tg-guest", "telegram", guest.expires_at)
    assert (late.status, late.offer_code, late.offer_status) == ("already_claimed", guest.offer_code, "expired")


# --- attribution -------------------------------------------------------------------------------------


def test_a_friend_offer_from_a_click_rewards_the_advocate_once(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(any_db, program)
    before = points(any_db, ann_id)
    offer_code = click(any_db, program, code).offer_code
    friend_id = customer(any_db, "cleo@example.com", "Cleo")
    # Two devices: the link was opened on the phone, the order placed on the laptop with the code typed.
    outcome = order(any_db, program, friend_id, "F1", "60.00", ip=LAPTOP, discount_codes=["SUMMER", offer_code.lower()])
    assert (outcome.status, outcome.advocate_points) == ("rewarded", 500)
    assert points(any_db, ann_id) == before + 500
    stored = referral(any_db, outcome.referral_id)
    assert (stored.source, stored.friend_customer_id, stored.order_external_id) == ("link", friend_id, "F1")
    assert stored.click_id is not None and stored.ip_hash == ip_hash(PHONE, KEY)
    assert decisions(any_db, stored.id) == [("joined", "rules"), ("rewarded", "rules")]
    with any_db.session() as session:
        offer = session.execute(select(FriendOffer).where(FriendOffer.code == offer_code)).scalar_one()
        assert (offer.status, offer.used_order_ref, offer.used_by_customer_id) == ("used", "F1", friend_id)
        entry = session.execute(select(LedgerEntry).where(LedgerEntry.source == "referral")).scalar_one()
        assert (entry.customer_id, entry.points, entry.idempotency_key) == (ann_id, 500, f"referral:{stored.id}")
        assert entry.reason == "Referred a friend (order F1)" and entry.expires_at == NOW + timedelta(days=365)
        notice = session.execute(select(OutboundMessage).where(OutboundMessage.kind == "referral_rewarded")).scalar_one()
        assert notice.customer_id == ann_id and "500 points" in notice.text
        assert verify_balances(session) == []
    # The friend's next order decides nothing more.
    assert order(any_db, program, friend_id, "F2", "80.00", discount_codes=[offer_code]) is None
    assert points(any_db, ann_id) == before + 500


def test_a_referral_code_sent_with_the_order_attributes_it(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    friend_id = customer(sqlite_db, "cleo@example.com")
    outcome = order(sqlite_db, program, friend_id, "F1", referral_code=code.lower(), ip=LAPTOP)
    assert outcome.status == "rewarded" and referral(sqlite_db, outcome.referral_id).source == "referral_code"
    assert order(sqlite_db, program, customer(sqlite_db, "dan@example.com"), "D1", referral_code="NOPE") is None
    assert order(sqlite_db, program, customer(sqlite_db, "eve@example.com"), "E1") is None


def test_a_guest_claim_in_chat_is_attributed_when_the_guest_links_and_orders(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    assert claim(sqlite_db, program, code, "tg-cleo").status == "claimed"
    friend_id = customer(sqlite_db, "cleo@example.com", "Cleo")
    with sqlite_db.session(write=True) as session:
        link_identity(session, friend_id, "telegram", "tg-cleo")
    outcome = order(sqlite_db, program, friend_id, "F1", ip=LAPTOP)  # no code on the order at all
    assert outcome.status == "rewarded"
    stored = referral(sqlite_db, outcome.referral_id)
    assert (stored.source, stored.friend_customer_id, stored.friend_sender_id) == ("telegram", friend_id, "tg-cleo")


def test_a_guest_claims_offer_used_on_another_device_attaches_the_guest(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    offer_code = claim(sqlite_db, program, code, "widget-session-1", channel="widget", source="chat").offer_code
    friend_id = customer(sqlite_db, "cleo@example.com", "Cleo")
    outcome = order(sqlite_db, program, friend_id, "F1", discount_codes=[offer_code])
    assert outcome.status == "rewarded"
    assert referral(sqlite_db, outcome.referral_id).friend_customer_id == friend_id
    assert count(sqlite_db, Referral) == 1


def test_a_customers_own_chat_claim_is_attributed(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    friend_id = customer(sqlite_db, "cleo@example.com", "Cleo")
    with sqlite_db.session(write=True) as session:
        link_identity(session, friend_id, "instagram", "ig-cleo")
    assert claim(sqlite_db, program, f"my friend's code is {code}", "ig-cleo", "instagram", "chat").status == "unknown_code"
    assert claim(sqlite_db, program, find_code_in_text(f"my friend's code is {code.lower()}"), "ig-cleo",
                 "instagram", "chat").status == "claimed"
    outcome = order(sqlite_db, program, friend_id, "F1")
    assert outcome.status == "rewarded" and referral(sqlite_db, outcome.referral_id).source == "chat"


def test_one_advocate_per_friend_the_earlier_stands(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, ann_code = advocate(sqlite_db, program)
    bo_id, bo_code = advocate(sqlite_db, program, "bo@example.com", "Bo", ip="203.0.113.99")
    friend_id = customer(sqlite_db, "cleo@example.com", "Cleo")
    with sqlite_db.session(write=True) as session:
        link_identity(session, friend_id, "telegram", "tg-cleo")
    claim(sqlite_db, program, ann_code, "tg-cleo")
    bo_offer = click(sqlite_db, program, bo_code, ip=LAPTOP).offer_code
    ann_before, bo_before = points(sqlite_db, ann_id), points(sqlite_db, bo_id)
    outcome = order(sqlite_db, program, friend_id, "F1", discount_codes=[bo_offer], referral_code=bo_code)
    assert outcome.status == "rewarded" and referral(sqlite_db, outcome.referral_id).advocate_id == ann_id
    assert (points(sqlite_db, ann_id), points(sqlite_db, bo_id)) == (ann_before + 500, bo_before)
    assert [d for d, _ in decisions(sqlite_db, outcome.referral_id)] == ["joined", "ignored", "ignored", "rewarded"]
    with sqlite_db.session() as session:
        ignored = session.execute(select(ReferralDecision).where(ReferralDecision.decision == "ignored")).scalars().first()
        assert f"customer {bo_id}" in ignored.reason and "one advocate per friend" in ignored.reason
        assert session.execute(select(FriendOffer).where(FriendOffer.code == bo_offer)).scalar_one().status == "used"


# --- fraud rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("friend_email, fields, reason", [
    ("A.nn+deals@example.com", {}, "self-referral: same email"),
    ("cleo@example.com", {"address": "12 oak st. apartment 4"}, "self-referral: same shipping address"),
    ("cleo@example.com", {"ip": ADVOCATE_HOME}, "self-referral: same network (IP)"),
    ("cleo@example.com", {"total": "24.00"}, "friend's first order $24 was below the $30 minimum"),
])
def test_self_referrals_and_small_orders_are_rejected_with_their_reason(
    any_db: Database, program, clock, friend_email: str, fields: dict, reason: str,
) -> None:
    clock.at(NOW)
    ann_id, code = advocate(any_db, program)
    before = points(any_db, ann_id)
    offer_code = click(any_db, program, code, ip=LAPTOP).offer_code
    friend_id = customer(any_db, friend_email)
    outcome = order(any_db, program, friend_id, "F1", fields.get("total", "60.00"), ip=fields.get("ip"),
                    address=fields.get("address"), discount_codes=[offer_code])
    assert (outcome.status, outcome.reason, outcome.advocate_points) == ("rejected", reason, 0)
    assert decisions(any_db, outcome.referral_id) == [("joined", "rules"), ("rejected", "rules")]
    assert points(any_db, ann_id) == before and count(any_db, LedgerEntry, LedgerEntry.source == "referral") == 0


def test_a_customer_who_ordered_before_is_not_a_new_friend(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    friend_id = customer(sqlite_db, "cleo@example.com")
    order(sqlite_db, program, friend_id, "OLD", "20.00")
    outcome = order(sqlite_db, program, friend_id, "F1", referral_code=code)
    assert (outcome.status, outcome.reason) == ("rejected", "not a first order")
    assert referral(sqlite_db, outcome.referral_id).order_external_id == "F1"


def test_rules_can_be_switched_off(sqlite_db: Database, program, clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    lenient = replace(program, referrals=replace(program.referrals, reject_same_ip=False, reject_same_email=False))
    ann_id, code = advocate(sqlite_db, lenient)
    friend_id = customer(sqlite_db, "ann+2@example.com")
    assert order(sqlite_db, lenient, friend_id, "F1", ip=ADVOCATE_HOME, referral_code=code).status == "rewarded"


def test_referred_purchases_past_the_limit_from_one_network_wait_for_review(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    start = points(sqlite_db, ann_id)
    outcomes = []
    for index in range(5):  # five "friends" ordering from one flat (one IPv6 /64, a device each)
        friend_id = customer(sqlite_db, f"friend{index}@example.com")
        outcomes.append(order(sqlite_db, program, friend_id, f"F{index}", referral_code=code,
                              ip=f"2001:db8:aa:bb::{index + 1}"))
    assert [o.status for o in outcomes] == ["rewarded"] * 3 + ["review"] * 2
    assert outcomes[3].reason == "held: more than 3 referred purchases from one network"
    assert points(sqlite_db, ann_id) == start + 1500

    with sqlite_db.session(write=True) as session:
        approved = approve_referral(session, program, outcomes[3].referral_id, "merchant:maya", NOW)
        assert (approved.status, approved.points_awarded) == ("rewarded", 500)
        rejected = reject_referral(session, program, outcomes[4].referral_id, "merchant:maya", "same flat, same card", NOW)
        assert (rejected.status, rejected.reason) == ("rejected", "same flat, same card")
    assert points(sqlite_db, ann_id) == start + 2000
    assert decisions(sqlite_db, outcomes[3].referral_id) == [("joined", "rules"), ("held", "rules"), ("approved", "merchant:maya")]
    assert decisions(sqlite_db, outcomes[4].referral_id)[-1] == ("rejected", "merchant:maya")
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ReferralStateError, match="only a referral in review can be approved"):
            approve_referral(session, program, outcomes[3].referral_id, "merchant:maya", NOW)
        with pytest.raises(ReferralStateError, match="is rejected; only a referral joined, in review or rewarded"):
            reject_referral(session, program, outcomes[4].referral_id, "merchant:maya", "changed my mind", NOW)
        with pytest.raises(UnknownReferral):
            approve_referral(session, program, 999, "merchant:maya", NOW)
        with pytest.raises(ReferralError, match="needs a reason"):
            reject_referral(session, program, outcomes[0].referral_id, "merchant:maya", "  ", NOW)
        assert verify_balances(session) == []


def test_purchases_ordered_from_one_network_are_held_whatever_network_the_friends_clicked_from(
    any_db: Database, program, clock,
) -> None:
    clock.at(NOW)
    _, code = advocate(any_db, program)
    statuses = []
    for index in range(6):  # six phones on mobile data click the link, then all order from one home network
        offer_code = click(any_db, program, code, ip=f"198.51.100.{50 + index}").offer_code
        friend_id = customer(any_db, f"friend{index}@example.org")
        statuses.append(order(any_db, program, friend_id, f"F{index}", ip="192.0.2.99",
                              address=f"{index} Elm Road 1000{index}", discount_codes=[offer_code]).status)
    assert statuses == ["rewarded"] * 3 + ["review"] * 3


def test_sign_ups_count_the_network_the_order_came_from(sqlite_db: Database, program, clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    strict = replace(program, referrals=replace(program.referrals, max_signups_per_ip_per_week=2))
    _, code = advocate(sqlite_db, strict)
    statuses = []
    for index in range(3):
        offer_code = click(sqlite_db, strict, code, ip=f"198.51.100.{50 + index}").offer_code
        friend_id = customer(sqlite_db, f"friend{index}@example.org")
        statuses.append(order(sqlite_db, strict, friend_id, f"F{index}", ip="192.0.2.99",
                              discount_codes=[offer_code]).status)
    assert statuses == ["rewarded", "rewarded", "rejected"]
    with sqlite_db.session() as session:
        blocked = session.execute(select(Referral).where(Referral.order_external_id == "F2")).scalar_one()
    assert blocked.reason == "blocked: more than 2 referral sign-ups from one network this week"


def test_simultaneous_orders_from_one_network_are_counted_one_after_the_other(
    postgres_db: Database, program, clock,
) -> None:
    clock.at(NOW)
    ann_id, code = advocate(postgres_db, program)
    before = points(postgres_db, ann_id)
    workers = 6
    friends = [customer(postgres_db, f"friend{index}@example.org") for index in range(workers)]
    barrier = Barrier(workers)

    def deliver(index: int) -> str:
        barrier.wait()
        return order(postgres_db, program, friends[index], f"F{index}", ip="192.0.2.99", referral_code=code).status

    with ThreadPoolExecutor(workers) as pool:
        statuses = sorted(pool.map(deliver, range(workers)))
    assert statuses == ["review"] * 3 + ["rewarded"] * 3
    assert points(postgres_db, ann_id) == before + 1500


def test_approving_a_held_referral_whose_order_was_cancelled_is_refused(sqlite_db: Database, program, clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    strict = replace(program, referrals=replace(program.referrals, max_referred_purchases_per_ip=1))
    ann_id, code = advocate(sqlite_db, strict)
    for index in range(2):
        friend_id = customer(sqlite_db, f"friend{index}@example.com")
        held = order(sqlite_db, strict, friend_id, f"F{index}", ip=LAPTOP, referral_code=code)
    assert held.status == "review"
    with sqlite_db.session(write=True) as session:  # the order alone, its referral not reconsidered (yet)
        cancel_order(session, strict, "F1")
    with sqlite_db.session(write=True) as session, pytest.raises(ReferralError, match="F1 was cancelled: reject"):
        approve_referral(session, strict, held.referral_id, "merchant:maya", NOW)
    with sqlite_db.session(write=True) as session:
        assert reject_referral(session, strict, held.referral_id, "merchant:maya", "order cancelled", NOW).status == "rejected"


def test_more_sign_ups_from_one_network_in_a_week_are_blocked_until_the_window_rolls(
    sqlite_db: Database, program, clock,
) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    network = ip_hash(LAPTOP, KEY)

    def sign_up(index: int, at: datetime) -> ReferralOutcome:
        friend_id = customer(sqlite_db, f"signup{index}@example.com")
        with sqlite_db.session(write=True) as session:
            return register_signup(session, program, friend_id, code, network, at)

    statuses = [sign_up(index, NOW + timedelta(hours=index)).status for index in range(11)]
    assert statuses == ["joined"] * 10 + ["rejected"]
    blocked = sign_up(11, NOW + timedelta(days=6))
    assert (blocked.status, blocked.reason, blocked.offer_code) == (
        "rejected", "blocked: more than 10 referral sign-ups from one network this week", None)
    # A week after the first sign-ups they no longer count (the blocked attempts still do, for a while).
    assert sign_up(12, NOW + timedelta(days=7, hours=13)).status == "joined"
    assert sign_up(13, NOW + timedelta(days=1)).status == "rejected"
    # Another network is not affected.
    friend_id = customer(sqlite_db, "elsewhere@example.com")
    with sqlite_db.session(write=True) as session:
        elsewhere = register_signup(session, program, friend_id, code, ip_hash(PHONE, KEY), NOW + timedelta(days=6))
    assert elsewhere.status == "joined" and elsewhere.offer_code.startswith("FRIEND-")


def test_a_blocked_sign_up_stays_rejected_when_the_friend_orders(sqlite_db: Database, program, clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    strict = replace(program, referrals=replace(program.referrals, max_signups_per_ip_per_week=1))
    ann_id, code = advocate(sqlite_db, strict)
    before = points(sqlite_db, ann_id)
    first = customer(sqlite_db, "one@example.com")
    second = customer(sqlite_db, "two@example.com")
    with sqlite_db.session(write=True) as session:
        register_signup(session, strict, first, code, ip_hash(LAPTOP, KEY), NOW)
        assert register_signup(session, strict, second, code, ip_hash(LAPTOP, KEY), NOW).status == "rejected"
    assert order(sqlite_db, strict, second, "S1") is None  # decided at sign-up, nothing new
    assert points(sqlite_db, ann_id) == before


# --- the friend's offer at checkout ------------------------------------------------------------------


def test_a_friend_offer_is_honoured_once_for_a_first_order(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(sqlite_db, program)
    offer_code = click(sqlite_db, program, code).offer_code
    second_offer = click(sqlite_db, program, code, ip=LAPTOP).offer_code
    friend_id = customer(sqlite_db, "cleo@example.com")

    def refused(typed: str, **kwargs: Any) -> str:
        with sqlite_db.session(write=True) as session, pytest.raises(CodeRefused) as error:
            check_code(session, program, typed, now=kwargs.pop("now", NOW), **kwargs)
        return error.value.reason

    with sqlite_db.session(write=True) as session:
        assert check_code(session, program, offer_code.lower().replace("-", " "), customer_id=friend_id,
                                  now=NOW).code == offer_code
        use_code(session, program, offer_code, "F1", customer_id=friend_id, now=NOW)
        use_code(session, program, offer_code, "F1", customer_id=friend_id, now=NOW)  # again for that order
    assert refused(offer_code) == "used"
    assert refused("FRIEND-AAAA-AAAA") == "unknown"
    assert refused(second_offer, customer_id=friend_id) == "not_first_order"  # already used a friend offer
    assert refused(second_offer, customer_id=ann_id) == "own_code"
    assert refused(second_offer, now=NOW + timedelta(days=31)) == "expired"
    veteran = customer(sqlite_db, "old@example.com")
    order(sqlite_db, program, veteran, "OLD", "10.00")
    assert refused(second_offer, customer_id=veteran) == "not_first_order"
    with sqlite_db.session(write=True) as session, pytest.raises(CodeRefused) as error:
        use_code(session, program, second_offer, "F9", customer_id=veteran, now=NOW)
    assert error.value.reason == "not_first_order"


def test_the_advocates_other_account_is_refused_their_own_offer_at_checkout(sqlite_db: Database, program,
                                                                            clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    _, code = advocate(sqlite_db, program)  # ann@example.com
    offer_code = click(sqlite_db, program, code).offer_code
    alias = customer(sqlite_db, "a.nn+deal@example.com")
    with sqlite_db.session(write=True) as session, pytest.raises(CodeRefused) as error:
        check_code(session, program, offer_code, customer_id=alias, now=NOW)
    assert error.value.reason == "own_code" and "self-referral: same email" in str(error.value)
    with sqlite_db.session(write=True) as session, pytest.raises(CodeRefused) as error:
        use_code(session, program, offer_code, "X1", customer_id=alias, now=NOW)
    assert error.value.reason == "own_code"
    # The merchant switched the email rule off: the alias is a customer like any other.
    lenient = replace(program, referrals=replace(program.referrals, reject_same_email=False))
    with sqlite_db.session(write=True) as session:
        assert check_code(session, lenient, offer_code, customer_id=alias, now=NOW).code == offer_code


# --- the same order twice ----------------------------------------------------------------------------


def test_the_same_friend_order_delivered_concurrently_credits_once(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(any_db, program)
    before = points(any_db, ann_id)
    offer_code = click(any_db, program, code).offer_code
    friend_id = customer(any_db, "cleo@example.com")
    workers = 8
    barrier = Barrier(workers)

    def deliver(_: int) -> Optional[ReferralOutcome]:
        barrier.wait()
        return order(any_db, program, friend_id, "F1", discount_codes=[offer_code], ip=LAPTOP)

    with ThreadPoolExecutor(workers) as pool:
        outcomes = [outcome for outcome in pool.map(deliver, range(workers)) if outcome is not None]
    assert [o.status for o in outcomes] == ["rewarded"]
    assert points(any_db, ann_id) == before + 500
    assert count(any_db, LedgerEntry, LedgerEntry.source == "referral") == 1
    assert count(any_db, Referral, Referral.status == "rewarded") == 1
    assert count(any_db, OutboundMessage, OutboundMessage.kind == "referral_rewarded") == 1
    with any_db.session() as session:
        assert verify_balances(session) == []


def test_two_first_orders_of_one_friend_at_once_decide_once(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = advocate(any_db, program)
    before = points(any_db, ann_id)
    friend_id = customer(any_db, "cleo@example.com")
    workers = 6
    barrier = Barrier(workers)

    def deliver(index: int) -> Optional[ReferralOutcome]:
        barrier.wait()
        return order(any_db, program, friend_id, f"F{index}", referral_code=code)

    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(deliver, range(workers)))
    assert points(any_db, ann_id) == before + 500
    assert count(any_db, Referral) == 1 and count(any_db, LedgerEntry, LedgerEntry.source == "referral") == 1
    assert [o.status for o in outcomes if o is not None] == ["rewarded"]  # the other orders decided nothing


# --- refunds and cancellations of the friend's order ---------------------------------------------------


def rewarded_friend(db: Database, program, total: str = "60.00") -> tuple:
    """Ann (200 points) rewarded for Cleo's first order F1; (ann's id, the referral's id)."""
    ann_id, code = advocate(db, program)
    friend_id = customer(db, "cleo@example.com", "Cleo")
    outcome = order(db, program, friend_id, "F1", total, ip=LAPTOP, referral_code=code)
    assert outcome.status == "rewarded" and points(db, ann_id) == 700
    return ann_id, outcome.referral_id


def reversals(db: Database) -> List[int]:
    with db.session() as session:
        return list(session.execute(
            select(LedgerEntry.points).where(LedgerEntry.source == "referral_reversal")).scalars())


def test_a_cancelled_friends_order_takes_the_reward_back_once(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, referral_id = rewarded_friend(any_db, program)
    rejected = take_back(any_db, program, "F1")
    assert (rejected.id, rejected.status, rejected.points_awarded) == (referral_id, "rejected", 0)
    assert rejected.reason == "friend's order F1 was cancelled; 500 points taken back"
    assert points(any_db, ann_id) == 200 and reversals(any_db) == [-500]
    assert decisions(any_db, referral_id)[-2:] == [("rewarded", "rules"), ("rejected", "rules")]
    assert take_back(any_db, program, "F1") is None  # the store sends the cancellation again
    assert points(any_db, ann_id) == 200 and reversals(any_db) == [-500]
    assert len(decisions(any_db, referral_id)) == 3
    with any_db.session() as session:
        assert verify_balances(session) == []
        notices = session.execute(select(OutboundMessage.kind, OutboundMessage.text)
                                  .where(OutboundMessage.customer_id == ann_id).order_by(OutboundMessage.id)).all()
    assert [tuple(row) for row in notices] == [  # the advocate hears the reward go, once
        ("referral_rewarded", "Your friend just placed their first order — you've earned 500 points. "
                              "Thank you for spreading the word!"),
        ("referral_reversed", "We've taken back the 500 points for one of your referrals: friend's order F1 was "
                              "cancelled."),
    ]


def test_a_partial_refund_takes_the_reward_back_only_below_the_minimum(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id, referral_id = rewarded_friend(any_db, program)
    assert take_back(any_db, program, "F1", "30.00", "r1") is None  # $30 kept: still the minimum
    assert referral(any_db, referral_id).status == "rewarded" and points(any_db, ann_id) == 700
    rejected = take_back(any_db, program, "F1", "0.01", "r2")
    assert rejected.reason == ("friend's order F1 was partly refunded: the $29.99 kept is below the $30 minimum; "
                               "500 points taken back")
    assert points(any_db, ann_id) == 200 and reversals(any_db) == [-500]
    take_back(any_db, program, "F1", "29.99", "r3")  # the rest, later: nothing more to take
    assert points(any_db, ann_id) == 200 and reversals(any_db) == [-500]


def test_points_the_advocate_already_spent_are_written_off_like_an_orders(any_db: Database, program, clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    ann_id, referral_id = rewarded_friend(any_db, program)
    with any_db.session(write=True) as session:
        post_entry(session, ann_id, -600, kind="redeem", reason="Redeemed", source="test", idempotency_key="spend")
    rejected = take_back(any_db, program, "F1", "60.00")  # refunded in full
    assert rejected.reason == ("friend's order F1 was refunded; 100 points taken back, 400 already spent and "
                               "written off")
    assert rejected.points_awarded == 400  # what the advocate kept of it
    assert points(any_db, ann_id) == 0 and reversals(any_db) == [-100]
    with any_db.session() as session:
        assert verify_balances(session) == []

    # A program that lets refunds overdraw takes all of it back.
    lenient = replace(program, refunds_allow_negative_balance=True)
    bo_id = customer(any_db, "bo@example.com", "Bo")
    bo_code = code_of(any_db, bo_id)
    dan_id = customer(any_db, "dan@example.com", "Dan")
    assert order(any_db, lenient, dan_id, "D1", ip=PHONE, referral_code=bo_code).status == "rewarded"
    with any_db.session(write=True) as session:
        post_entry(session, bo_id, -500, kind="redeem", reason="Redeemed", source="test", idempotency_key="bo")
    assert take_back(any_db, lenient, "D1").points_awarded == 0
    assert points(any_db, bo_id) == -500


def test_a_held_referral_whose_order_is_cancelled_leaves_the_queue(sqlite_db: Database, program, clock) -> None:
    from dataclasses import replace

    clock.at(NOW)
    strict = replace(program, referrals=replace(program.referrals, max_referred_purchases_per_ip=0))
    ann_id, code = advocate(sqlite_db, strict)
    friend_id = customer(sqlite_db, "cleo@example.com")
    held = order(sqlite_db, strict, friend_id, "F1", ip=LAPTOP, referral_code=code)
    assert held.status == "review"
    rejected = take_back(sqlite_db, strict, "F1")
    assert (rejected.status, rejected.reason) == ("rejected", "friend's order F1 was cancelled")
    assert points(sqlite_db, ann_id) == 200 and reversals(sqlite_db) == []


def test_the_merchant_can_reject_a_rewarded_referral_and_its_points_go_back(any_db: Database, program,
                                                                            clock) -> None:
    clock.at(NOW)
    ann_id, referral_id = rewarded_friend(any_db, program)
    with any_db.session(write=True) as session:
        rejected = reject_referral(session, program, referral_id, "merchant:maya", "same card as Ann", NOW)
    assert (rejected.status, rejected.reason) == ("rejected", "same card as Ann; 500 points taken back")
    assert points(any_db, ann_id) == 200 and reversals(any_db) == [-500]
    assert decisions(any_db, referral_id)[-1] == ("rejected", "merchant:maya")
    assert take_back(any_db, program, "F1") is None  # a later cancellation takes nothing more
    assert points(any_db, ann_id) == 200
    with any_db.session() as session:
        assert referral_stats(session, ann_id).points_earned == 0


# --- what the advocate sees --------------------------------------------------------------------------


def test_referral_stats_count_and_mask(sqlite_db: Database, program, clock) -> None:
    clock.at(NOW)
    ann_id = customer(sqlite_db, "ann@example.com", "Ann")
    with sqlite_db.session() as session:
        assert referral_stats(session, ann_id) is None
    ann_id, code = ann_id, code_of(sqlite_db, ann_id)
    order(sqlite_db, program, ann_id, "A1", ip=ADVOCATE_HOME)
    click(sqlite_db, program, code, agent="Slackbot")  # not a click
    rewarded = customer(sqlite_db, "rita@example.com", "Rita")
    order(sqlite_db, program, rewarded, "R1", discount_codes=[click(sqlite_db, program, code).offer_code])
    small = customer(sqlite_db, "jonas.smith@example.com")
    order(sqlite_db, program, small, "S1", "12.00", referral_code=code)
    claim(sqlite_db, program, code, "tg-guest")
    with sqlite_db.session() as session:
        stats = referral_stats(session, ann_id)
    assert (stats.code, stats.clicks, stats.friends_joined, stats.successful, stats.points_earned) == (code, 1, 3, 1, 500)
    assert (stats.pending, stats.in_review) == (1, 0)
    assert [(n.friend, n.reason) for n in stats.not_rewarded] == [
        ("J*** (joined 15 Jun)", "friend's first order $12 was below the $30 minimum")]
    assert "jonas" not in stats.not_rewarded[0].friend
