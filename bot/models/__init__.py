"""SQLAlchemy models of the loyalty store, one module per domain."""
from bot.models.audit import AuditEvent
from bot.models.base import Base
from bot.models.campaigns import Campaign, CampaignRecipient, CampaignResponse
from bot.models.catalog import Product, ProductVariant
from bot.models.consent import MessageConsent
from bot.models.content import ContentSubmission, SocialFollowClaim
from bot.models.customers import ChannelIdentity, Customer
from bot.models.events import OutboundMessage, TierChange
from bot.models.feedback import Feedback, FeedbackNote, FeedbackTopic, Transcript
from bot.models.handoff import HandoffMessage, HandoffRequest
from bot.models.integrations import StoreEvent, StoreOrderRef
from bot.models.ledger import LedgerEntry
from bot.models.linking import LinkAttempt, LinkCode
from bot.models.merchants import ConsoleSession, LoginAttempt, Merchant
from bot.models.orders import Order, OrderLine, OrderRefund
from bot.models.predictions import PredictionRun, PurchasePrediction
from bot.models.quiz import ProductSearch, QuizRun
from bot.models.referrals import FriendOffer, Referral, ReferralClick, ReferralCode, ReferralDecision
from bot.models.reviews import Review, ReviewRequest
from bot.models.rewards import RewardCode
from bot.models.segments import CustomerOrderStats, SavedSegment

__all__ = [
    "AuditEvent", "Base", "Campaign", "CampaignRecipient", "CampaignResponse", "ChannelIdentity", "ConsoleSession", "ContentSubmission", "Customer", "CustomerOrderStats", "Feedback", "FeedbackNote",
    "FeedbackTopic", "FriendOffer", "HandoffMessage", "HandoffRequest", "LedgerEntry", "LinkAttempt", "LinkCode", "LoginAttempt",
    "Merchant", "MessageConsent", "Order", "OrderLine", "OrderRefund", "OutboundMessage", "PredictionRun", "Product", "ProductSearch",
    "ProductVariant", "PurchasePrediction", "QuizRun", "Referral", "ReferralClick", "ReferralCode", "ReferralDecision", "Review",
    "ReviewRequest", "RewardCode", "SavedSegment", "SocialFollowClaim", "StoreEvent", "StoreOrderRef", "TierChange", "Transcript",
]
