"""What a sent campaign did, against its holdout: per group (messaged, holdout) the members, and for the messaged
the outbox's states (sent, delivered, skipped with reasons), replies; for both groups who redeemed a reward and
who ordered within the program's attribution window after the send (the next order after the send counts,
once per customer), and the lift: the messaged group's order rate minus the holdout's. A poll's answers per
option, per option within each tier, and per option among the members of segments the merchant picks."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Tuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns.service import CampaignError, get_campaign
from bot.loyalty.program import Program
from bot.models import CampaignRecipient, CampaignResponse, Customer, Order, OutboundMessage, RewardCode
from bot.segments.service import UnknownSegment, member_ids
from bot.segments.service import find as find_segment

KEPT_ORDER_STATUSES = ("paid", "partially_refunded")  # a refunded or cancelled order is not a sale
MAX_SEGMENTS = 10  # segments compared at once: each costs a membership count and two grouped reads


@dataclass(frozen=True)
class GroupResult:
    members: int
    redeemed: int  # issued a reward code in the window
    ordered: int  # placed a kept order in the window
    revenue: Decimal  # the total of each one's next order in the window

    @property
    def order_rate(self) -> Optional[float]:
        return self.ordered / self.members if self.members else None


@dataclass(frozen=True)
class SegmentAnswers:
    """A poll's answers among one segment's members (who is a member now): the segment's size, how many of
    them the campaign messaged and how many answered, and the answers per option in the options' order."""

    ref: str
    name: str
    members: int
    messaged: int
    answered: int
    counts: List[int]

    @property
    def shares(self) -> List[Optional[float]]:
        """Each option's share of the segment's answers (None while nobody in it answered)."""
        return [count / self.answered if self.answered else None for count in self.counts]


@dataclass(frozen=True)
class CampaignResults:
    campaign_id: int
    name: str
    kind: str
    sent_at: datetime
    window_days: int
    messaged: GroupResult
    holdout: GroupResult
    states: Dict[str, int]  # the messaged group's outbox states
    skipped_reasons: Dict[str, int]
    replied: int
    options: List[Tuple[str, int]] = field(default_factory=list)  # a poll: (title, answers)
    options_by_tier: Dict[str, List[int]] = field(default_factory=dict)  # tier → answers per option
    options_by_segment: List[SegmentAnswers] = field(default_factory=list)  # the segments asked for, in order

    @property
    def sent(self) -> int:
        return sum(self.states.get(state, 0) for state in ("sent", "delivered"))

    @property
    def delivered(self) -> int:
        return self.states.get("delivered", 0)

    @property
    def lift(self) -> Optional[float]:
        """Order rate of the messaged minus the holdout's, in percentage points (None without both groups)."""
        if self.messaged.order_rate is None or self.holdout.order_rate is None:
            return None
        return 100 * (self.messaged.order_rate - self.holdout.order_rate)


def campaign_results(session: Session, program: Program, campaign_id: int, now: datetime,
                     segments: Sequence[str] = ()) -> CampaignResults:
    """The campaign's results at `now`; for a poll with `segments` (built-in keys, saved ids or names), its
    answers among each segment's members too. CampaignError for an unsent campaign, an unknown segment, or
    segments asked of a message campaign."""
    campaign = get_campaign(session, campaign_id)
    if campaign.sent_at is None:
        raise CampaignError(f"campaign {campaign_id} has not been sent")
    refs = list(dict.fromkeys(str(ref).strip() for ref in segments if str(ref).strip()))
    if refs and campaign.kind != "poll":
        raise CampaignError("answers per segment are a poll's: this campaign is a message")
    if len(refs) > MAX_SEGMENTS:
        raise CampaignError(f"compare at most {MAX_SEGMENTS} segments at once")
    window = program.campaigns.attribution_days
    start, end = campaign.sent_at, min(now, campaign.sent_at + timedelta(days=window))
    groups = {group: _group(session, campaign.id, group, start, end) for group in ("messaged", "holdout")}
    states = dict(session.execute(
        select(OutboundMessage.status, func.count())
        .join(CampaignRecipient, CampaignRecipient.message_id == OutboundMessage.id)
        .where(CampaignRecipient.campaign_id == campaign.id).group_by(OutboundMessage.status)).all())
    reasons = dict(session.execute(
        select(OutboundMessage.reason, func.count())
        .join(CampaignRecipient, CampaignRecipient.message_id == OutboundMessage.id)
        .where(CampaignRecipient.campaign_id == campaign.id, OutboundMessage.status == "skipped")
        .group_by(OutboundMessage.reason)).all())
    replied = session.execute(select(func.count()).select_from(CampaignResponse)
                              .where(CampaignResponse.campaign_id == campaign.id)).scalar_one()
    options: List[Tuple[str, int]] = []
    by_tier: Dict[str, List[int]] = {}
    if campaign.kind == "poll":
        titles = [option["title"] for option in campaign.buttons]
        counts = [0] * len(titles)
        for option, tier, answers in session.execute(
            select(CampaignResponse.option, Customer.tier_name, func.count())
            .join(Customer, Customer.id == CampaignResponse.customer_id)
            .where(CampaignResponse.campaign_id == campaign.id, CampaignResponse.option.is_not(None))
            .group_by(CampaignResponse.option, Customer.tier_name)
        ).all():
            if not 1 <= option <= len(titles):
                continue
            counts[option - 1] += answers
            row = by_tier.setdefault(tier or _base_tier(program), [0] * len(titles))
            row[option - 1] += answers
        options = list(zip(titles, counts))
    by_segment = [_segment_answers(session, program, campaign.id, ref, len(options), now) for ref in refs]
    return CampaignResults(campaign.id, campaign.name, campaign.kind, campaign.sent_at, window, groups["messaged"],
                           groups["holdout"], states, {reason or "-": count for reason, count in reasons.items()},
                           replied, options, by_tier, by_segment)


def _segment_answers(session: Session, program: Program, campaign_id: int, ref: str, options: int,
                     now: datetime) -> SegmentAnswers:
    """The poll's answers among the members (at `now`) of the segment `ref` names."""
    try:
        segment = find_segment(session, ref, program=program)
    except UnknownSegment as error:
        raise CampaignError(str(error)) from None
    members = member_ids(session, segment.filter, now=now, program=program)
    size = session.execute(select(func.count()).select_from(members.subquery())).scalar_one()
    messaged = session.execute(select(func.count()).select_from(CampaignRecipient).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.group == "messaged",
        CampaignRecipient.customer_id.in_(members))).scalar_one()
    counts = [0] * options
    for option, answers in session.execute(
        select(CampaignResponse.option, func.count())
        .where(CampaignResponse.campaign_id == campaign_id, CampaignResponse.option.is_not(None),
               CampaignResponse.customer_id.in_(members))
        .group_by(CampaignResponse.option)
    ).all():
        if 1 <= option <= options:
            counts[option - 1] += answers
    return SegmentAnswers(segment.ref, segment.name, int(size), int(messaged), sum(counts), counts)


def _base_tier(program: Program) -> str:
    return program.tiers[0].name if program.tiers else "-"


def _group(session: Session, campaign_id: int, group: str, start: datetime, end: datetime) -> GroupResult:
    members = select(CampaignRecipient.customer_id).where(CampaignRecipient.campaign_id == campaign_id,
                                                          CampaignRecipient.group == group)
    count = session.execute(select(func.count()).select_from(members.subquery())).scalar_one()
    redeemed = session.execute(
        select(func.count(func.distinct(RewardCode.customer_id)))
        .where(RewardCode.customer_id.in_(members), RewardCode.issued_at > start, RewardCode.issued_at <= end)
    ).scalar_one()
    # Each member's next kept order after the send (the first one inside the window).
    first_at = (select(Order.customer_id, func.min(Order.placed_at).label("placed_at"))
                .where(Order.customer_id.in_(members), Order.status.in_(KEPT_ORDER_STATUSES),
                       Order.placed_at > start, Order.placed_at <= end)
                .group_by(Order.customer_id).subquery())
    rows = session.execute(
        select(Order.customer_id, func.min(Order.total))
        .join(first_at, (first_at.c.customer_id == Order.customer_id) & (first_at.c.placed_at == Order.placed_at))
        .where(Order.status.in_(KEPT_ORDER_STATUSES))
        .group_by(Order.customer_id)
    ).all()
    revenue = sum((Decimal(total) for _, total in rows), Decimal(0))
    return GroupResult(int(count), int(redeemed), len(rows), revenue)
