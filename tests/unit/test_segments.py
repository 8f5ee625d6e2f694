"""Segments against a real store (SQLite and PostgreSQL): every condition kind, the built-ins, reason lines,
saved segments and references, the JSON form's errors, and the order totals the triggers keep."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Dict, Iterator, Set

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, func, select

from bot import clock
from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.loyalty.orders import cancel_order, record_paid_order, refund_order
from bot.loyalty.program import Program
from bot.models import (
    Campaign, CampaignResponse, Customer, CustomerOrderStats, Feedback, MessageConsent, Order, PredictionRun,
    PurchasePrediction, QuizRun, Referral, ReferralCode, Review,
)
from bot.segments.conditions import CONDITION_KINDS, SegmentError
from bot.segments.filters import SegmentFilter
from bot.segments.service import (
    UnknownSegment, count, delete_segment, find, list_segments, member_ids, members, resolve, save_segment,
)

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


@dataclass
class Store:
    ids: Dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.ids[name]

    def names(self, ids: Set[int]) -> Set[str]:
        by_id = {value: key for key, value in self.ids.items()}
        return {by_id[customer_id] for customer_id in ids}


@pytest.fixture()
def fixed_clock() -> Iterator[None]:
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


def build_store(db: Database) -> Store:
    """vip: Gold, spent 1,000 in 2 orders, 22 % likely (was 61 %), 1,200 points expiring in 10 days, on
    Telegram, NPS 4. once: 1 order 30 days ago, 55 % likely, CSAT 5, Instagram unreachable and unsubscribed.
    once_low: 1 order 200 days ago, 10 % likely. referrer: CSAT 5, referred friend, approved review, quiz
    answer. friend: no orders. cancelled: its only order was cancelled. Campaign 1's poll: vip answered option 1,
    referrer option 2."""
    ids: Dict[str, int] = {}
    number = 0
    with db.session(write=True) as session:
        for name in ("vip", "once", "once_low", "referrer", "friend", "cancelled"):
            row = create_customer(session, f"{name}@example.com", first_name=name.title())
            row.created_at = NOW - timedelta(days=500)
            ids[name] = row.id

        def order(name: str, days_ago: float, total: str, status: str = "paid") -> None:
            nonlocal number
            number += 1
            session.add(Order(external_id=f"o{number}", customer_id=ids[name], total=Decimal(total),
                              refunded_total=Decimal(0), currency="USD", status=status,
                              placed_at=NOW - timedelta(days=days_ago)))
            session.flush()

        order("vip", 300, "600.00")
        order("vip", 140, "400.00")
        order("once", 30, "50.00")
        order("once_low", 200, "20.00")
        order("referrer", 60, "80.00")
        order("referrer", 20, "70.00")
        order("cancelled", 10, "99.00", status="cancelled")
        vip = session.get(Customer, ids["vip"])
        vip.tier_name, vip.points_balance = "Gold", 1200
        vip.last_activity_at = NOW - relativedelta(months=12) + timedelta(days=10)
        referrer = session.get(Customer, ids["referrer"])
        referrer.tier_name, referrer.points_balance, referrer.last_activity_at = "Silver", 300, NOW - timedelta(days=20)
        run = PredictionRun(model_version="test", as_of=NOW, horizon_days=90, customers_scored=4, details={},
                            started_at=NOW, finished_at=NOW)
        session.add(run)
        session.flush()
        for name, probability, previous in (("vip", 0.22, 0.61), ("once", 0.55, None), ("once_low", 0.10, 0.12),
                                            ("referrer", 0.80, 0.70)):
            session.add(PurchasePrediction(customer_id=ids[name], run_id=run.id, probability=probability,
                                           previous_probability=previous, reasons="", model_version="test",
                                           as_of=NOW, horizon_days=90, computed_at=NOW))
        link_identity(session, ids["vip"], "telegram", "tg-vip")
        once_chat = link_identity(session, ids["once"], "instagram", "ig-once")
        once_chat.unreachable_since = NOW - timedelta(days=3)
        link_identity(session, ids["referrer"], "telegram", "tg-ref")
        session.add(MessageConsent(channel="instagram", sender_id="ig-once", customer_id=ids["once"],
                                   status="subscribed", source="chat", recorded_at=NOW - timedelta(days=9)))
        session.add(MessageConsent(channel="instagram", sender_id="ig-once", customer_id=ids["once"],
                                   status="unsubscribed", source="chat", recorded_at=NOW - timedelta(days=5)))

        def feedback(name: str, kind: str, score: int, days_ago: int) -> None:
            at = NOW - timedelta(days=days_ago)
            session.add(Feedback(customer_id=ids[name], channel="telegram", sender_id=name, kind=kind, score=score,
                                 topics=[], search_text="", created_at=at, updated_at=at))
            session.flush()

        feedback("vip", "nps", 10, 90)
        feedback("vip", "nps", 4, 10)  # the latest NPS is what counts
        feedback("once", "csat", 5, 5)
        feedback("referrer", "nps", 8, 50)
        feedback("referrer", "csat", 5, 4)  # latest of either survey: happy
        code = ReferralCode(customer_id=ids["referrer"], code="REF123", created_at=NOW)
        session.add(code)
        session.flush()
        session.add(Referral(referral_code_id=code.id, advocate_id=ids["referrer"], friend_customer_id=ids["friend"],
                             source="link", status="rewarded", created_at=NOW))
        session.add(Review(customer_id=ids["referrer"], channel="telegram", sender_id="tg-ref", product_sku="SKU1",
                           product_title="Lamp", rating=5, text="Lovely", status="approved", created_at=NOW))
        session.add(Review(customer_id=ids["once"], channel="instagram", sender_id="ig-once", product_sku="SKU1",
                           product_title="Lamp", rating=2, text="Meh", status="pending", created_at=NOW))
        session.add(QuizRun(quiz_id="room-makeover", channel="telegram", sender_id="tg-ref", customer_id=ids["referrer"],
                            status="completed", answers={"room": ["bedroom"], "style": ["boho", "modern"], "budget": []},
                            started_at=NOW, updated_at=NOW))
        poll = Campaign(name="More of", kind="poll", text="What should we do more of?", bonus_points=0,
                        buttons=[{"title": "Free shipping"}, {"title": "New colours"}, {"title": "Faster"}],
                        audience={"customer_ids": [ids["vip"], ids["referrer"]]}, holdout_percent=0, status="sent",
                        created_at=NOW, sent_at=NOW)
        session.add(poll)
        session.flush()
        assert poll.id == 1  # the cases name it
        for name, option in (("vip", 1), ("referrer", 2)):
            session.add(CampaignResponse(campaign_id=poll.id, customer_id=ids[name], option=option, created_at=NOW,
                                         updated_at=NOW))
    return Store(ids)


def _members(db: Database, store: Store, conditions: list, program: Program) -> Set[str]:
    segment_filter = SegmentFilter.from_json({"conditions": conditions})
    with db.session() as session:
        ids = set(session.execute(member_ids(session, segment_filter, now=NOW, program=program)).scalars())
        assert count(session, segment_filter, now=NOW, program=program) == len(ids)
    return store.names(ids)


CASES = [
    ([{"kind": "tier", "tiers": ["Gold", "Silver"]}], {"vip", "referrer"}),
    ([{"kind": "points_balance", "min": 1000}], {"vip"}),
    ([{"kind": "points_balance", "max": 0}], {"once", "once_low", "friend", "cancelled"}),
    ([{"kind": "points_expiring", "days": 30}], {"vip"}),
    ([{"kind": "points_expiring", "days": 5}], set()),
    ([{"kind": "points_expiring", "days": 30, "min_points": 2000}], set()),
    ([{"kind": "recency", "min": 100}], {"vip", "once_low"}),
    ([{"kind": "recency", "max": 30}], {"once", "referrer"}),
    ([{"kind": "recency", "min": 20, "max": 140}], {"vip", "once", "referrer"}),
    ([{"kind": "frequency", "min": 1, "max": 1}], {"once", "once_low"}),
    ([{"kind": "frequency", "min": 2}], {"vip", "referrer"}),
    ([{"kind": "frequency", "max": 0}], {"friend", "cancelled"}),
    ([{"kind": "lifetime_spend", "min": 150}], {"vip", "referrer"}),
    ([{"kind": "lifetime_spend", "max": 49.99}], {"once_low", "friend", "cancelled"}),
    ([{"kind": "probability", "min": 50}], {"once", "referrer"}),
    ([{"kind": "probability", "max": 25}], {"vip", "once_low"}),
    ([{"kind": "likely_to_lapse", "min_spend": 500, "min_drop": 20}], {"vip"}),
    ([{"kind": "likely_to_lapse", "min_spend": 10, "min_drop": 1}], {"vip", "once_low"}),
    ([{"kind": "channel"}], {"vip", "once", "referrer"}),
    ([{"kind": "channel", "channels": ["instagram"]}], {"once"}),
    ([{"kind": "channel", "reachable": True}], {"vip", "referrer"}),
    ([{"kind": "channel", "channels": ["instagram"], "reachable": False}], {"once"}),
    ([{"kind": "consent", "status": "unsubscribed"}], {"once"}),
    ([{"kind": "consent", "status": "may_message"}], {"vip", "referrer"}),
    ([{"kind": "consent", "status": "subscribed"}], set()),  # once's latest choice is "unsubscribed"
    ([{"kind": "feedback", "survey": "nps", "mood": "unhappy"}], {"vip"}),
    ([{"kind": "feedback", "survey": "nps", "min": 9}], set()),  # vip's 10 is not the latest
    ([{"kind": "feedback", "survey": "csat", "min": 5, "max": 5}], {"once", "referrer"}),
    ([{"kind": "feedback", "survey": "any", "mood": "happy"}], {"once", "referrer"}),
    ([{"kind": "referrals", "referred": True}], {"referrer"}),
    ([{"kind": "referrals", "referred": True, "min_friends": 2}], set()),
    ([{"kind": "referrals", "referred": False}], {"vip", "once", "once_low", "friend", "cancelled"}),
    ([{"kind": "reviews", "reviewed": True}], {"referrer", "once"}),
    ([{"kind": "reviews", "reviewed": True, "approved_only": True}], {"referrer"}),
    ([{"kind": "reviews", "reviewed": False}], {"vip", "once_low", "friend", "cancelled"}),
    ([{"kind": "quiz_answer", "quiz": "room-makeover", "question": "style", "option": "modern"}], {"referrer"}),
    ([{"kind": "quiz_answer", "quiz": "room-makeover", "question": "style", "option": "rustic"}], set()),
    ([{"kind": "quiz_answer", "quiz": "room-makeover", "question": "room"}], {"referrer"}),
    ([{"kind": "quiz_answer", "quiz": "room-makeover", "question": "budget"}], set()),  # skipped
    ([{"kind": "poll_answer", "campaign": 1, "option": 1}], {"vip"}),
    ([{"kind": "poll_answer", "campaign": 1}], {"vip", "referrer"}),
    ([{"kind": "poll_answer", "campaign": 1, "option": 3}], set()),
    ([{"kind": "poll_answer", "campaign": 2}], set()),
    ([], {"vip", "once", "once_low", "referrer", "friend", "cancelled"}),
    ([{"kind": "frequency", "min": 1}, {"kind": "probability", "min": 50}, {"kind": "channel", "reachable": True}],
     {"referrer"}),
    # Order totals together are one scan of customer_order_stats: each still narrows the others.
    ([{"kind": "frequency", "min": 1}, {"kind": "lifetime_spend", "min": 150}, {"kind": "recency", "max": 30}],
     {"referrer"}),
    ([{"kind": "frequency", "min": 2}, {"kind": "lifetime_spend", "min": 150}, {"kind": "tier", "tiers": ["Gold"]}],
     {"vip"}),
    ([{"kind": "recency", "min": 100}, {"kind": "frequency", "min": 1}, {"kind": "lifetime_spend", "max": 49.99}],
     {"once_low"}),
]


def test_every_condition_kind_is_covered() -> None:
    assert {condition["kind"] for conditions, _ in CASES for condition in conditions} == set(CONDITION_KINDS)


@pytest.mark.parametrize("conditions, expected", CASES, ids=[
    "+".join(f"{c['kind']}" for c in conditions) + f"-{index}" for index, (conditions, _) in enumerate(CASES)])
def test_each_condition_selects_exactly_its_customers(any_db: Database, program: Program, conditions: list,
                                                      expected: Set[str]) -> None:
    store = build_store(any_db)
    assert _members(any_db, store, conditions, program) == expected


def test_built_in_segments_and_reason_lines(any_db: Database, program: Program) -> None:
    store = build_store(any_db)
    with any_db.session() as session:
        segments = {segment.ref: segment for segment in list_segments(session, program=program)}
        found = {key: store.names(set(session.execute(member_ids(session, segments[key].filter, now=NOW,
                                                                 program=program)).scalars()))
                 for key in segments}
        assert found == {
            "vips_at_risk": {"vip"},
            "one_time_buyers_likely_to_return": {"once"},
            "points_about_to_expire": {"vip"},
            "happy_never_referred": {"once"},
            "detractors": {"vip"},
        }
        vip = members(session, segments["vips_at_risk"].filter, now=NOW, program=program)
        assert [member.customer_id for member in vip] == [store["vip"]]
        assert vip[0].reason == "Gold tier; spent 1,000.00; 22 % likely (was 61 %)"
        expiring = members(session, segments["points_about_to_expire"].filter, now=NOW, program=program)
        expires = (NOW - relativedelta(months=12) + timedelta(days=10) + relativedelta(months=12)).date()
        assert expiring[0].reason == f"1,200 points expiring {expires:%Y-%m-%d}"
        mixed = SegmentFilter.from_json([{"kind": "tier", "tiers": ["Gold"]}, {"kind": "recency", "min": 100},
                                         {"kind": "channel"}, {"kind": "feedback", "survey": "nps", "mood": "unhappy"},
                                         {"kind": "referrals", "referred": False}])
        assert members(session, mixed, now=NOW, program=program)[0].reason == (
            "Gold tier; last order 140 days ago; on telegram; last NPS 4; never referred")
        happy = members(session, segments["happy_never_referred"].filter, now=NOW, program=program)
        assert happy[0].reason == "last CSAT 5; never referred"
        quiz = SegmentFilter.from_json([{"kind": "quiz_answer", "quiz": "room-makeover", "question": "style"},
                                        {"kind": "consent", "status": "may_message"}])
        assert members(session, quiz, now=NOW, program=program)[0].reason == (
            "room-makeover style: boho, modern; no consent recorded (the channel's default)")
        everyone = members(session, SegmentFilter(), limit=2, after_id=store["vip"], now=NOW, program=program)
        assert [member.customer_id for member in everyone] == [store["once"], store["once_low"]]
        assert everyone[0].reason == "no tier; 0 points; 1 order"


def test_saved_segments_resolve_by_key_id_and_name(any_db: Database, program: Program) -> None:
    store = build_store(any_db)
    lapsing = SegmentFilter.from_json([{"kind": "probability", "max": 25}])
    with any_db.session(write=True) as session:
        saved = save_segment(session, "Quiet  ones", lapsing, by="owner@example.com", description="low odds",
                             now=NOW, program=program)
        assert (saved.name, saved.ref) == ("Quiet ones", str(saved.id))
        again = save_segment(session, "quiet ones", SegmentFilter.from_json([{"kind": "frequency", "max": 0}]),
                             by="cli", now=NOW, program=program)
        assert again.id == saved.id and again.description == "low odds"
        for bad in ("", "123", "detractors", "x" * 101):
            with pytest.raises(SegmentError):
                save_segment(session, bad, lapsing, by="cli", program=program)
    with any_db.session() as session:
        assert resolve(session, "detractors", program=program) == find(session, "detractors", program=program).filter
        assert resolve(session, str(saved.id), program=program).to_json() == {
            "conditions": [{"kind": "frequency", "max": 0}]}
        assert find(session, "QUIET ONES", program=program).id == saved.id
        assert [segment.ref for segment in list_segments(session, program=program)][-1] == str(saved.id)
        assert store.names(set(session.execute(member_ids(session, resolve(session, saved.id, program=program),
                                                          now=NOW, program=program)).scalars())) == {"friend", "cancelled"}
        with pytest.raises(UnknownSegment):
            resolve(session, "nobody", program=program)
    with any_db.session(write=True) as session:
        with pytest.raises(SegmentError):
            delete_segment(session, "detractors", program=program)
        assert delete_segment(session, "Quiet ones", program=program).id == saved.id
    with any_db.session() as session:
        with pytest.raises(UnknownSegment):
            find(session, str(saved.id), program=program)


@pytest.mark.parametrize("data, message", [
    ("{", "not JSON"),
    ({"conditions": [{"kind": "nope"}]}, "condition 1: unknown condition kind 'nope'"),
    ([{"kind": "tier"}], "tier: tiers is required"),
    ([{"kind": "points_balance", "min": 10, "max": 5}], "the minimum 10 is above the maximum 5"),
    ([{"kind": "points_balance", "min": -1}], "must be between 0"),
    ([{"kind": "frequency", "min": 1.5}], "whole number"),
    ([{"kind": "probability", "min": 101}], "between 0 and 100"),
    ([{"kind": "recency", "min": "soon"}], "must be a number"),
    ([{"kind": "channel", "reachable": "maybe"}], "true or false"),
    ([{"kind": "consent", "status": "perhaps"}], "must be one of"),
    ([{"kind": "feedback", "survey": "any"}], "give a mood"),
    ([{"kind": "feedback", "survey": "nps", "mood": "happy", "min": 3}], "not both"),
    ([{"kind": "quiz_answer", "quiz": "a b", "question": "q"}], "a name of letters"),
    ([{"kind": "tier", "tiers": ["Gold"], "colour": "red"}], "unknown field colour"),
    ({"conditions": [], "extra": 1}, 'a filter is {"conditions": [...]}'),
    ([{"kind": "channel"}] * 21, "at most 20 conditions"),
])
def test_filters_that_cannot_be_used_say_why(data: object, message: str) -> None:
    with pytest.raises(SegmentError, match=None) as raised:
        SegmentFilter.from_json(data)
    assert message in str(raised.value)


def test_filters_round_trip_through_json_and_form_values() -> None:
    segment_filter = SegmentFilter.from_json([
        {"kind": "tier", "tiers": "Gold, Silver"}, {"kind": "probability", "min": "40", "max": ""},
        {"kind": "channel", "reachable": "true"}, {"kind": "lifetime_spend", "min": "1,250.5"}])
    assert segment_filter.to_json() == {"conditions": [
        {"kind": "tier", "tiers": ["Gold", "Silver"]}, {"kind": "probability", "min": 40},
        {"kind": "channel", "reachable": True}, {"kind": "lifetime_spend", "min": 1250.5}]}
    assert SegmentFilter.from_json(segment_filter.to_json()) == segment_filter
    assert segment_filter.describe() == ("tier Gold or Silver; at least 40 % likely to order in 90 days; "
                                         "on any channel (reachable); spent at least 1,250.50")


def _stats(db: Database) -> Dict[int, tuple]:
    with db.session() as session:
        return {row.customer_id: (row.order_count, row.lifetime_spend, row.last_order_at)
                for row in session.execute(select(CustomerOrderStats)).scalars() if row.order_count}


def _recomputed(db: Database) -> Dict[int, tuple]:
    with db.session() as session:
        rows = session.execute(select(Order.customer_id, func.count(), func.sum(Order.total), func.max(Order.placed_at))
                               .where(Order.status != "cancelled").group_by(Order.customer_id)).all()
        refunds = dict(session.execute(select(Order.customer_id, func.sum(Order.refunded_total))
                                       .where(Order.status != "cancelled").group_by(Order.customer_id)).all())
    return {customer_id: (number, total - refunds[customer_id], last) for customer_id, number, total, last in rows}


def test_order_totals_follow_every_order_change(any_db: Database, program: Program, fixed_clock: None) -> None:
    build_store(any_db)
    assert _stats(any_db) == _recomputed(any_db)
    with any_db.session(write=True) as session:
        customer = create_customer(session, "new@example.com")
        record_paid_order(session, program, customer.id, "n1", Decimal("100.00"), NOW - timedelta(days=3))
        record_paid_order(session, program, customer.id, "n2", Decimal("40.00"), NOW - timedelta(days=1))
        new_id = customer.id
    assert _stats(any_db)[new_id][:2] == (2, Decimal("140.00"))
    with any_db.session(write=True) as session:
        refund_order(session, program, "n1", "r1", Decimal("25.00"))
    assert _stats(any_db)[new_id][:2] == (2, Decimal("115.00"))
    with any_db.session(write=True) as session:
        cancel_order(session, program, "n2")
    assert _stats(any_db)[new_id][:2] == (1, Decimal("75.00"))
    assert _stats(any_db) == _recomputed(any_db)
    with any_db.session(write=True) as session:
        session.execute(delete(Order).where(Order.external_id == "n1"))
        moved = session.execute(select(Order).where(Order.external_id == "o1")).scalar_one()
        moved.customer_id = new_id  # an order moved to another customer counts for the new one only
    assert _stats(any_db) == _recomputed(any_db)
    with any_db.session(write=True) as session:
        session.delete(session.get(Customer, new_id))  # an erasure takes the totals with the customer
    with any_db.session() as session:
        assert session.get(CustomerOrderStats, new_id) is None
    assert _stats(any_db) == _recomputed(any_db)
