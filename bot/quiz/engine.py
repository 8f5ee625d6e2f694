"""The quiz engine: which question comes next, which products fit the answers and why — pure functions over
a Quiz and product records (the conversation keeps the answers: question id → chosen option ids, an empty
tuple for a skipped question). How it scores, ranks and relaxes: the README's "How the quiz scores"."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from bot.quiz.definition import END, Option, Question, Quiz
from bot.shared.amounts import BUDGET_STRETCH

MAX_REASON_PARTS = 3

AnswerValue = Union[str, Sequence[str], None]


@dataclass(frozen=True)
class ProductRecord:
    """What the engine needs of a product (the conversation builds these from bot.models.Product)."""

    sku: str
    title: str
    price: Decimal
    tags: FrozenSet[str]
    in_stock: bool = True
    url: str = ""
    image_url: Optional[str] = None


class AnswerError(ValueError):
    """An answer names a question or option the quiz does not have, or too many options."""

    def __init__(self, question_id: str, problem: str) -> None:
        self.question_id, self.problem = question_id, problem
        super().__init__(f"{question_id}: {problem}")


# ---------------------------------------------------------------------------------------------
# The path through the questions


@dataclass(frozen=True)
class QuizPath:
    asked: Tuple[str, ...]  # questions on the path so far, in order (answered or skipped)
    answers: Mapping[str, Tuple[str, ...]]  # their answers (() = skipped)
    next_question: Optional[str]  # the first question on the path without an answer; None: done
    ignored: Tuple[str, ...]  # answered questions off the path (an earlier answer changed the branch)

    @property
    def complete(self) -> bool:
        return self.next_question is None


def _chosen(question: Question, value: AnswerValue) -> Tuple[str, ...]:
    if value is None:
        return ()
    ids = (value,) if isinstance(value, str) else tuple(value)
    for option_id in ids:
        if question.option(option_id) is None:
            raise AnswerError(question.id, f"has no option {option_id!r}")
    if len(set(ids)) != len(ids):
        raise AnswerError(question.id, "the same option is chosen twice")
    if len(ids) > 1 and not question.multi:
        raise AnswerError(question.id, "takes one option")
    order = {option.id: position for position, option in enumerate(question.options)}
    return tuple(sorted(ids, key=order.__getitem__))


def walk(quiz: Quiz, answers: Mapping[str, AnswerValue]) -> QuizPath:
    """Follow the branches from the start question through the given answers."""
    normalized: Dict[str, Tuple[str, ...]] = {}
    for question_id, value in answers.items():
        question = quiz.question(question_id)
        if question is None:
            raise AnswerError(question_id, f"is not a question of quiz {quiz.id!r}")
        normalized[question_id] = _chosen(question, value)
    asked: List[str] = []
    current: Optional[str] = quiz.start
    while current is not None and current != END:
        if current not in normalized:
            break
        asked.append(current)
        current = quiz.question_by_id[current].next_after(normalized[current])
    next_question = None if current == END else current
    on_path = set(asked)
    return QuizPath(
        asked=tuple(asked),
        answers={question_id: normalized[question_id] for question_id in asked},
        next_question=next_question,
        ignored=tuple(question_id for question_id in normalized if question_id not in on_path),
    )


# ---------------------------------------------------------------------------------------------
# Products


class ProductIndex:
    """The in-stock products of one catalog snapshot, ready for scoring. Build it once and reuse it."""

    def __init__(self, products: Iterable[ProductRecord]) -> None:
        all_products = list(products)
        records = sorted((p for p in all_products if p.in_stock), key=lambda p: (p.price, p.sku))
        self.out_of_stock = len(all_products) - len(records)
        self.products: Tuple[ProductRecord, ...] = tuple(records)
        self.prices = np.fromiter((float(p.price) for p in records), dtype=np.float64, count=len(records))
        self.position: Dict[str, int] = {}
        postings: Dict[str, List[int]] = {}
        for position, product in enumerate(records):
            if product.sku in self.position:
                raise ValueError(f"SKU {product.sku!r} appears twice")
            self.position[product.sku] = position
            for tag in set(product.tags):
                postings.setdefault(tag, []).append(position)
        self.postings: Dict[str, np.ndarray] = {tag: np.array(rows, dtype=np.intp) for tag, rows in postings.items()}

    def __len__(self) -> int:
        return len(self.products)

    def tagged(self, tags: Iterable[str]) -> np.ndarray:
        """A mask of the products carrying at least one of the tags."""
        mask = np.zeros(len(self.products), dtype=bool)
        for tag in tags:
            rows = self.postings.get(tag)
            if rows is not None:
                mask[rows] = True
        return mask


# ---------------------------------------------------------------------------------------------
# Recommending


@dataclass(frozen=True)
class Recommendation:
    product: ProductRecord
    score: int
    reasons: Tuple[str, ...]  # the answers that count for this product, strongest first

    @property
    def reason(self) -> str:
        if not self.reasons:
            return "the closest match to your answers"
        return "because you said: " + ", ".join(self.reasons)


@dataclass(frozen=True)
class Result:
    quiz_id: str
    path: QuizPath
    recommendations: Tuple[Recommendation, ...]
    relaxed: Tuple[str, ...]  # which filters were loosened to find these: budget, required, preferences, excluded
    note: Optional[str]  # one line saying so, for the shopper; None when everything matched
    considered: int  # in-stock products scored


@dataclass
class _Filters:
    max_price: Optional[float] = None
    min_price: Optional[float] = None
    price_reasons: Tuple[str, ...] = ()
    exclude: FrozenSet[str] = frozenset()
    exclude_reasons: Tuple[str, ...] = ()
    require: Tuple[FrozenSet[str], ...] = ()  # each: at least one of these tags
    require_reasons: Tuple[str, ...] = ()


def _filters(chosen: Sequence[Tuple[Question, Tuple[Option, ...]]]) -> _Filters:
    """The options of one question are alternatives (either will do); questions all apply."""
    result = _Filters()
    max_prices: List[float] = []
    min_prices: List[float] = []
    price_reasons: List[str] = []
    exclude: set = set()
    exclude_reasons: List[str] = []
    require: List[FrozenSet[str]] = []
    require_reasons: List[str] = []
    for _question, options in chosen:
        if not options:
            continue
        if all(option.rules.has_price for option in options):
            if all(option.rules.max_price is not None for option in options):
                max_prices.append(max(float(option.rules.max_price) for option in options))
            min_prices.append(min(float(option.rules.min_price or 0) for option in options))
            price_reasons.extend(option.reason for option in options)
        if all(option.rules.require_tags for option in options):
            require.append(frozenset().union(*(option.rules.require_tags for option in options)))
            require_reasons.extend(option.reason for option in options)
        for option in options:
            if option.rules.exclude_tags:
                exclude |= option.rules.exclude_tags
                exclude_reasons.append(option.reason)
    result.max_price = min(max_prices) if max_prices else None
    result.min_price = max(min_prices) if min_prices and max(min_prices) > 0 else None
    result.price_reasons = tuple(price_reasons) if (result.max_price is not None or result.min_price) else ()
    result.exclude, result.exclude_reasons = frozenset(exclude), tuple(exclude_reasons)
    result.require, result.require_reasons = tuple(require), tuple(require_reasons)
    return result


def _mask(index: ProductIndex, filters: _Filters, budget: Optional[float], required: bool,
          excluded: bool) -> np.ndarray:
    """budget: None = ignore the price range, else the factor it is stretched by (1.0 = as asked)."""
    mask = np.ones(len(index), dtype=bool)
    if budget is not None:
        if filters.max_price is not None:
            mask &= index.prices <= filters.max_price * budget
        if filters.min_price is not None:
            mask &= index.prices >= filters.min_price / budget
    if excluded and filters.exclude:
        mask &= ~index.tagged(filters.exclude)
    if required:
        for group in filters.require:
            mask &= index.tagged(group)
    return mask


def _said(reasons: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(reasons))


# (what is relaxed, budget factor or None = no budget, keep required tags, keep the score > 0 rule, keep excluded tags)
RELAXATIONS: Tuple[Tuple[Tuple[str, ...], Optional[float], bool, bool, bool], ...] = (
    (("budget",), BUDGET_STRETCH, True, True, True),
    (("budget",), None, True, True, True),
    (("required",), 1.0, False, True, True),
    (("budget", "required"), None, False, True, True),
    (("preferences",), 1.0, True, False, True),
)


def _note(relaxed: Tuple[str, ...], factor: Optional[float], filters: _Filters) -> str:
    parts = []
    if "budget" in relaxed:
        outside = "a little outside" if factor is not None else "outside"
        parts.append(f"{outside} your budget ({_said(filters.price_reasons)})")
    if "required" in relaxed:
        parts.append(f"not only {_said(filters.require_reasons)}")
    if "preferences" in relaxed:
        parts.append("a looser match for your preferences")
    if "excluded" in relaxed:
        parts.append(f"including what you ruled out ({_said(filters.exclude_reasons)})")
    return "Nothing matched all your answers, so here are the closest: " + " and ".join(parts) + "."


def _satisfies(product: ProductRecord, option: Option) -> bool:
    rules = option.rules
    price = product.price
    if rules.max_price is not None and price > rules.max_price:
        return False
    if rules.min_price is not None and price < rules.min_price:
        return False
    if rules.exclude_tags and rules.exclude_tags & product.tags:
        return False
    if rules.require_tags and not rules.require_tags & product.tags:
        return False
    return True


def _reasons(product: ProductRecord, chosen: Sequence[Tuple[Question, Tuple[Option, ...]]]) -> Tuple[str, ...]:
    """The answers that count for this product: positive weights (strongest first), then the rules it meets."""
    weighted: List[Tuple[int, int, str]] = []
    ruled: List[Tuple[int, int, str]] = []  # budget first, then required kinds, then exclusions
    order = 0
    for _question, options in chosen:
        for option in options:
            order += 1
            contribution = option.product_weights.get(product.sku, 0)
            if option.tag_weights:
                contribution += sum(option.tag_weights.get(tag, 0) for tag in product.tags)
            if contribution > 0:
                weighted.append((-contribution, order, option.reason))
            elif option.rules and contribution == 0 and _satisfies(product, option):
                rules = option.rules
                ruled.append((0 if rules.has_price else 1 if rules.require_tags else 2, order, option.reason))
    weighted.sort()
    ruled.sort()
    strong = [reason for _, _, reason in weighted]
    met = [reason for _, _, reason in ruled]
    picked = strong[:MAX_REASON_PARTS - 1] + met[:1]
    for reason in strong[MAX_REASON_PARTS - 1:] + met[1:]:
        if len(picked) >= MAX_REASON_PARTS:
            break
        picked.append(reason)
    picked = picked[:MAX_REASON_PARTS]
    # weights first, then rules, as chosen above; no phrase twice
    return tuple(dict.fromkeys(picked))


def recommend(quiz: Quiz, answers: Mapping[str, AnswerValue], products: Union[ProductIndex, Iterable[ProductRecord]],
              limit: Optional[int] = None, relax_excluded: bool = False) -> Result:
    """The top products (quiz.results by default) for the answers on the path, with a reason each."""
    index = products if isinstance(products, ProductIndex) else ProductIndex(products)
    limit = quiz.results if limit is None else limit
    path = walk(quiz, answers)
    chosen: List[Tuple[Question, Tuple[Option, ...]]] = []
    tag_weights: Dict[str, int] = {}
    product_weights: Dict[str, int] = {}
    for question_id in path.asked:
        question = quiz.question_by_id[question_id]
        options = tuple(question.option_by_id[option_id] for option_id in path.answers[question_id])
        chosen.append((question, options))
        for option in options:
            for tag, weight in option.tag_weights.items():
                tag_weights[tag] = tag_weights.get(tag, 0) + weight
            for sku, weight in option.product_weights.items():
                product_weights[sku] = product_weights.get(sku, 0) + weight

    scores = np.zeros(len(index), dtype=np.int64)
    for tag, weight in tag_weights.items():
        rows = index.postings.get(tag)
        if rows is not None and weight:
            scores[rows] += weight
    for sku, weight in product_weights.items():
        row = index.position.get(sku)
        if row is not None:
            scores[row] += weight
    wants_positive = any(weight > 0 for weight in tag_weights.values()) or any(
        weight > 0 for weight in product_weights.values())
    positive = scores > 0 if wants_positive else None

    filters = _filters(chosen)
    has_budget = filters.max_price is not None or filters.min_price is not None
    steps: List[Tuple[Tuple[str, ...], Optional[float], bool, bool, bool]] = [((), 1.0, True, True, True)]
    for step in RELAXATIONS:
        relaxed = step[0]
        if "budget" in relaxed and not has_budget:
            continue
        if "required" in relaxed and not filters.require:
            continue
        if "preferences" in relaxed and positive is None:
            continue
        steps.append(step)
    if relax_excluded and filters.exclude:
        steps.append((("excluded",), 1.0, True, True, False))
        steps.append((("budget", "required", "preferences", "excluded"), None, False, False, False))

    candidates = np.zeros(0, dtype=np.intp)
    relaxed: Tuple[str, ...] = ()
    factor: Optional[float] = 1.0
    for relaxed, factor, keep_required, keep_positive, keep_excluded in steps:
        mask = _mask(index, filters, factor, keep_required, keep_excluded)
        if keep_positive and positive is not None:
            mask &= positive
        candidates = np.flatnonzero(mask)
        if candidates.size:
            break
    if not candidates.size:
        relaxed = ()
    # Positions are in (price, sku) order, so a stable sort by score breaks ties deterministically.
    top = candidates[np.argsort(-scores[candidates], kind="stable")[:limit]] if limit > 0 else candidates[:0]
    recommendations = tuple(
        Recommendation(index.products[row], int(scores[row]), _reasons(index.products[row], chosen)) for row in top
    )
    return Result(
        quiz_id=quiz.id, path=path, recommendations=recommendations, relaxed=relaxed,
        note=_note(relaxed, factor, filters) if relaxed and recommendations else None, considered=len(index),
    )
