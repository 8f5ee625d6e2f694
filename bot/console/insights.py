"""What the console's overview pages count: feedback scores over time, the loyalty program's members and
points, the referral funnel, and the approval queues. Services: they take a Session, aggregate in SQL
(GROUP BY) and return dataclasses; pages format.

Feedback scores follow PRODUCT.md: CSAT = share of 4 and 5 among CSAT answers; NPS = % promoters (9–10)
− % detractors (0–6) among NPS answers. Buckets are UTC days, or weeks starting on Monday. The database
groups by (UTC day, kind, score) — at most 16 rows a day, whatever the volume — and the days are folded
into weeks here, so the same SQL works on SQLite (date()) and PostgreSQL (timezone('UTC', …)::date).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type

from sqlalchemy import Date, case, cast, func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.config_files import ConfigError
from bot.feedback.tagging import TOPICS
from bot.loyalty.program import Program, Reward
from bot.models import (
    ChannelIdentity, ContentSubmission, Customer, Feedback, FeedbackTopic, LedgerEntry, Referral, Review,
    SocialFollowClaim, TierChange,
)

BUCKETS = ("week", "day")
DEFAULT_WEEKS = 12
MAX_RANGE_DAYS = 3 * 366
MAX_DAILY_DAYS = 186  # more daily points than this are unreadable as a chart
CSAT_SCORES = range(1, 6)
NPS_SCORES = range(0, 11)
CSAT_SATISFIED_FROM = 4
NPS_PROMOTER_FROM, NPS_DETRACTOR_UP_TO = 9, 6
SENTIMENTS = ("positive", "neutral", "negative")
# The last day a range can end on: the calendar must still have the day after it (the period's `until`) and
# the start of a further weekly bucket (bucket_starts steps past the end); date.max has neither.
LATEST_END = date.max - timedelta(days=7)


# --- the period ----------------------------------------------------------------------------------------


class PeriodError(ValueError):
    """A range the insights cannot be shown for (the message says why, for the merchant)."""


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `start` to `end`, both included, in buckets of a day or a week (weeks start on a
    Monday: `start` is one)."""

    start: date
    end: date
    bucket: str

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), tzinfo=timezone.utc)

    @property
    def until(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.end + timedelta(days=1), time(), tzinfo=timezone.utc)

    @property
    def step(self) -> timedelta:
        return timedelta(days=7 if self.bucket == "week" else 1)

    def bucket_starts(self) -> List[date]:
        starts, day = [], self.start
        while day <= self.end:
            starts.append(day)
            day += self.step
        return starts

    def bucket_of(self, day: date) -> int:
        return (day - self.start).days // self.step.days


def period_for(start: Optional[date], end: Optional[date], bucket: Optional[str], today: date) -> Period:
    """The period a merchant asked for: by default the last 12 weeks (this week included) by week. A
    weekly period starts on the Monday of `start`'s week, so every bucket is a whole calendar week."""
    bucket = bucket or "week"
    if bucket not in BUCKETS:
        raise PeriodError(f"buckets are by {' or '.join(BUCKETS)}")
    end = end or today
    if end > LATEST_END:
        raise PeriodError(f"the range must end by {LATEST_END.isoformat()}")
    if start is None:
        back = timedelta(weeks=DEFAULT_WEEKS - 1) if bucket == "week" else timedelta(days=29)
        start = end - min(back, end - date.min)  # not before the calendar's first day (a Monday)
    if bucket == "week":
        start -= timedelta(days=start.weekday())
    if start > end:
        raise PeriodError("the start of the range is after its end")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise PeriodError(f"the range spans {days:,} days; at most {MAX_RANGE_DAYS:,} can be shown")
    if bucket == "day" and days > MAX_DAILY_DAYS:
        raise PeriodError(f"daily buckets cover at most {MAX_DAILY_DAYS} days; choose weekly buckets for "
                          f"{days:,} days")
    return Period(start, end, bucket)


# --- feedback scores -------------------------------------------------------------------------------------


# bot.feedback.service.csat_score / nps_score compute the same from a list of scores; these take the counts
# the database grouped (tests check that both agree).


def csat_percent(satisfied: int, answers: int) -> Optional[float]:
    """CSAT from 0 to 100: the percentage of answers that were 4 or 5; None without answers."""
    return 100.0 * satisfied / answers if answers else None


def nps_value(promoters: int, detractors: int, answers: int) -> Optional[float]:
    """NPS from −100 to 100: % promoters − % detractors; None without answers."""
    return 100.0 * (promoters - detractors) / answers if answers else None


@dataclass(frozen=True)
class Tally:
    """CSAT and NPS answers counted over some stretch of time."""

    csat_answers: int = 0
    csat_satisfied: int = 0  # 4 or 5
    nps_answers: int = 0
    promoters: int = 0  # 9 or 10
    detractors: int = 0  # 0 to 6

    @property
    def csat(self) -> Optional[float]:
        return csat_percent(self.csat_satisfied, self.csat_answers)

    @property
    def nps(self) -> Optional[float]:
        return nps_value(self.promoters, self.detractors, self.nps_answers)

    @property
    def passives(self) -> int:
        return self.nps_answers - self.promoters - self.detractors

    def plus(self, kind: str, score: int, count: int) -> "Tally":
        if kind == "csat" and score in CSAT_SCORES:
            return replace(self, csat_answers=self.csat_answers + count,
                           csat_satisfied=self.csat_satisfied + (count if score >= CSAT_SATISFIED_FROM else 0))
        if kind == "nps" and score in NPS_SCORES:
            return replace(self, nps_answers=self.nps_answers + count,
                           promoters=self.promoters + (count if score >= NPS_PROMOTER_FROM else 0),
                           detractors=self.detractors + (count if score <= NPS_DETRACTOR_UP_TO else 0))
        return self  # a score outside its scale is not an answer


@dataclass(frozen=True)
class BucketTally:
    start: date
    end: date  # the bucket's last day (clipped to the period)
    tally: Tally


@dataclass(frozen=True)
class TopicCount:
    topic: str
    positive: int = 0
    neutral: int = 0
    negative: int = 0
    unrated: int = 0  # no sentiment recorded

    @property
    def total(self) -> int:
        return self.positive + self.neutral + self.negative + self.unrated


@dataclass(frozen=True)
class FeedbackInsights:
    period: Period
    channel: Optional[str]
    buckets: Tuple[BucketTally, ...]
    total: Tally
    csat_distribution: Tuple[Tuple[int, int], ...]  # (score, answers) for 1..5
    nps_distribution: Tuple[Tuple[int, int], ...]  # (score, answers) for 0..10
    topics: Tuple[TopicCount, ...]  # most mentioned first


def utc_day(session: Session, column: Any) -> ColumnElement:
    """The UTC calendar day of a UTCDateTime column, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        # A literal zone, not a bound one: the same expression must appear in SELECT and GROUP BY.
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column)  # SQLite keeps UTC datetimes as text: 'YYYY-MM-DD HH:MM:SS.ffffff'


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def feedback_insights(session: Session, period: Period, channel: Optional[str] = None) -> FeedbackInsights:
    """Scores per bucket, score distributions and topics (by sentiment) for the feedback given in `period`,
    on one channel or all."""
    conditions = [Feedback.created_at >= period.since, Feedback.created_at < period.until]
    if channel:
        conditions.append(Feedback.channel == channel)
    day = utc_day(session, Feedback.created_at)
    rows = session.execute(
        select(day, Feedback.kind, Feedback.score, func.count())
        .where(*conditions).group_by(day, Feedback.kind, Feedback.score)
    ).all()

    starts = period.bucket_starts()
    tallies = [Tally() for _ in starts]
    total = Tally()
    distribution: Dict[Tuple[str, int], int] = {}
    for day_value, kind, score, count in rows:
        index = period.bucket_of(_as_date(day_value))
        if not 0 <= index < len(tallies):
            continue
        tallies[index] = tallies[index].plus(kind, int(score), int(count))
        total = total.plus(kind, int(score), int(count))
        distribution[(kind, int(score))] = distribution.get((kind, int(score)), 0) + int(count)
    buckets = tuple(
        BucketTally(start, min(start + period.step - timedelta(days=1), period.end), tally)
        for start, tally in zip(starts, tallies)
    )

    topics: Dict[str, Dict[str, int]] = {}
    for topic, sentiment, count in session.execute(
        select(FeedbackTopic.topic, Feedback.sentiment, func.count())
        .join(Feedback, Feedback.id == FeedbackTopic.feedback_id)
        .where(*conditions).group_by(FeedbackTopic.topic, Feedback.sentiment)
    ):
        counts = topics.setdefault(topic, {})
        key = sentiment if sentiment in SENTIMENTS else "unrated"
        counts[key] = counts.get(key, 0) + int(count)
    known_order = {topic: index for index, topic in enumerate(TOPICS)}
    topic_counts = sorted(
        (TopicCount(topic, **counts) for topic, counts in topics.items()),
        key=lambda item: (-item.total, known_order.get(item.topic, len(known_order)), item.topic),
    )
    return FeedbackInsights(
        period=period,
        channel=channel or None,
        buckets=buckets,
        total=total,
        csat_distribution=tuple((score, distribution.get(("csat", score), 0)) for score in CSAT_SCORES),
        nps_distribution=tuple((score, distribution.get(("nps", score), 0)) for score in NPS_SCORES),
        topics=tuple(topic_counts),
    )


def feedback_channels(session: Session) -> List[str]:
    """The channels any feedback came from (for the channel filter)."""
    return list(session.execute(select(Feedback.channel).distinct().order_by(Feedback.channel)).scalars())


# --- the loyalty program ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointValue:
    """What a point is worth in money, and the reward that says so."""

    per_point: Decimal
    reward: Reward


def point_value(program: Program) -> Optional[PointValue]:
    """The most a point buys among the fixed-amount rewards (value ÷ points): outstanding points valued at
    this rate are the program's liability at its most expensive. None when no reward is a fixed amount."""
    fixed = [reward for reward in program.rewards if reward.kind == "amount_off" and reward.value]
    if not fixed:
        return None
    best = max(fixed, key=lambda reward: (Decimal(reward.value) / reward.points, -reward.points))
    return PointValue(Decimal(best.value) / best.points, best)


@dataclass(frozen=True)
class TierRow:
    name: str
    customers: int
    known: bool = True  # False: a recorded tier the program no longer has


@dataclass(frozen=True)
class TierChangeRow:
    change: TierChange
    customer_email: Optional[str]


@dataclass(frozen=True)
class LoyaltyOverview:
    members: int
    linked_members: int  # customers with at least one linked chat identity
    identities_by_channel: Tuple[Tuple[str, int], ...]
    tiers: Tuple[TierRow, ...]  # the program's tiers in order (zeros too), then any other recorded tier
    not_evaluated: int  # customers whose tier was never computed (no order since they joined)
    issued: int  # every positive entry: earned, and positive adjustments
    redeemed: int  # spent on rewards (a positive number)
    expired: int
    taken_back: int  # refunds, reversed referrals, negative adjustments
    outstanding: int  # issued − redeemed − expired − taken_back: the ledger's net
    balances_total: int  # the customers' stored balances summed (equals `outstanding` when consistent)
    positive_balances: int  # what members can still spend: the liability in points
    point_value: Optional[PointValue]
    recent_tier_changes: Tuple[TierChangeRow, ...]

    @property
    def liability(self) -> Optional[Decimal]:
        if self.point_value is None:
            return None
        return (self.positive_balances * self.point_value.per_point).quantize(Decimal("0.01"))


def loyalty_overview(session: Session, program: Program, recent: int = 10) -> LoyaltyOverview:
    members = int(session.execute(select(func.count(Customer.id))).scalar_one())
    linked = int(session.execute(select(func.count(func.distinct(ChannelIdentity.customer_id)))).scalar_one())
    by_channel = tuple((channel, int(count)) for channel, count in session.execute(
        select(ChannelIdentity.channel, func.count())
        .group_by(ChannelIdentity.channel).order_by(ChannelIdentity.channel)
    ))
    recorded = {name: int(count) for name, count in session.execute(
        select(Customer.tier_name, func.count()).group_by(Customer.tier_name)
    )}
    not_evaluated = recorded.pop(None, 0)
    tiers = [TierRow(tier.name, recorded.pop(tier.name, 0)) for tier in program.tiers]
    tiers.extend(TierRow(name, count, known=False) for name, count in sorted(recorded.items()))

    positive = func.coalesce(func.sum(case((LedgerEntry.points > 0, LedgerEntry.points), else_=0)), 0)
    negative = func.coalesce(func.sum(case((LedgerEntry.points < 0, LedgerEntry.points), else_=0)), 0)
    issued = redeemed = expired = taken_back = 0
    for kind, plus, minus in session.execute(
        select(LedgerEntry.kind, positive, negative).group_by(LedgerEntry.kind)
    ):
        issued += int(plus)
        if kind == "redeem":
            redeemed -= int(minus)
        elif kind == "expire":
            expired -= int(minus)
        else:
            taken_back -= int(minus)
    balances_total, positive_balances = (int(value) for value in session.execute(
        select(func.coalesce(func.sum(Customer.points_balance), 0),
               func.coalesce(func.sum(case((Customer.points_balance > 0, Customer.points_balance), else_=0)), 0))
    ).one())
    changes = tuple(TierChangeRow(change, email) for change, email in session.execute(
        select(TierChange, Customer.email).join(Customer, Customer.id == TierChange.customer_id)
        .order_by(TierChange.created_at.desc(), TierChange.id.desc()).limit(recent)
    ))
    return LoyaltyOverview(
        members=members, linked_members=linked, identities_by_channel=by_channel, tiers=tuple(tiers),
        not_evaluated=not_evaluated, issued=issued, redeemed=redeemed, expired=expired, taken_back=taken_back,
        outstanding=issued - redeemed - expired - taken_back, balances_total=balances_total,
        positive_balances=positive_balances, point_value=point_value(program), recent_tier_changes=changes,
    )


# --- referrals -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferralFunnel:
    """Beyond bot.advocacy.referrals.referral_totals: how many referred friends placed their first order,
    and why referrals were rejected (most frequent reason first)."""

    with_order: int
    rejected_reasons: Tuple[Tuple[str, int], ...]
    other_rejected: int  # rejections whose reason is not among those listed


def referral_funnel(session: Session, reasons: int = 10) -> ReferralFunnel:
    with_order = int(session.execute(
        select(func.count(Referral.id)).where(Referral.order_external_id.isnot(None))
    ).scalar_one())
    counted = [(reason, int(count)) for reason, count in session.execute(
        select(Referral.reason, func.count(Referral.id)).where(Referral.status == "rejected")
        .group_by(Referral.reason).order_by(func.count(Referral.id).desc(), Referral.reason)
    )]
    return ReferralFunnel(with_order, tuple(counted[:reasons]), sum(count for _, count in counted[reasons:]))


def referrals_in_review(session: Session) -> int:
    """Referrals the fraud rules hold for the merchant (all of them, however many a page lists)."""
    return int(session.execute(select(func.count(Referral.id)).where(Referral.status == "review")).scalar_one())


# --- approval queues -------------------------------------------------------------------------------------

QueueModel = Type[Any]  # Review | ContentSubmission | SocialFollowClaim
QUEUE_MODELS: Dict[str, QueueModel] = {"reviews": Review, "content": ContentSubmission, "social": SocialFollowClaim}


@dataclass(frozen=True)
class QueueItem:
    item: Any  # a Review, ContentSubmission or SocialFollowClaim
    customer_email: Optional[str]


@dataclass(frozen=True)
class Queue:
    name: str  # reviews | content | social
    items: Tuple[QueueItem, ...]  # oldest first
    pending: int  # all pending, also those beyond `items`


def pending_queue(session: Session, name: str, limit: int = 50) -> Queue:
    """The oldest pending items of one approval queue, with their customer's email."""
    model = QUEUE_MODELS[name]
    items = tuple(QueueItem(item, email) for item, email in session.execute(
        select(model, Customer.email).outerjoin(Customer, Customer.id == model.customer_id)
        .where(model.status == "pending").order_by(model.created_at, model.id).limit(limit)
    ))
    pending = int(session.execute(
        select(func.count()).select_from(model).where(model.status == "pending")
    ).scalar_one())
    return Queue(name, items, pending)


# --- quizzes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuizReports:
    reports: Tuple[Any, ...]  # bot.quiz.stats.QuizStats, quiz files first (by id), then quizzes known only by runs
    problem: Optional[str] = None  # why the quiz files could not be read (their runs are shown by raw ids)


def quiz_reports(session: Session, directory: Path, since: Optional[datetime], until: Optional[datetime] = None,
                 top: int = 5) -> QuizReports:
    """Statistics of every quiz with a file or with runs started in the window (as `python -m bot quiz stats`)."""
    from bot.catalog.snapshot import catalog_snapshot, quizzes_for
    from bot.quiz.stats import quiz_ids_with_runs, quiz_stats

    problem = None
    try:
        quizzes: Dict[str, Any] = dict(quizzes_for(catalog_snapshot(session), directory))
    except (ConfigError, OSError) as error:
        quizzes, problem = {}, str(error)
    ids = sorted(quizzes) + [quiz_id for quiz_id in quiz_ids_with_runs(session) if quiz_id not in quizzes]
    return QuizReports(
        tuple(quiz_stats(session, quizzes.get(quiz_id, quiz_id), since=since, until=until, top=top) for quiz_id in ids),
        problem,
    )
