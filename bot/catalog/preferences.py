"""What a shopper told us before, for their next search: the answers of their latest finished quiz and
their previous search in this conversation (bot.catalog.search.Preferences)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import List, Mapping, Optional, Set, Tuple

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.catalog.search import Preferences
from bot.models import ProductSearch, QuizRun
from bot.quiz.definition import Quiz

QUIZ_REMEMBERED_FOR = timedelta(days=180)  # tastes and budgets change; an old quiz no longer speaks for them
SEARCH_REMEMBERED_FOR = timedelta(hours=24)  # "and in green?" refers to today's search, not last month's


@dataclass(frozen=True)
class ShopperPreferences:
    preferences: Preferences
    # the quiz answers behind them, for the reply: exclusions ("no leather") and the budget ("up to $400")
    exclusions_said: Tuple[str, ...]
    budget_said: Tuple[str, ...]


def _latest_quiz(session: Session, channel: str, sender_id: str, customer_id: Optional[int],
                 now: datetime) -> Optional[QuizRun]:
    whose = (QuizRun.channel == channel) & (QuizRun.sender_id == sender_id)
    if customer_id is not None:
        whose = or_(whose, QuizRun.customer_id == customer_id)
    return session.execute(
        select(QuizRun).where(whose, QuizRun.status == "completed", QuizRun.completed_at >= now - QUIZ_REMEMBERED_FOR)
        .order_by(QuizRun.completed_at.desc(), QuizRun.id.desc()).limit(1)
    ).scalars().first()


def previous_search(session: Session, channel: str, sender_id: str, now: datetime) -> Optional[ProductSearch]:
    return session.execute(
        select(ProductSearch).where(
            ProductSearch.channel == channel, ProductSearch.sender_id == sender_id,
            ProductSearch.created_at >= now - SEARCH_REMEMBERED_FOR,
        ).order_by(ProductSearch.created_at.desc(), ProductSearch.id.desc()).limit(1)
    ).scalars().first()


def shopper_preferences(session: Session, channel: str, sender_id: str, customer_id: Optional[int],
                        quizzes: Mapping[str, Quiz], now: datetime) -> ShopperPreferences:
    max_prices: List[Decimal] = []
    min_prices: List[Decimal] = []
    liked: Set[str] = set()
    excluded: Set[str] = set()
    exclusions_said: List[str] = []
    budget_said: List[str] = []
    run = _latest_quiz(session, channel, sender_id, customer_id, now)
    quiz = quizzes.get(run.quiz_id) if run is not None else None
    if run is not None and quiz is not None:
        for question_id, option_ids in (run.answers or {}).items():
            question = quiz.question(question_id)
            if question is None:
                continue
            for option_id in option_ids:
                option = question.option(option_id)
                if option is None:
                    continue
                liked.update(tag for tag, weight in option.tag_weights.items() if weight > 0)
                rules = option.rules
                if rules.max_price is not None:
                    max_prices.append(rules.max_price)
                if rules.min_price is not None:
                    min_prices.append(rules.min_price)
                excluded.update(rules.exclude_tags)
                if rules.exclude_tags:
                    exclusions_said.append(option.reason)
                elif rules.has_price:
                    budget_said.append(option.reason)
    previous = previous_search(session, channel, sender_id, now)
    previous_type = (previous.criteria or {}).get("product_type") if previous is not None else None
    return ShopperPreferences(
        Preferences(
            max_price=max(max_prices) if max_prices else None,
            min_price=min(min_prices) if min_prices else None,
            liked_tags=frozenset(liked), excluded_tags=frozenset(excluded),
            product_type=previous_type if isinstance(previous_type, str) else None,
        ),
        tuple(dict.fromkeys(exclusions_said)),
        tuple(dict.fromkeys(budget_said)),
    )
