"""Product reviews left in chat: what a shopper can review, checking what they wrote, storing it for the
merchant's approval, and the points an approval pays (by media kind, never by rating).

One review per product per shopper: per customer, or per chat (channel + sender) for a guest. Reviews are
about catalog products: an order line for a variant (OE-LT-002-SND) is a review of its product (OE-LT-002).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.advocacy.content import SubmittedMedia
from bot.advocacy.moderation import ModerationResult, moderate, reason_sentence
from bot.catalog import slugify
from bot.identity import identity_channel
from bot.loyalty.earning import Credit, credit_for
from bot.loyalty.program import Program
from bot.models import Order, OrderLine, Product, ProductVariant, Review
from bot.shared.text import normalize, singular

REVIEW_MAX_CHARS = 2000
REVIEW_MIN_CHARS = 2
MAX_SKU_CHARS = 64  # Review.product_sku
MAX_TITLE_CHARS = 255  # Review.product_title
# Orders whose products were bought and kept (a partial refund may be for another line or a discount).
PURCHASED_STATUSES = ("paid", "partially_refunded")
MAX_LINES_SCANNED = 500  # a customer's most recent order lines looked at for reviewable products
MAX_MATCH_TEXT = 500  # match_product reads at most this much of a message
MAX_MATCH_CANDIDATES = 500
_IN_CHUNK = 500  # values per SQL IN list


@dataclass(frozen=True)
class ReviewableProduct:
    sku: str
    title: str
    order_external_id: Optional[str] = None


class ReviewError(ValueError):
    """What is wrong with a review, in words safe to show the shopper."""


# ---------------------------------------------------------------------------------------------
# Which product


def reviewable_products(session: Session, customer_id: int, limit: int = 5) -> List[ReviewableProduct]:
    """Products from the customer's kept orders, newest order first, each once, minus those they reviewed."""
    rows = session.execute(
        select(OrderLine.sku, OrderLine.title, Order.external_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.customer_id == customer_id,
            Order.status.in_(PURCHASED_STATUSES),
            OrderLine.sku.isnot(None),
            OrderLine.sku != "",
        )
        .order_by(Order.placed_at.desc(), Order.id.desc(), OrderLine.id)
        .limit(MAX_LINES_SCANNED)
    ).all()
    lines = [(sku, title, external_id) for sku, title, external_id in rows]
    products = resolve_products(lines, catalog_products(session, {sku for sku, _, _ in lines}))
    reviewed = reviewed_skus(session, [customer_id], [product.sku for product in products])
    return [product for product in products if (customer_id, product.sku) not in reviewed][:max(limit, 0)]


def resolve_products(
    lines: Iterable[Tuple[str, str, Optional[str]]], catalog: Mapping[str, Tuple[str, str]]
) -> List[ReviewableProduct]:
    """Order lines (sku, title, order external id) as the products they are, in order, each product once.

    A line's SKU may be a product's or one of its variants' (see catalog_products); the catalog's title wins
    over the line's, which is kept for a product that has left the catalog."""
    products: Dict[str, ReviewableProduct] = {}
    for sku, title, order_external_id in lines:
        product_sku, product_title = catalog.get(sku, (sku, title))
        if product_sku not in products:
            products[product_sku] = ReviewableProduct(product_sku, product_title, order_external_id)
    return list(products.values())


def catalog_products(session: Session, skus: Set[str]) -> Dict[str, Tuple[str, str]]:
    """Product or variant SKU → (product SKU, product title), for those in the catalog."""
    found: Dict[str, Tuple[str, str]] = {}
    for chunk in _chunks(sorted(sku for sku in skus if sku)):
        for variant_sku, sku, title in session.execute(
            select(ProductVariant.sku, Product.sku, Product.title)
            .join(Product, Product.id == ProductVariant.product_id)
            .where(ProductVariant.sku.in_(chunk))
        ):
            found[variant_sku] = (sku, title)
        for sku, title in session.execute(select(Product.sku, Product.title).where(Product.sku.in_(chunk))):
            found[sku] = (sku, title)
    return found


def reviewed_skus(session: Session, customer_ids: Iterable[int], skus: Iterable[str]) -> Set[Tuple[int, str]]:
    """(customer id, product SKU) pairs among these that have a review, whatever its status."""
    customers, wanted = sorted(set(customer_ids)), sorted(set(skus))
    found: Set[Tuple[int, str]] = set()
    if not customers or not wanted:
        return found
    for chunk in _chunks(wanted):
        found.update((customer_id, sku) for customer_id, sku in session.execute(
            select(Review.customer_id, Review.product_sku)
            .where(Review.customer_id.in_(customers), Review.product_sku.in_(chunk))
        ))
    return found


def find_product(session: Session, sku: str) -> Optional[ReviewableProduct]:
    """The catalog product with this product or variant SKU."""
    sku = (sku or "").strip()
    found = catalog_products(session, {sku}).get(sku) if sku else None
    return ReviewableProduct(*found) if found else None


def match_product(session: Session, text: str) -> Optional[ReviewableProduct]:
    """The catalog product a shopper named in free text ("the pebble lamp", "OE-LT-002", a handle), or None
    when nothing matches or two products match equally well."""
    text = (text or "")[:MAX_MATCH_TEXT]
    by_code = _products_by_code(session, text)
    if by_code:
        return by_code[0] if len(by_code) == 1 else None
    words = _title_words(text)
    if not words:
        return None
    # The database narrows the catalog to titles sharing a word stem; scoring happens here.
    candidates = session.execute(
        select(Product.sku, Product.title)
        .where(or_(*(func.lower(Product.title).contains(word[:5], autoescape=True) for word in sorted(words))))
        .order_by(Product.sku)
        .limit(MAX_MATCH_CANDIDATES)
    ).all()
    scored = []
    for sku, title in candidates:
        title_words = _title_words(title)
        matched = len(title_words & words)
        # Most of what the shopper named must be in the title: "the unicorn saddle" is not the saddle leather
        # chair. Then more title words named wins; on a tie, a title named in full ("pebble lamp" over
        # "pebble lamp shade").
        if matched * 2 > len(words):
            scored.append(((matched, title_words <= words), ReviewableProduct(sku, title)))
    if not scored:
        return None
    scored.sort(key=lambda pair: pair[0], reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None
    return scored[0][1]


def already_reviewed(session: Session, customer_id: Optional[int], channel: str, sender_id: str, sku: str) -> bool:
    """Whether this shopper (the customer, or this chat for a guest) has a review of the product."""
    return _existing_review(session, customer_id, identity_channel(channel), sender_id, sku) is not None


# ---------------------------------------------------------------------------------------------
# What the shopper wrote

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_STARS = "★⭐🌟"
_RATING_NUMBER = r"(\d+|one|two|three|four|five)"
# "4", "four", "4 stars", "4/5", "4 out of 5", "4 of five", "rating: 4" — the whole answer.
_RATING_ALONE = re.compile(
    rf"^(?:i(?:'d)? (?:give|rate) it |rating:? |rate:? )?{_RATING_NUMBER}"
    r"(?: ?(?:stars?|/ ?5|out of (?:5|five)|of (?:5|five)))?(?: stars?)?[ .!]*$"
)
# "… 4 stars …", "… 4/5 …" inside a longer answer.
_RATING_IN_TEXT = re.compile(rf"(?<![\d.,])\b{_RATING_NUMBER} ?(?:stars?\b|/ ?5\b|out of (?:5|five)\b)")


def parse_rating(text: str) -> Optional[int]:
    """A 1-5 star rating from what the shopper typed, or None (0, 6, "10", "4/10", two different ratings)."""
    text = (text or "").strip()[:200]
    if text and all(char in _STARS + "☆ \ufe0f" for char in text):
        stars = sum(text.count(star) for star in _STARS)
        return stars if 1 <= stars <= 5 else None
    lowered = " ".join(text.lower().replace("’", "'").split())
    alone = _RATING_ALONE.match(lowered)
    values = [alone.group(1)] if alone else _RATING_IN_TEXT.findall(lowered)
    ratings = {_NUMBER_WORDS.get(value) or (int(value) if value.isdigit() else 0) for value in values}
    if len(ratings) != 1:
        return None
    rating = ratings.pop()
    return rating if 1 <= rating <= 5 else None


def check_review_text(text: str) -> str:
    """The review as it will be stored: control characters removed (PostgreSQL refuses NUL), ends stripped.
    ReviewError says what is wrong otherwise."""
    cleaned = "".join(
        char for char in (text or "") if char in "\n\t" or unicodedata.category(char) != "Cc"
    ).strip()
    if not any(not char.isspace() and unicodedata.category(char) != "Cf" for char in cleaned):  # zero-width only
        raise ReviewError("Your review is empty — tell us in a few words what you think of it.")
    if len(cleaned) < REVIEW_MIN_CHARS:
        raise ReviewError(f"A review needs at least {REVIEW_MIN_CHARS} characters — tell us a little more.")
    if len(cleaned) > REVIEW_MAX_CHARS:
        raise ReviewError(
            f"A review can be at most {REVIEW_MAX_CHARS:,} characters — yours has {len(cleaned):,}."
        )
    return cleaned


def check_rating(rating: object) -> int:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ReviewError("A rating is a whole number of stars from 1 to 5.")
    return rating


# ---------------------------------------------------------------------------------------------
# Submitting and moderating


@dataclass(frozen=True)
class ReviewDraft:
    channel: str
    sender_id: str
    customer_id: Optional[int]
    product: ReviewableProduct
    rating: int
    text: str
    media: Optional[SubmittedMedia] = None


def submit_review(session: Session, draft: ReviewDraft, now: datetime) -> Tuple[Review, bool]:
    """Store the review for the merchant's approval; (review, created). A second review of the same product
    by the same shopper returns the first one, also when both arrive at once."""
    rating = check_rating(draft.rating)
    text = check_review_text(draft.text)
    sku = (draft.product.sku or "").strip()
    if not sku or len(sku) > MAX_SKU_CHARS:
        raise ReviewError("I couldn't tell which product this review is about.")
    media = draft.media
    if media is not None and media.kind not in ("photo", "video"):
        raise ReviewError("A review can come with a photo or a video.")
    channel = identity_channel(draft.channel)
    existing = _existing_review(session, draft.customer_id, channel, draft.sender_id, sku)
    if existing is not None:
        return existing, False
    review = Review(
        customer_id=draft.customer_id, channel=channel, sender_id=draft.sender_id, product_sku=sku,
        product_title=(draft.product.title or sku).strip()[:MAX_TITLE_CHARS],
        order_external_id=draft.product.order_external_id, rating=rating, text=text,
        media_kind=media.kind if media else "none", media_reference=media.reference if media else None,
        media_urls=list(media.urls) if media else [], status="pending", points_awarded=0, created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(review)
            session.flush()
    except IntegrityError:  # the same review submitted concurrently (a double tap, a redelivery)
        found = _existing_review(session, draft.customer_id, channel, draft.sender_id, sku)
        if found is None:
            raise
        return found, False
    return review, True


def points_for(program: Program, media_kind: str) -> int:
    """What an approved review with this media ("none", "photo", "video") earns."""
    amounts = _credit_amounts(program)
    if media_kind not in amounts:
        raise ValueError(f"unknown review media kind {media_kind!r}; expected one of {', '.join(amounts)}")
    return amounts[media_kind]


def moderate_review(
    session: Session, program: Program, review_id: int, *, approve: bool, actor: str, note: Optional[str],
    now: datetime,
) -> ModerationResult:
    """Approve (pays by media kind, once) or reject (with the reason the shopper is told) a pending review.
    The rating plays no part: a 1-star review earns what a 5-star one does."""
    return moderate(session, program, Review, review_id, what="review", approve=approve, actor=actor, note=note,
                    now=now, credit_of=lambda review: _credit(program, review, now), message_of=_message)


def _credit(program: Program, review: Review, now: datetime) -> Credit:
    kind = "text" if review.media_kind == "none" else review.media_kind
    credit = credit_for(program, review.customer_id, f"review_{kind}", str(review.id), now)
    # Its own key: the store API credits reviews by the store's review ids (review:<id>), another numbering.
    return replace(credit, key=f"chat-review:{review.id}")


def _credit_amounts(program: Program) -> Dict[str, int]:
    earning = program.earning
    return {"none": earning.review_text, "photo": earning.review_photo, "video": earning.review_video}


def _message(review: Review, approved: bool, points: int, note: Optional[str]) -> str:
    if not approved:
        return f"Thanks for your review of the {review.product_title}. We couldn't publish it: {reason_sentence(note)}"
    added = f" {points:,} points have been added to your account." if points else ""
    return f"Your review of the {review.product_title} is live — thank you!{added}"


# ---------------------------------------------------------------------------------------------
# Helpers

# Words of a message that do not help name a product (and title words that do not tell products apart).
_STOPWORDS = frozenset(
    "a an and about again ago also at be bought but by for from got had have i im in is it its just last me month "
    "my new of on one or ordered our please product recently really set so thank thanks the them these this that "
    "to today very was we week with yesterday you your review rate rating star stars want would like love".split()
)


def _title_words(text: str) -> Set[str]:
    """The words that identify a product in a title or a message: singular, no stopwords or bare numbers."""
    words = re.findall(r"[a-z0-9]+", normalize(text))
    return {singular(word) for word in words if len(word) > 1 and not word.isdigit() and word not in _STOPWORDS}


def _products_by_code(session: Session, text: str) -> List[ReviewableProduct]:
    """Products whose SKU (or a variant's) or handle appears as a word of the text, or whose handle the text
    spells out."""
    tokens = {token.strip("-_") for token in re.findall(r"[A-Za-z0-9][A-Za-z0-9_-]*", text)}
    tokens = {token for token in tokens if len(token) >= 2}
    if len(tokens) > 100:  # a long message is prose, not a code
        return []
    codes = sorted(tokens | {token.upper() for token in tokens})
    handles = sorted(({token.lower() for token in tokens} | {slugify(text)}) - {""})
    found = session.execute(
        select(Product.sku, Product.title).where(or_(Product.sku.in_(codes), Product.handle.in_(handles)))
    ).all()
    found += session.execute(
        select(Product.sku, Product.title).join(ProductVariant, ProductVariant.product_id == Product.id)
        .where(ProductVariant.sku.in_(codes))
    ).all()
    return [ReviewableProduct(sku, title) for sku, title in sorted(set(found))]


def _existing_review(
    session: Session, customer_id: Optional[int], channel: str, sender_id: str, sku: str
) -> Optional[Review]:
    same_shopper = [and_(Review.channel == channel, Review.sender_id == sender_id)]
    if customer_id is not None:
        same_shopper.append(Review.customer_id == customer_id)
    return session.execute(
        select(Review).where(Review.product_sku == sku, or_(*same_shopper)).order_by(Review.id).limit(1)
    ).scalar_one_or_none()


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]
