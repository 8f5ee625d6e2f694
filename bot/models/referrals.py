from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint

from bot.models.base import Base, Money, UTCDateTime

REFERRAL_STATUSES = ("joined", "review", "rewarded", "rejected")
REFERRAL_SOURCES = ("link", "discount_code", "referral_code", "telegram", "chat")


class ReferralCode(Base):
    """A customer's personal referral code: one per customer, the same on every channel."""

    __tablename__ = "referral_codes"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, unique=True)
    code = Column(String(16), nullable=False, unique=True)
    created_at = Column(UTCDateTime(), nullable=False)


class ReferralClick(Base):
    """A visit through /r/{code}. The IP is kept only as a keyed hash."""

    __tablename__ = "referral_clicks"
    __table_args__ = (Index("ix_referral_clicks_code_clicked", "referral_code_id", "clicked_at"),)

    id = Column(Integer, primary_key=True)
    referral_code_id = Column(Integer, ForeignKey("referral_codes.id", ondelete="CASCADE"), nullable=False)
    clicked_at = Column(UTCDateTime(), nullable=False)
    ip_hash = Column(String(64), nullable=True, index=True)
    user_agent = Column(String(255), nullable=True)


class Referral(Base):
    """A friend an advocate brought: from a click's discount code, a referral code on an order, a Telegram
    deep link or a code typed in chat. One advocate per friend (unique friend), whichever arrived first."""

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("friend_channel", "friend_sender_id", name="uq_referrals_friend_sender"),
        Index("ix_referrals_advocate_status", "advocate_id", "status"),
        Index("ix_referrals_ip_created", "ip_hash", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    referral_code_id = Column(Integer, ForeignKey("referral_codes.id", ondelete="CASCADE"), nullable=False)
    advocate_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    # The friend as a customer once known; a guest in chat is known by their sender until they link or order.
    friend_customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True, unique=True)
    friend_channel = Column(String(32), nullable=True)
    friend_sender_id = Column(String(255), nullable=True)
    source = Column(String(16), nullable=False)  # one of REFERRAL_SOURCES
    click_id = Column(Integer, ForeignKey("referral_clicks.id", ondelete="SET NULL"), nullable=True)
    ip_hash = Column(String(64), nullable=True)
    status = Column(String(16), nullable=False)  # one of REFERRAL_STATUSES
    reason = Column(String(255), nullable=False, default="")  # why the latest decision was made
    order_external_id = Column(String(64), nullable=True)  # the friend's first paid order
    points_awarded = Column(Integer, nullable=False, default=0)
    created_at = Column(UTCDateTime(), nullable=False)
    decided_at = Column(UTCDateTime(), nullable=True)


class ReferralDecision(Base):
    """Every decision about a referral, with its reason and who made it (the rules or a merchant)."""

    __tablename__ = "referral_decisions"

    id = Column(Integer, primary_key=True)
    referral_id = Column(Integer, ForeignKey("referrals.id", ondelete="CASCADE"), nullable=False, index=True)
    decision = Column(String(16), nullable=False)  # joined | held | rewarded | rejected | approved | ignored
    reason = Column(String(255), nullable=False)
    actor = Column(String(64), nullable=False)  # "rules" or "merchant:<name>"
    created_at = Column(UTCDateTime(), nullable=False)


class FriendOffer(Base):
    """The friend's discount code for a first order, issued for one click or one chat claim; used once."""

    __tablename__ = "friend_offers"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    referral_code_id = Column(Integer, ForeignKey("referral_codes.id", ondelete="CASCADE"), nullable=False, index=True)
    click_id = Column(Integer, ForeignKey("referral_clicks.id", ondelete="SET NULL"), nullable=True, unique=True)
    referral_id = Column(Integer, ForeignKey("referrals.id", ondelete="SET NULL"), nullable=True, index=True)
    percent_off = Column(Integer, nullable=False)
    min_order = Column(Money(), nullable=True)
    status = Column(String(16), nullable=False, default="issued")  # issued | used | cancelled
    issued_at = Column(UTCDateTime(), nullable=False)
    expires_at = Column(UTCDateTime(), nullable=False)
    used_at = Column(UTCDateTime(), nullable=True)
    used_order_ref = Column(String(64), nullable=True)
    used_by_customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True)
