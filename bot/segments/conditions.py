"""Segment condition kinds: one class per kind, registered by name in CONDITION_KINDS.

A condition is one JSON object, {"kind": "<name>", ...its fields}; a filter is a list of them, ANDed
(bot/segments/filters.py). Each class

  - declares its `kind`, a `label` and its `fields` (what the console's editor shows and `from_json` reads),
  - compiles to SQL: `where(context)` over customers' own columns, or `membership(column, context)` — the
    condition on any customer-id column — for kinds over other tables; and, when its table yields each
    member once, `driver(context)`: a SELECT of their ids that a count can start from,
  - says in words what it asks for (`describe`) and why one member matches (`reason(facts)`: the facts are
    bot/segments/facts.py's MemberFacts, read once for a page of members).

Adding a kind: write a class like the ones below and decorate it with @register. Its `membership` may use
any table that references customers.id (a poll answers table: `column.in_(select(PollAnswer.customer_id)
.where(...))`); its `reason` reads what it needs from MemberFacts (add a field there and fill it in
`load_facts`), or returns its own description when the facts have nothing to add.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, cast, exists, func, not_, or_, select, true
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from bot.consent import UNSUBSCRIBED, chats_whose_latest_choice_is
from bot.models import (
    CampaignResponse, ChannelIdentity, Customer, CustomerOrderStats, Feedback, PurchasePrediction, QuizRun, Referral, Review,
)

if TYPE_CHECKING:
    from bot.segments.facts import MemberFacts

MAX_DAYS = 36_500
MAX_NUMBER = 10 ** 12
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # tier, channel, quiz, question and option names


class SegmentError(ValueError):
    """A filter or condition that cannot be used as given; the message says what to change."""


@dataclass(frozen=True)
class FilterContext:
    """What a condition's SQL depends on besides its own fields: the time, the program's expiry rule and
    the database (JSON is read differently by SQLite and PostgreSQL)."""

    now: datetime
    expiry_inactive_months: int
    dialect: str

    def days_ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)


@dataclass(frozen=True)
class Field:
    """One input of a condition in the editor: "int", "number", "percent", "choice", "bool" or "names"
    (comma-separated names)."""

    name: str
    type: str
    label: str
    choices: Tuple[str, ...] = ()
    required: bool = False


class Condition:
    kind: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[Tuple[Field, ...]] = ()

    def __init__(self, **values: Any) -> None:
        self.values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.values!r})"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Condition":
        unknown = sorted(set(data) - {"kind"} - {field.name for field in cls.fields})
        if unknown:
            raise SegmentError(f"{cls.kind}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
        values = {}
        for field in cls.fields:
            value = data.get(field.name)
            if value is None or value == "" or value == []:
                if field.required:
                    raise SegmentError(f"{cls.kind}: {field.label.lower()} is required")
                continue
            values[field.name] = _parsed(cls.kind, field, value)
        condition = cls(**values)
        condition.check()
        return condition

    def check(self) -> None:
        """More than one field's rules (min ≤ max); SegmentError when broken."""
        low, high = self.values.get("min"), self.values.get("max")
        if low is not None and high is not None and low > high:
            raise SegmentError(f"{self.kind}: the minimum {low} is above the maximum {high}")

    def to_json(self) -> Dict[str, Any]:
        return {"kind": self.kind, **{field.name: self.values[field.name] for field in self.fields
                                      if field.name in self.values}}

    def where(self, context: FilterContext) -> ColumnElement:
        """SQL true for the customers row of a member. Kinds over customers' own columns write this; kinds
        over other tables write `membership` instead."""
        return self.membership(Customer.id, context)

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        """SQL true when `column` (any customer-id column: customers.id, or another condition's `driver`)
        is a member's id."""
        return column.in_(select(Customer.id).where(self.where(context)))

    def driver(self, context: FilterContext) -> Optional[Select]:
        """The members' ids from the kind's own table, each once, without reading customers — or None.
        A filter with a driver counts from it (bot/segments/filters.py `member_ids`): a million-row scan of
        customers is the slowest part of a count otherwise."""
        stats = self.order_stats(context)
        return None if stats is None else _stats_ids(stats)

    def order_stats(self, context: FilterContext) -> Optional[ColumnElement]:
        """When the members are exactly the customers whose `customer_order_stats` row matches a predicate:
        that predicate (else None). A filter's conditions of this kind are read in one scan of that table
        (one WHERE), not each as a set of ids joined to the others'."""
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return self.describe()


CONDITION_KINDS: Dict[str, Type[Condition]] = {}


def register(cls: Type[Condition]) -> Type[Condition]:
    if cls.kind in CONDITION_KINDS:
        raise ValueError(f"condition kind {cls.kind!r} is registered twice")
    CONDITION_KINDS[cls.kind] = cls
    return cls


def condition_from_json(data: Any) -> Condition:
    if not isinstance(data, Mapping):
        raise SegmentError("a condition is an object with a \"kind\"")
    kind = data.get("kind")
    cls = CONDITION_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SegmentError(f"unknown condition kind {kind!r}; known: {', '.join(sorted(CONDITION_KINDS))}")
    return cls.from_json(data)


def _parsed(kind: str, field: Field, value: Any) -> Any:
    where = f"{kind}: {field.label.lower()}"
    if field.type in ("int", "number", "percent"):
        if isinstance(value, str):
            try:
                value = float(value.replace(",", "").strip())
            except ValueError:
                raise SegmentError(f"{where} must be a number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise SegmentError(f"{where} must be a number")
        high = 100 if field.type == "percent" else MAX_NUMBER
        if not 0 <= value <= high:
            raise SegmentError(f"{where} must be between 0 and {high:,}")
        if field.type == "int":
            if value != int(value):
                raise SegmentError(f"{where} must be a whole number")
            return int(value)
        return int(value) if value == int(value) else round(float(value), 2)
    if field.type == "bool":
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise SegmentError(f"{where} must be true or false")
        return value
    if field.type == "choice":
        if value not in field.choices:
            raise SegmentError(f"{where} must be one of {', '.join(field.choices)}, not {value!r}")
        return value
    if field.type == "names":
        names = [part.strip() for part in value.split(",")] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise SegmentError(f"{where} must be a list of names")
        names = [name for name in names if name]
        if not names or len(names) > 50 or not all(NAME.match(name) for name in names):
            raise SegmentError(f"{where}: 1 to 50 names of letters, digits, . _ and -")
        return sorted(set(names), key=names.index)
    if field.type == "name":
        if not isinstance(value, str) or not NAME.match(value.strip()):
            raise SegmentError(f"{where}: a name of letters, digits, . _ and -")
        return value.strip()
    raise ValueError(f"unknown field type {field.type!r}")


def _between(column: Any, low: Any, high: Any) -> ColumnElement:
    parts = []
    if low is not None:
        parts.append(column >= low)
    if high is not None:
        parts.append(column <= high)
    return and_(true(), *parts)


def _range_words(low: Any, high: Any, unit: str = "", fmt: str = "{:,}") -> str:
    low_text = None if low is None else fmt.format(low) + unit
    high_text = None if high is None else fmt.format(high) + unit
    if low_text and high_text:
        return low_text if low == high else f"{low_text} to {high_text}"
    if low_text:
        return f"at least {low_text}"
    return f"at most {high_text}" if high_text else "any"


def _stats_ids(where: ColumnElement) -> Select:
    return select(CustomerOrderStats.customer_id).where(where)


def _with_orders_or_none(column: Any, low: Optional[float], condition: ColumnElement) -> ColumnElement:
    """A range over order totals: customers without a stats row have 0 orders and spent 0, so a range that
    starts at 0 includes them."""
    if not low:
        # NOT EXISTS, not NOT IN: PostgreSQL turns it into an anti-join, where NOT IN over more ids than fit
        # in work_mem is a scan of the subquery per customer.
        return ~exists().where(CustomerOrderStats.customer_id == column, not_(condition))
    return column.in_(_stats_ids(condition))


def _money(value: Optional[float]) -> Optional[Decimal]:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


MIN_MAX_INT = (Field("min", "int", "Minimum"), Field("max", "int", "Maximum"))


@register
class TierCondition(Condition):
    kind = "tier"
    label = "Tier"
    fields = (Field("tiers", "names", "Tiers", required=True),)

    def where(self, context: FilterContext) -> ColumnElement:
        return Customer.tier_name.in_(self.tiers)

    def describe(self) -> str:
        return f"tier {' or '.join(self.tiers)}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return f"{facts.tier} tier"


@register
class PointsBalanceCondition(Condition):
    kind = "points_balance"
    label = "Points balance"
    fields = MIN_MAX_INT

    def where(self, context: FilterContext) -> ColumnElement:
        return _between(Customer.points_balance, self.values.get("min"), self.values.get("max"))

    def describe(self) -> str:
        return f"{_range_words(self.values.get('min'), self.values.get('max'))} points"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return f"{facts.points:,} points"


@register
class PointsExpiringCondition(Condition):
    """The balance expires `expiry.inactive_months` after the last earn or redemption (bot/loyalty/expiry.py);
    these are the customers whose expiry date falls within the next `days` (or is already past, not yet
    run by the expiry job)."""

    kind = "points_expiring"
    label = "Points expiring within"
    fields = (Field("days", "int", "Days", required=True), Field("min_points", "int", "At least points"))

    def where(self, context: FilterContext) -> ColumnElement:
        cutoff = context.now + timedelta(days=self.days) - relativedelta(months=context.expiry_inactive_months)
        return and_(Customer.points_balance >= max(1, self.values.get("min_points") or 1),
                    Customer.last_activity_at <= cutoff)

    def describe(self) -> str:
        least = self.values.get("min_points")
        return (f"{least:,}+ points" if least else "points") + f" expiring within {self.days} days"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        when = facts.points_expire_at
        return f"{facts.points:,} points expiring {when:%Y-%m-%d}" if when else f"{facts.points:,} points"


@register
class RecencyCondition(Condition):
    kind = "recency"
    label = "Days since last order"
    fields = (Field("min", "int", "At least days"), Field("max", "int", "At most days"))

    def order_stats(self, context: FilterContext) -> ColumnElement:
        low, high = self.values.get("min"), self.values.get("max")
        parts = [CustomerOrderStats.last_order_at.is_not(None)]
        if low is not None:
            parts.append(CustomerOrderStats.last_order_at <= context.days_ago(low))
        if high is not None:
            parts.append(CustomerOrderStats.last_order_at > context.days_ago(high + 1))
        return and_(*parts)

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return column.in_(_stats_ids(self.order_stats(context)))

    def describe(self) -> str:
        return f"last order {_range_words(self.values.get('min'), self.values.get('max'), ' days')} ago"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        if facts.last_order_at is None:
            return "no orders"
        return f"last order {(context.now - facts.last_order_at).days:,} days ago"


@register
class FrequencyCondition(Condition):
    kind = "frequency"
    label = "Number of orders"
    fields = MIN_MAX_INT

    def _range(self) -> ColumnElement:
        return _between(CustomerOrderStats.order_count, self.values.get("min"), self.values.get("max"))

    def order_stats(self, context: FilterContext) -> Optional[ColumnElement]:
        return self._range() if self.values.get("min") else None  # from 0: those without orders too

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return _with_orders_or_none(column, self.values.get("min"), self._range())

    def describe(self) -> str:
        words = _range_words(self.values.get('min'), self.values.get('max'))
        return f"{words} order{'' if words == '1' else 's'}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return f"{facts.order_count:,} order{'' if facts.order_count == 1 else 's'}"


@register
class LifetimeSpendCondition(Condition):
    kind = "lifetime_spend"
    label = "Lifetime spend"
    fields = (Field("min", "number", "Minimum"), Field("max", "number", "Maximum"))

    def _range(self) -> ColumnElement:
        return _between(CustomerOrderStats.lifetime_spend, _money(self.values.get("min")), _money(self.values.get("max")))

    def order_stats(self, context: FilterContext) -> Optional[ColumnElement]:
        return self._range() if self.values.get("min") else None  # from 0: those without orders too

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return _with_orders_or_none(column, self.values.get("min"), self._range())

    def describe(self) -> str:
        return f"spent {_range_words(self.values.get('min'), self.values.get('max'), fmt='{:,.2f}')}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return f"spent {facts.spend:,.2f}"


def _percent(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _likely(facts: "MemberFacts") -> str:
    if facts.probability is None:
        return "no prediction yet"
    was = f" (was {_percent(facts.previous_probability)})" if facts.previous_probability is not None else ""
    return f"{_percent(facts.probability)} likely{was}"


@register
class ProbabilityCondition(Condition):
    """The stored 90-day repeat-purchase probability (bot/prediction/), in percent."""

    kind = "probability"
    label = "Likely to order in 90 days (%)"
    fields = (Field("min", "percent", "At least %"), Field("max", "percent", "At most %"))

    def driver(self, context: FilterContext) -> Select:
        low, high = self.values.get("min"), self.values.get("max")
        return select(PurchasePrediction.customer_id).where(_between(
            PurchasePrediction.probability, None if low is None else low / 100, None if high is None else high / 100))

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return column.in_(self.driver(context))

    def describe(self) -> str:
        return f"{_range_words(self.values.get('min'), self.values.get('max'), ' %')} likely to order in 90 days"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return _likely(facts)


@register
class LikelyToLapseCondition(Condition):
    """High past value and a falling probability: spent at least `min_spend`, and the latest refit put the
    probability at least `min_drop` points below the run before it (purchase_predictions keeps both)."""

    kind = "likely_to_lapse"
    label = "Likely to lapse"
    fields = (Field("min_spend", "number", "Spent at least", required=True),
              Field("min_drop", "percent", "Probability fell by at least (points)", required=True),
              Field("below", "percent", "Probability now below %"))

    def driver(self, context: FilterContext) -> Select:
        falling = [PurchasePrediction.previous_probability.is_not(None),
                   PurchasePrediction.previous_probability - PurchasePrediction.probability >= self.min_drop / 100]
        if self.values.get("below") is not None:
            falling.append(PurchasePrediction.probability < self.below / 100)
        return select(PurchasePrediction.customer_id).where(
            *falling, PurchasePrediction.customer_id.in_(_stats_ids(CustomerOrderStats.lifetime_spend >= _money(self.min_spend))))

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return column.in_(self.driver(context))

    def describe(self) -> str:
        below = f", now below {self.below} %" if self.values.get("below") is not None else ""
        return (f"spent at least {self.min_spend:,.2f} and probability fell by {self.min_drop} points or more"
                f"{below}")

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return f"spent {facts.spend:,.2f}; {_likely(facts)}"


@register
class ChannelCondition(Condition):
    """Linked to a chat on one of `channels` (any channel when not given); with `reachable`, only chats that
    take the bot's messages (true) or that blocked it (false)."""

    kind = "channel"
    label = "Channel"
    fields = (Field("channels", "names", "Channels"), Field("reachable", "bool", "Reachable"))

    def _identities(self, column: Any) -> List[ColumnElement]:
        parts = [ChannelIdentity.customer_id == column]
        if self.values.get("channels"):
            parts.append(ChannelIdentity.channel.in_(self.channels))
        reachable = self.values.get("reachable")
        if reachable is not None:
            parts.append(ChannelIdentity.unreachable_since.is_(None) if reachable
                         else ChannelIdentity.unreachable_since.is_not(None))
        return parts

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return exists().where(*self._identities(column))

    def describe(self) -> str:
        on = " or ".join(self.channels) if self.values.get("channels") else "any channel"
        reachable = self.values.get("reachable")
        state = "" if reachable is None else (" (reachable)" if reachable else " (unreachable)")
        return f"on {on}{state}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return "on " + (", ".join(
            f"{channel}{'' if reachable else ' (unreachable)'}" for channel, reachable in facts.channels) or "no chat")


@register
class ConsentCondition(Condition):
    """Consent to proactive messages (bot/consent.py), per chat: `may_message` — at least one linked chat has
    not withdrawn it; `unsubscribed` — at least one linked chat said no; `subscribed` — one said yes."""

    kind = "consent"
    label = "Message consent"
    fields = (Field("status", "choice", "Status", choices=("may_message", "subscribed", "unsubscribed"),
                    required=True),)

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        said = chats_whose_latest_choice_is(UNSUBSCRIBED if self.status == "may_message" else self.status).subquery()
        chat_said = exists().where(said.c.channel == ChannelIdentity.channel,
                                   said.c.sender_id == ChannelIdentity.external_id)
        chats = select(ChannelIdentity.customer_id).where(~chat_said if self.status == "may_message" else chat_said)
        return column.in_(chats)

    def describe(self) -> str:
        return {"may_message": "may be messaged", "subscribed": "subscribed on a chat",
                "unsubscribed": "unsubscribed on a chat"}[self.status]

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        said = ", ".join(f"{channel} {status}" for channel, status in facts.consents)
        return said or "no consent recorded (the channel's default)"


FEEDBACK_MOODS = {
    # The usual readings of the two scales: CSAT 1–5, NPS 0–10.
    "happy": {"csat": (4, 5), "nps": (9, 10)},
    "neutral": {"csat": (3, 3), "nps": (7, 8)},
    "unhappy": {"csat": (1, 2), "nps": (0, 6)},
}


@register
class FeedbackCondition(Condition):
    """The customer's latest answer of a survey (CSAT 1–5 or NPS 0–10; bot/feedback/): its score between
    `min` and `max`, or its `mood` (happy: CSAT 4–5 / NPS 9–10, neutral, unhappy: CSAT 1–2 / NPS 0–6).
    With survey "any", the mood of the latest answer of either survey."""

    kind = "feedback"
    label = "Last CSAT / NPS"
    fields = (Field("survey", "choice", "Survey", choices=("any", "csat", "nps"), required=True),
              Field("mood", "choice", "Mood", choices=tuple(FEEDBACK_MOODS)),
              Field("min", "int", "Score at least"), Field("max", "int", "Score at most"))

    def check(self) -> None:
        super().check()
        if self.survey == "any" and self.values.get("mood") is None:
            raise SegmentError("feedback: with survey \"any\", give a mood (happy, neutral or unhappy)")
        if self.values.get("mood") is not None and (self.values.get("min") is not None or self.values.get("max") is not None):
            raise SegmentError("feedback: give a mood or a score range, not both")

    def _latest(self, kinds: Sequence[str]) -> Any:
        later = Feedback.__table__.alias("later")
        return and_(Feedback.kind.in_(kinds), not_(exists().where(
            later.c.customer_id == Feedback.customer_id, later.c.kind.in_(kinds), later.c.id > Feedback.id)))

    def driver(self, context: FilterContext) -> Select:
        """One row per customer: their latest answer (of the survey, or of either)."""
        if self.survey == "any":
            kinds: Sequence[str] = ("csat", "nps")
            ranges = FEEDBACK_MOODS[self.mood]
            score = or_(*(and_(Feedback.kind == kind, Feedback.score.between(*ranges[kind])) for kind in kinds))
        else:
            kinds = (self.survey,)
            low, high = (FEEDBACK_MOODS[self.mood][self.survey] if self.values.get("mood")
                         else (self.values.get("min"), self.values.get("max")))
            score = _between(Feedback.score, low, high)
        return select(Feedback.customer_id).where(Feedback.customer_id.is_not(None), self._latest(kinds), score)

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        return column.in_(self.driver(context))

    def describe(self) -> str:
        survey = "CSAT or NPS" if self.survey == "any" else self.survey.upper()
        if self.values.get("mood"):
            return f"last {survey} {self.mood}"
        return f"last {survey} score {_range_words(self.values.get('min'), self.values.get('max'))}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        answers = [(kind, facts.last_scores[kind]) for kind in ("csat", "nps") if kind in facts.last_scores]
        if self.survey != "any":
            answers = [answer for answer in answers if answer[0] == self.survey]
        return "; ".join(f"last {kind.upper()} {score}" for kind, (score, _at) in answers) or "no feedback"


@register
class ReferralCondition(Condition):
    """Referral activity (bot/advocacy/): has brought friends (`referred` true, at least `min_friends`,
    rejected referrals not counted) or never has (false)."""

    kind = "referrals"
    label = "Referred friends"
    fields = (Field("referred", "bool", "Has referred", required=True), Field("min_friends", "int", "At least friends"))

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        if not self.referred:  # NOT EXISTS: an anti-join (see _with_orders_or_none)
            return ~exists().where(Referral.advocate_id == column, Referral.status != "rejected")
        counted = select(Referral.advocate_id).where(Referral.status != "rejected")
        least = self.values.get("min_friends") or 1
        if least > 1:
            counted = counted.group_by(Referral.advocate_id).having(func.count() >= least)
        return column.in_(counted)

    def describe(self) -> str:
        if not self.referred:
            return "never referred a friend"
        least = self.values.get("min_friends") or 1
        return f"referred {least}+ friend{'s' if least > 1 else ''}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return (f"referred {facts.referrals} friend{'s' if facts.referrals != 1 else ''}" if facts.referrals
                else "never referred")


@register
class ReviewCondition(Condition):
    """Review activity (bot/advocacy/reviews.py): has left a review (`approved_only`: an approved one), or
    has never left one."""

    kind = "reviews"
    label = "Reviews"
    fields = (Field("reviewed", "bool", "Has reviewed", required=True), Field("approved_only", "bool", "Approved only"))

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        which = [Review.status == "approved"] if self.values.get("approved_only") else []
        if not self.reviewed:  # NOT EXISTS: an anti-join (see _with_orders_or_none)
            return ~exists().where(Review.customer_id == column, *which)
        return column.in_(select(Review.customer_id).where(Review.customer_id.is_not(None), *which))

    def describe(self) -> str:
        kind = "an approved review" if self.values.get("approved_only") else "a review"
        return f"left {kind}" if self.reviewed else f"never left {kind}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        return f"{facts.reviews} review{'s' if facts.reviews != 1 else ''}" if facts.reviews else "no reviews"


@register
class QuizAnswerCondition(Condition):
    """Answered `option` at `question` of quiz `quiz` (data/quizzes/<quiz>.yml) in any of their runs; without
    an option, answered the question at all (a skip counts as not answered)."""

    kind = "quiz_answer"
    label = "Quiz answer"
    fields = (Field("quiz", "name", "Quiz", required=True), Field("question", "name", "Question", required=True),
              Field("option", "name", "Option"))

    def membership(self, column: Any, context: FilterContext) -> ColumnElement:
        runs = select(QuizRun.customer_id).where(QuizRun.customer_id.is_not(None), QuizRun.quiz_id == self.quiz)
        option = self.values.get("option")
        if context.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            answer = cast(QuizRun.answers, JSONB).op("->")(self.question)
            chosen = (answer.op("?")(option) if option is not None
                      else func.jsonb_array_length(func.coalesce(answer, cast("[]", JSONB))) > 0)
        else:
            element = func.json_each(QuizRun.answers, f"$.{self.question}").table_valued("value")
            chosen = exists(select(element.c.value).where(element.c.value == option)) if option is not None \
                else func.json_array_length(QuizRun.answers, f"$.{self.question}") > 0
        return column.in_(runs.where(chosen))

    def describe(self) -> str:
        option = self.values.get("option")
        return f"quiz {self.quiz}: {self.question} = {option}" if option else f"quiz {self.quiz}: answered {self.question}"

    def reason(self, facts: "MemberFacts", context: FilterContext) -> str:
        chosen = facts.quiz_answers.get((self.quiz, self.question))
        return f"{self.quiz} {self.question}: {', '.join(chosen)}" if chosen else self.describe()


@register
class PollAnswerCondition(Condition):
    """Answered campaign `campaign`'s poll (bot/campaigns/) with option `option` (its position, 1-based); without
    an option, answered it at all: "poll your customers, then incentivise what your best customers do"."""

    kind = "poll_answer"
    label = "Poll answer"
    fields = (Field("campaign", "int", "Campaign id", required=True), Field("option", "int", "Option number"))

    def where(self, context: FilterContext) -> ColumnElement:
        answered = select(CampaignResponse.customer_id).where(CampaignResponse.campaign_id == self.campaign,
                                                              CampaignResponse.option.is_not(None))
        option = self.values.get("option")
        if option is not None:
            answered = answered.where(CampaignResponse.option == option)
        return Customer.id.in_(answered)

    def describe(self) -> str:
        option = self.values.get("option")
        return (f"answered option {option} of campaign {self.campaign}'s poll" if option is not None
                else f"answered campaign {self.campaign}'s poll")
