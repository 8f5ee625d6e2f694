"""Repeat-purchase predictions (bot/prediction/): each refit, and every customer's latest probability."""
from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Text

from bot.models.base import Base, UTCDateTime


class PredictionRun(Base):
    """One fit of the model and the scores it wrote: when, as of when, which model, how it went."""

    __tablename__ = "prediction_runs"

    id = Column(Integer, primary_key=True)
    model_version = Column(String(64), nullable=False)
    as_of = Column(UTCDateTime(), nullable=False)  # only orders before this were read
    horizon_days = Column(Integer, nullable=False)
    customers_scored = Column(Integer, nullable=False, default=0)
    details = Column(JSON, nullable=False, default=dict)  # fitted parameters, training rows, timings
    started_at = Column(UTCDateTime(), nullable=False)
    finished_at = Column(UTCDateTime(), nullable=True)


class PurchasePrediction(Base):
    """A customer's latest probability of at least one order within `horizon_days` of `as_of`, why, and
    what the run before said (so a falling probability can be seen)."""

    __tablename__ = "purchase_predictions"
    __table_args__ = (
        Index("ix_purchase_predictions_probability", "probability"),
        Index("ix_purchase_predictions_previous_probability", "previous_probability"),  # segments: falling
    )

    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    run_id = Column(Integer, ForeignKey("prediction_runs.id", ondelete="CASCADE"), nullable=False, index=True)
    probability = Column(Float, nullable=False)
    previous_probability = Column(Float, nullable=True)
    reasons = Column(Text, nullable=False)
    model_version = Column(String(64), nullable=False)
    as_of = Column(UTCDateTime(), nullable=False)
    horizon_days = Column(Integer, nullable=False)
    computed_at = Column(UTCDateTime(), nullable=False)
