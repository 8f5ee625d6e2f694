"""The console's aggregations (bot/console/insights.py) on real SQLite and PostgreSQL: CSAT and NPS arithmetic
on known answers, bucketing by UTC day and week, score distributions, topics by sentiment, the channel
filter, the loyalty program's points and tiers, and what a point is worth."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterable, Optional

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.console.insights import (
    Period, PeriodError, Tally, csat_percent, feedback_channels, feedback_insights, loyalty_overview, nps_value,
    period_for, point_value,
)
from bot.db import Database
from bot.feedback.search import search_text_for
from bot.feedback.service import csat_score, nps_score
from bot.identity import create_customer, link_identity
from bot.loyalty.ledger import post_entry
from bot.loyalty.program import Reward
from bot.models import Customer, Feedback, FeedbackTopic, TierChange

MONDAY = date(2026, 6, 1)  # a Monday


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)


def add_feedback(session: Session, kind: str, score: int, when: datetime, *, channel: str = "widget",
                 comment: Optional[str] = None, sentiment: Optional[str] = None, topics: Iterable[str] = (),
                 sender_id: str = "s1", customer_id: Optional[int] = None) -> Feedback:
    """A feedback row as the shopper-side service stores it (search text included), with its topic rows."""
    topics = list(topics)
    row = Feedback(channel=channel, sender_id=sender_id, customer_id=customer_id, kind=kind, score=score,
                   comment=comment, sentiment=sentiment, topics=topics, search_text=search_text_for(comment, []),
                   status="new", goodwill_points=0, created_at=when, updated_at=when)
    session.add(row)
    session.flush()
    for topic in topics:
        session.add(FeedbackTopic(feedback_id=row.id, topic=topic))
    session.flush()
    return row


# --- arithmetic ------------------------------------------------------------------------------------------


def test_csat_is_the_share_of_fours_and_fives() -> None:
    scores = (5, 4, 4, 3, 2, 1, 5, 5)  # 5 of 8 are 4 or 5
    tally = Tally()
    for score in scores:
        tally = tally.plus("csat", score, 1)
    assert (tally.csat_answers, tally.csat_satisfied) == (8, 5)
    assert tally.csat == pytest.approx(62.5) and csat_percent(5, 8) == pytest.approx(62.5)
    assert tally.csat == pytest.approx(csat_score(scores))  # the shopper-side service's definition
    assert csat_percent(0, 0) is None and Tally().csat is None and csat_score([]) is None


def test_nps_is_percent_promoters_minus_percent_detractors() -> None:
    scores = (10, 9, 9, 8, 7, 6, 0, 3, 10, 10)  # 5 promoters, 2 passives, 3 detractors of 10
    tally = Tally()
    for score in scores:
        tally = tally.plus("nps", score, 1)
    assert (tally.promoters, tally.passives, tally.detractors) == (5, 2, 3)
    assert tally.nps == pytest.approx(20.0) and nps_value(5, 3, 10) == pytest.approx(20.0)
    assert tally.nps == pytest.approx(nps_score(scores))
    assert nps_value(0, 4, 4) == -100 and nps_value(3, 0, 3) == 100 and nps_value(0, 0, 0) is None
    # Counts add up the same as single answers; a score off its scale is no answer at all.
    assert Tally().plus("nps", 9, 3).plus("nps", 6, 1) == Tally(nps_answers=4, promoters=3, detractors=1)
    assert Tally().plus("csat", 7, 1) == Tally() and Tally().plus("nps", 11, 1) == Tally()


# --- the period ------------------------------------------------------------------------------------------


def test_the_default_period_is_twelve_whole_weeks_up_to_today() -> None:
    today = date(2026, 6, 17)  # a Wednesday
    period = period_for(None, None, None, today)
    assert period == Period(date(2026, 3, 30), today, "week")
    assert period.start.weekday() == 0 and len(period.bucket_starts()) == 12
    assert period.since == datetime(2026, 3, 30, tzinfo=timezone.utc)
    assert period.until == datetime(2026, 6, 18, tzinfo=timezone.utc)
    assert period_for(date(2026, 6, 3), date(2026, 6, 10), "week", today).start == MONDAY
    daily = period_for(None, None, "day", today)
    assert (daily.start, len(daily.bucket_starts())) == (date(2026, 5, 19), 30)


@pytest.mark.parametrize("start, end, bucket, problem", [
    (date(2026, 6, 10), date(2026, 6, 1), "week", "after its end"),
    (date(2020, 1, 1), date(2026, 6, 1), "week", "at most"),
    (date(2026, 1, 1), date(2026, 12, 31), "day", "daily buckets cover at most 186 days"),
    (None, None, "month", "buckets are by week or day"),
    (date(9999, 12, 1), date(9999, 12, 31), "week", "the range must end by 9999-12-24"),
    (date(9999, 12, 25), date.max, "day", "the range must end by 9999-12-24"),
    (None, date.max, None, "the range must end by 9999-12-24"),
])
def test_ranges_that_cannot_be_shown_are_refused(start, end, bucket, problem) -> None:
    with pytest.raises(PeriodError, match=problem):
        period_for(start, end, bucket, date(2026, 6, 17))


@pytest.mark.parametrize("bucket", ["week", "day"])
def test_ranges_at_the_ends_of_the_calendar_do_not_overflow(any_db: Database, bucket: str) -> None:
    """The last day a range may end on still has a day after it (`until`) and room for the bucket steps; a
    range ending in the calendar's first days starts on its first day (a Monday) rather than before it."""
    last = period_for(date(9999, 12, 1), date(9999, 12, 24), bucket, date(2026, 6, 17))
    assert last.until == datetime(9999, 12, 25, tzinfo=timezone.utc)
    assert last.bucket_starts()[-1] == (date(9999, 12, 20) if bucket == "week" else date(9999, 12, 24))
    first = period_for(None, date(1, 1, 3), bucket, date(2026, 6, 17))
    assert (first.start, first.since) == (date.min, datetime(1, 1, 1, tzinfo=timezone.utc))
    with any_db.session(write=True) as session:
        add_feedback(session, "csat", 5, at(date(9999, 12, 24), 23, 59))
        add_feedback(session, "csat", 1, at(date(1, 1, 2)))
    with any_db.session() as session:
        late, early = feedback_insights(session, last), feedback_insights(session, first)
    assert late.buckets[-1].end == date(9999, 12, 24) and late.total == Tally(csat_answers=1, csat_satisfied=1)
    assert early.total == Tally(csat_answers=1)


# --- feedback on the database ----------------------------------------------------------------------------


def fill_answers(db: Database) -> Database:
    """Two weeks of known answers (June 1–14, 2026), plus some just outside them."""
    week2 = MONDAY + timedelta(days=7)
    with db.session(write=True) as session:
        for score in (5, 4, 3, 1):  # week 1 CSAT: 2 of 4 satisfied = 50 %
            add_feedback(session, "csat", score, at(MONDAY + timedelta(days=2)))
        for score in (10, 9, 8, 6, 0):  # week 1 NPS: 2 promoters, 2 detractors of 5 = 0
            add_feedback(session, "nps", score, at(MONDAY), channel="telegram")
        # Week 2, on the period's last day, a minute before midnight UTC.
        add_feedback(session, "csat", 5, at(week2 + timedelta(days=6), 23, 59), comment="Fast delivery, lovely lamp",
                     sentiment="positive", topics=["shipping", "product"])
        add_feedback(session, "nps", 10, at(week2), comment="arrived late", sentiment="negative", topics=["shipping"])
        add_feedback(session, "nps", 7, at(week2), channel="telegram", comment="ok price", sentiment="neutral",
                     topics=["price"])
        add_feedback(session, "nps", 3, at(week2), channel="instagram", comment="box crushed", topics=["packaging"])
        # Outside: the day before, and the first moment after the period.
        add_feedback(session, "csat", 1, at(MONDAY - timedelta(days=1), 23, 59), topics=["shipping"])
        add_feedback(session, "csat", 1, at(MONDAY + timedelta(days=14), 0, 0), topics=["shipping"])
    return db


@pytest.fixture()
def answers(any_db: Database) -> Database:
    return fill_answers(any_db)


def test_scores_per_week_distribution_and_topics(answers: Database) -> None:
    period = Period(MONDAY, MONDAY + timedelta(days=13), "week")
    with answers.session() as session:
        result = feedback_insights(session, period)
    first, second = result.buckets
    assert (first.start, first.end, second.start, second.end) == (
        MONDAY, MONDAY + timedelta(days=6), MONDAY + timedelta(days=7), MONDAY + timedelta(days=13))
    assert first.tally == Tally(csat_answers=4, csat_satisfied=2, nps_answers=5, promoters=2, detractors=2)
    assert (first.tally.csat, first.tally.nps) == (pytest.approx(50.0), pytest.approx(0.0))
    assert first.tally.csat == csat_score([5, 4, 3, 1]) and first.tally.nps == nps_score([10, 9, 8, 6, 0])
    assert second.tally == Tally(csat_answers=1, csat_satisfied=1, nps_answers=3, promoters=1, detractors=1)
    assert second.tally.csat == 100.0 and second.tally.nps == pytest.approx(nps_score([10, 7, 3]))
    assert result.total == Tally(csat_answers=5, csat_satisfied=3, nps_answers=8, promoters=3, detractors=3)
    assert result.total.csat == pytest.approx(60.0) and result.total.nps == pytest.approx(0.0)
    assert result.csat_distribution == ((1, 1), (2, 0), (3, 1), (4, 1), (5, 2))
    assert result.nps_distribution == ((0, 1), (1, 0), (2, 0), (3, 1), (4, 0), (5, 0), (6, 1), (7, 1), (8, 1),
                                       (9, 1), (10, 2))
    topics = {topic.topic: topic for topic in result.topics}
    assert [topic.topic for topic in result.topics] == ["shipping", "price", "packaging", "product"]
    assert (topics["shipping"].positive, topics["shipping"].negative, topics["shipping"].total) == (1, 1, 2)
    assert (topics["price"].neutral, topics["packaging"].unrated) == (1, 1)


def test_daily_buckets_and_the_channel_filter(answers: Database) -> None:
    period = Period(MONDAY, MONDAY + timedelta(days=13), "day")
    with answers.session() as session:
        daily = feedback_insights(session, period)
        telegram = feedback_insights(session, Period(MONDAY, MONDAY + timedelta(days=13), "week"), "telegram")
        channels = feedback_channels(session)
    assert len(daily.buckets) == 14
    by_day = {bucket.start: bucket.tally for bucket in daily.buckets}
    assert by_day[MONDAY] == Tally(nps_answers=5, promoters=2, detractors=2)
    assert by_day[MONDAY + timedelta(days=2)].csat_answers == 4
    assert by_day[MONDAY + timedelta(days=13)] == Tally(csat_answers=1, csat_satisfied=1)
    assert sum(1 for tally in by_day.values() if tally == Tally()) == 10
    assert telegram.total == Tally(nps_answers=6, promoters=2, detractors=2)
    assert telegram.buckets[1].tally.nps == 0.0 and telegram.buckets[1].tally.passives == 1
    assert [topic.topic for topic in telegram.topics] == ["price"]
    assert channels == ["instagram", "telegram", "widget"]


def test_days_are_utc_days_whatever_the_postgresql_session_zone(postgres_db: Database) -> None:
    answers = fill_answers(postgres_db)
    period = Period(MONDAY, MONDAY + timedelta(days=13), "day")
    with answers.session() as session:
        session.execute(text("SET LOCAL TIME ZONE 'Pacific/Auckland'"))  # UTC+12: 23:59 UTC is the next day there
        result = feedback_insights(session, period)
    assert result.buckets[-1].tally == Tally(csat_answers=1, csat_satisfied=1)
    assert result.total.csat_answers == 5


def test_an_empty_range_has_empty_buckets(any_db: Database) -> None:
    with any_db.session() as session:
        result = feedback_insights(session, Period(MONDAY, MONDAY + timedelta(days=20), "week"))
    assert len(result.buckets) == 3 and all(bucket.tally == Tally() for bucket in result.buckets)
    assert result.total.csat is None and result.topics == () and sum(n for _, n in result.csat_distribution) == 0


# --- the loyalty program ---------------------------------------------------------------------------------


def test_points_and_tiers_add_up(any_db: Database, program, clock) -> None:
    now = clock.current
    with any_db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        bo = create_customer(session, "bo@example.com", "Bo").id
        create_customer(session, "cy@example.com", "Cy")
        link_identity(session, ann, "telegram", "100")
        link_identity(session, ann, "instagram", "200")
        link_identity(session, bo, "telegram", "300")
        entries = [(ann, 1200, "earn"), (ann, -500, "redeem"), (ann, -100, "expire"), (bo, 300, "earn"),
                   (bo, 50, "adjust"), (bo, -200, "reverse"), (bo, -20, "adjust")]
        for index, (customer, points, kind) in enumerate(entries):
            post_entry(session, customer, points, kind=kind, reason="test", source="test", idempotency_key=str(index))
        for customer, tier in ((ann, "Gold"), (bo, "Silver")):
            session.get(Customer, customer).tier_name = tier
        session.add(TierChange(customer_id=ann, from_tier="Silver", to_tier="Gold", direction="up", reason="order 7",
                               created_at=now))
    with any_db.session() as session:
        overview = loyalty_overview(session, program)
    assert (overview.members, overview.linked_members) == (3, 2)
    assert overview.identities_by_channel == (("instagram", 1), ("telegram", 2))
    assert [(tier.name, tier.customers) for tier in overview.tiers] == [("Bronze", 0), ("Silver", 1), ("Gold", 1),
                                                                        ("Platinum", 0)]
    assert overview.not_evaluated == 1
    assert (overview.issued, overview.redeemed, overview.expired, overview.taken_back) == (1550, 500, 100, 220)
    assert overview.outstanding == overview.balances_total == overview.positive_balances == 730
    assert overview.point_value.per_point == Decimal("0.01")
    assert overview.liability == Decimal("7.30")
    [change] = overview.recent_tier_changes
    assert (change.customer_email, change.change.to_tier) == ("ann@example.com", "Gold")


def test_a_point_is_worth_the_best_rate_among_fixed_amount_rewards(program) -> None:
    value = point_value(program)
    assert value.per_point == Decimal("0.01") and value.reward.kind == "amount_off"
    better = Reward("big", "$15 off", "amount_off", 1000, Decimal("15"), None, 6, None)
    value = point_value(replace(program, rewards=program.rewards + (better,)))
    assert (value.per_point, value.reward.id) == (Decimal("0.015"), "big")
    no_money = tuple(reward for reward in program.rewards if reward.kind != "amount_off")
    assert point_value(replace(program, rewards=no_money)) is None
