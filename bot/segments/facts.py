"""What the reason lines of a page of segment members are written from: each member's tier, points and
their expiry, order totals, prediction, chats and consents, latest CSAT and NPS, referrals, reviews and
quiz answers — read with one query per table for the whole page, never per member."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Tuple

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.consent import latest_status
from bot.models import (
    ChannelIdentity, Customer, CustomerOrderStats, Feedback, PurchasePrediction, QuizRun, Referral, Review,
)


@dataclass
class MemberFacts:
    customer_id: int
    email: Optional[str]
    name: str
    tier: str
    points: int
    points_expire_at: Optional[datetime]
    order_count: int = 0
    last_order_at: Optional[datetime] = None
    spend: Decimal = Decimal(0)
    probability: Optional[float] = None
    previous_probability: Optional[float] = None
    channels: List[Tuple[str, bool]] = field(default_factory=list)  # (channel, reachable)
    consents: List[Tuple[str, str]] = field(default_factory=list)  # (channel, latest status) where said
    last_scores: Dict[str, Tuple[int, datetime]] = field(default_factory=dict)  # csat|nps → (score, when)
    referrals: int = 0
    reviews: int = 0
    quiz_answers: Dict[Tuple[str, str], List[str]] = field(default_factory=dict)  # (quiz, question) → options


def load_facts(session: Session, customer_ids: Sequence[int], expiry_inactive_months: int) -> Dict[int, MemberFacts]:
    ids = list(customer_ids)
    if not ids:
        return {}
    facts: Dict[int, MemberFacts] = {}
    for customer in session.execute(select(Customer).where(Customer.id.in_(ids))).scalars():
        expires = (customer.last_activity_at + relativedelta(months=expiry_inactive_months)
                   if customer.points_balance > 0 and customer.last_activity_at is not None else None)
        facts[customer.id] = MemberFacts(customer.id, customer.email, customer.display_name,
                                         customer.tier_name or "no", customer.points_balance, expires)
    for stats in session.execute(select(CustomerOrderStats).where(CustomerOrderStats.customer_id.in_(ids))).scalars():
        member = facts[stats.customer_id]
        member.order_count, member.last_order_at, member.spend = stats.order_count, stats.last_order_at, stats.lifetime_spend
    for row in session.execute(select(PurchasePrediction.customer_id, PurchasePrediction.probability,
                                      PurchasePrediction.previous_probability)
                               .where(PurchasePrediction.customer_id.in_(ids))):
        facts[row.customer_id].probability, facts[row.customer_id].previous_probability = row[1], row[2]
    status = latest_status(ChannelIdentity.channel, ChannelIdentity.external_id).label("status")
    for row in session.execute(select(ChannelIdentity.customer_id, ChannelIdentity.channel,
                                      ChannelIdentity.unreachable_since, status)
                               .where(ChannelIdentity.customer_id.in_(ids)).order_by(ChannelIdentity.id)):
        facts[row.customer_id].channels.append((row.channel, row.unreachable_since is None))
        if row.status is not None:
            facts[row.customer_id].consents.append((row.channel, row.status))
    for row in session.execute(select(Feedback.customer_id, Feedback.kind, Feedback.score, Feedback.created_at)
                               .where(Feedback.customer_id.in_(ids)).order_by(Feedback.id)):
        facts[row.customer_id].last_scores[row.kind] = (row.score, row.created_at)  # the latest wins
    for customer_id, count in session.execute(
            select(Referral.advocate_id, func.count()).where(Referral.advocate_id.in_(ids), Referral.status != "rejected")
            .group_by(Referral.advocate_id)):
        facts[customer_id].referrals = count
    for customer_id, count in session.execute(
            select(Review.customer_id, func.count()).where(Review.customer_id.in_(ids)).group_by(Review.customer_id)):
        facts[customer_id].reviews = count
    answers: Dict[int, Dict[Tuple[str, str], List[str]]] = defaultdict(dict)
    for row in session.execute(select(QuizRun.customer_id, QuizRun.quiz_id, QuizRun.answers)
                               .where(QuizRun.customer_id.in_(ids)).order_by(QuizRun.id)):
        for question, options in (row.answers or {}).items():
            if options:
                answers[row.customer_id][(row.quiz_id, question)] = list(options)
    for customer_id, chosen in answers.items():
        facts[customer_id].quiz_answers = chosen
    return facts
