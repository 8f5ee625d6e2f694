"""Campaigns (bot/campaigns/): a message or a one-question poll sent to an audience through the outbox, the
audience's split into messaged and holdout, and what each customer answered or tapped."""
from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from bot.models.base import Base, UTCDateTime

CAMPAIGN_KINDS = ("message", "poll")
CAMPAIGN_STATUSES = ("draft", "sent")
# A member of a sent campaign's audience: given a message, held out (not messaged, the comparison group) or
# skipped (the outbox's rules said no before anything was queued: unsubscribed, frequency cap).
RECIPIENT_GROUPS = ("messaged", "holdout", "skipped")


class Campaign(Base):
    __tablename__ = "campaigns"

    id = Column(Integer, primary_key=True)
    name = Column(String(120), nullable=False)
    kind = Column(String(16), nullable=False)  # CAMPAIGN_KINDS
    # The text with personal fields ({first_name}, {tier}, {balance}, {expiring_points}, {expiry_date}); a
    # poll's question.
    text = Column(Text, nullable=False)
    # A message's buttons: [{"title", "action"}] (action one of bot.campaigns.service.BUTTON_ACTIONS); a poll's
    # options: [{"title"}], answered by position (1-based).
    buttons = Column(JSON, nullable=False)
    bonus_points = Column(Integer, nullable=False, default=0)  # credited once per customer who acts; 0 = none
    # Who it is for: {"customer_ids": [...]} or {"segment": "<ref>"}; resolved when sent (and at each dry run).
    audience = Column(JSON, nullable=False)
    holdout_percent = Column(Integer, nullable=False)  # the program's share when the campaign was made
    status = Column(String(16), nullable=False, default="draft")  # CAMPAIGN_STATUSES
    created_by = Column(String(120), nullable=True)
    created_at = Column(UTCDateTime(), nullable=False)
    sent_at = Column(UTCDateTime(), nullable=True)


class CampaignRecipient(Base):
    """One audience member of a sent campaign: which group, and the outbox message when messaged."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "customer_id", name="uq_campaign_recipients_customer"),
                      Index("ix_campaign_recipients_customer", "customer_id"))

    id = Column(Integer, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    group = Column(String(16), nullable=False)  # RECIPIENT_GROUPS
    message_id = Column(Integer, ForeignKey("outbound_messages.id", ondelete="SET NULL"), nullable=True)
    reason = Column(String(255), nullable=True)  # why skipped
    created_at = Column(UTCDateTime(), nullable=False)


class CampaignResponse(Base):
    """What one customer did with a campaign: a poll answer (the option, and the words when typed) or a
    button tapped; the bonus entry when the campaign's bonus was credited. One row per (campaign, customer):
    a later answer replaces the option, the bonus stays the first one."""

    __tablename__ = "campaign_responses"
    __table_args__ = (UniqueConstraint("campaign_id", "customer_id", name="uq_campaign_responses_customer"),)

    id = Column(Integer, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    option = Column(Integer, nullable=True)  # 1-based: the poll option or the button tapped
    typed = Column(String(255), nullable=True)  # the shopper's own words, when the answer was typed
    channel = Column(String(32), nullable=True)
    bonus_entry_id = Column(Integer, ForeignKey("ledger_entries.id", ondelete="SET NULL"), nullable=True)
    created_at = Column(UTCDateTime(), nullable=False)
    updated_at = Column(UTCDateTime(), nullable=False)
