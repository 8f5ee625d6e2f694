"""Reviews left in chat: what can be reviewed, checking what was written, one review per shopper and product,
and the merchant's decision paying by media kind (never by rating), once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from threading import Barrier
from typing import Optional

import pytest
from sqlalchemy import func, select

from bot.advocacy.content import SubmittedMedia
from bot.advocacy.moderation import ModerationError
from bot.advocacy.reviews import (
    REVIEW_MAX_CHARS, ReviewableProduct, ReviewDraft, ReviewError, already_reviewed, check_review_text,
    find_product, match_product, moderate_review, parse_rating, points_for, reviewable_products, submit_review,
)
from bot.catalog import load_catalog, upsert_product
from bot.db import Database
from bot.demo import CATALOG_FILE
from bot.identity import create_customer
from bot.loyalty.earning import award, credit_for
from bot.loyalty.ledger import balance, verify_balances
from bot.loyalty.orders import LineInput, cancel_order, record_paid_order
from bot.models import LedgerEntry, OutboundMessage, Review

LAMP = ReviewableProduct("OE-LT-002", "Pebble table lamp", "1001")
PHOTO = SubmittedMedia("telegram", "5001", "photo", "telegram:AgACAgIAAxk", [], "on my desk")
VIDEO = SubmittedMedia("instagram", "1784", "video", "sha256:abc", ["https://cdn.example/v.mp4"], "")


def _store(db: Database, program, clock) -> int:
    """The demo catalog and one customer (Ann); her id."""
    with db.session(write=True) as session:
        for product in load_catalog(CATALOG_FILE, program.currency):
            upsert_product(session, product, "https://shop.example", clock.current)
        return create_customer(session, "ann@example.com", "Ann").id


def _draft(customer_id: Optional[int], rating: int = 5, media: Optional[SubmittedMedia] = None,
           sender: str = "5001", product: ReviewableProduct = LAMP) -> ReviewDraft:
    return ReviewDraft("telegram", sender, customer_id, product, rating, "Warm light, lovely glaze.", media)


def _submit(db: Database, draft: ReviewDraft, clock) -> int:
    with db.session(write=True) as session:
        return submit_review(session, draft, clock.current)[0].id


def _count(db: Database, model, *conditions) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one()


def _notices(db: Database) -> list:
    with db.session() as session:
        return [(m.customer_id, m.kind, m.text, m.dedupe_key)
                for m in session.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars()]


# ---------------------------------------------------------------------------------------------
# Which product


def test_reviewable_products_come_from_kept_orders_newest_first_once_each(sqlite_db: Database, program, clock) -> None:
    ann = _store(sqlite_db, program, clock)
    day = clock.current
    with sqlite_db.session(write=True) as session:
        record_paid_order(session, program, ann, "1001", Decimal("158"), day - timedelta(days=30), lines=[
            LineInput("Ash chairs", 1, Decimal("79"), "OE-CH-002"),
            LineInput("Pebble lamp, sand", 1, Decimal("79"), "OE-LT-002-SND"),  # a variant: its product is reviewed
            LineInput("Gift wrap", 1, Decimal("0")),  # no SKU: nothing to review
        ])
        record_paid_order(session, program, ann, "1002", Decimal("200"), day - timedelta(days=10), lines=[
            LineInput("Pebble lamp, moss", 1, Decimal("79"), "OE-LT-002-MOS"),  # the same product again
            LineInput("Gift card", 1, Decimal("2"), "GIFT-25"),  # not in the catalog: the line's title
            LineInput("Fold side table", 1, Decimal("119"), "OE-TB-001"),
        ])
        record_paid_order(session, program, ann, "1003", Decimal("980"), day - timedelta(days=5), lines=[
            LineInput("Loveseat", 1, Decimal("980"), "OE-SO-002")])
        cancel_order(session, program, "1003")  # cancelled: not reviewable
        other = create_customer(session, "bo@example.com", "Bo").id
        record_paid_order(session, program, other, "2001", Decimal("149"), day, lines=[
            LineInput("Ember lamp", 1, Decimal("149"), "OE-LT-001")])
    _submit(sqlite_db, _draft(ann, product=ReviewableProduct("OE-TB-001", "Fold oak side table")), clock)

    with sqlite_db.session() as session:
        assert reviewable_products(session, ann) == [
            ReviewableProduct("OE-LT-002", "Pebble table lamp", "1002"),
            ReviewableProduct("GIFT-25", "Gift card", "1002"),
            ReviewableProduct("OE-CH-002", "Ash dining chair (set of 2)", "1001"),
        ]
        assert reviewable_products(session, ann, limit=1) == [ReviewableProduct("OE-LT-002", "Pebble table lamp", "1002")]
        assert reviewable_products(session, other) == [ReviewableProduct("OE-LT-001", "Ember floor lamp", "2001")]
        assert find_product(session, "OE-LT-002-MOS") == ReviewableProduct("OE-LT-002", "Pebble table lamp")
        assert find_product(session, "OE-LT-002") == ReviewableProduct("OE-LT-002", "Pebble table lamp")
        assert find_product(session, "NOPE") is None and find_product(session, "") is None


@pytest.mark.parametrize("text, sku", [
    ("the pebble lamp", "OE-LT-002"),
    ("I'd like to review my Pebble table lamps", "OE-LT-002"),
    ("OE-LT-002", "OE-LT-002"),
    ("it's oe-lt-002-snd", "OE-LT-002"),  # a variant SKU names its product
    ("pebble-table-lamp", "OE-LT-002"),  # the handle
    ("the walnut chair", "OE-CH-003"),
    ("Harbour", "OE-SO-001"),
    ("the pebble lamp I bought last week", "OE-LT-002"),
    ("the unicorn saddle", None),  # most of it names no product
    ("lamp", None),  # four lamps: ambiguous
    ("my chair", None),
    ("a spaceship", None),
    ("", None),
])
def test_match_product_finds_the_one_product_named(sqlite_db: Database, program, clock, text: str,
                                                   sku: Optional[str]) -> None:
    _store(sqlite_db, program, clock)
    with sqlite_db.session() as session:
        found = match_product(session, text)
    assert (found.sku if found else None) == sku


# ---------------------------------------------------------------------------------------------
# What the shopper wrote


@pytest.mark.parametrize("text, rating", [
    ("4", 4), ("4 stars", 4), ("four", 4), ("Five!", 5), ("★★★★", 4), ("★★★☆☆", 3), ("⭐⭐⭐⭐⭐", 5), ("4/5", 4),
    ("3 out of 5", 3), ("1 star", 1), ("I'd give it 2 stars", 2), ("lovely, 5 stars", 5),
    ("0", None), ("6", None), ("10", None), ("4/10", None), ("4.5 stars", None), ("great", None), ("", None),
    ("3 stars, no, 4 stars", None), ("☆☆☆", None),
])
def test_parse_rating(text: str, rating: Optional[int]) -> None:
    assert parse_rating(text) == rating


def test_check_review_text_explains_what_is_wrong() -> None:
    assert check_review_text("  Lovely lamp.\n\nWarm light.  ") == "Lovely lamp.\n\nWarm light."
    assert check_review_text("Great\x00 lamp\x07") == "Great lamp"  # control characters go (PostgreSQL refuses NUL)
    with pytest.raises(ReviewError, match="^A review can be at most 2,000 characters — yours has 10,240.$"):
        check_review_text("x" * 10_240)
    assert len(check_review_text("x" * REVIEW_MAX_CHARS)) == REVIEW_MAX_CHARS
    for empty in ("", "   \n\t", "\x00\x01\x1b", "\u200b\u200b", None):
        with pytest.raises(ReviewError, match="empty"):
            check_review_text(empty)
    with pytest.raises(ReviewError, match="at least 2 characters"):
        check_review_text(" a ")


def test_points_for_each_media_kind(program) -> None:
    assert [points_for(program, kind) for kind in ("none", "photo", "video")] == [100, 200, 300]
    with pytest.raises(ValueError):
        points_for(program, "gif")


# ---------------------------------------------------------------------------------------------
# Submitting


def test_a_submitted_review_waits_for_approval_and_pays_nothing_yet(sqlite_db: Database, program, clock) -> None:
    ann = _store(sqlite_db, program, clock)
    with sqlite_db.session(write=True) as session:
        review, created = submit_review(session, _draft(ann, rating=4, media=PHOTO), clock.current)
        assert created and review.status == "pending" and review.points_awarded == 0
        assert (review.product_sku, review.product_title, review.order_external_id, review.rating) == (
            "OE-LT-002", "Pebble table lamp", "1001", 4)
        assert (review.media_kind, review.media_reference, review.media_urls) == ("photo", "telegram:AgACAgIAAxk", [])
        assert already_reviewed(session, ann, "instagram", "other", "OE-LT-002")  # the customer, on any chat
        assert already_reviewed(session, None, "telegram", "5001", "OE-LT-002")  # this chat
        assert not already_reviewed(session, None, "telegram", "5002", "OE-LT-002")
        assert not already_reviewed(session, ann, "telegram", "5001", "OE-CH-002")
        assert balance(session, ann) == 0
    assert _notices(sqlite_db) == []


def test_submit_checks_again_what_the_conversation_collected(sqlite_db: Database, program, clock) -> None:
    ann = _store(sqlite_db, program, clock)
    bad = [
        (_draft(ann, rating=0), "from 1 to 5"),
        (_draft(ann, rating=True), "from 1 to 5"),
        (ReviewDraft("telegram", "5001", ann, LAMP, 5, "x" * 3000), "at most 2,000 characters"),
        (ReviewDraft("telegram", "5001", ann, ReviewableProduct("", "?"), 5, "Nice"), "which product"),
    ]
    with sqlite_db.session(write=True) as session:
        for draft, message in bad:
            with pytest.raises(ReviewError, match=message):
                submit_review(session, draft, clock.current)
    assert _count(sqlite_db, Review) == 0


def test_a_second_review_of_the_same_product_returns_the_first(sqlite_db: Database, program, clock) -> None:
    ann = _store(sqlite_db, program, clock)
    first = _submit(sqlite_db, _draft(ann), clock)
    with sqlite_db.session(write=True) as session:
        again, created = submit_review(session, _draft(ann, rating=1), clock.current)
        assert (again.id, created, again.rating) == (first, False, 5)
        # The same customer from another chat, and a guest twice from one chat.
        assert submit_review(session, _draft(ann, sender="other-chat"), clock.current)[1] is False
        guest, created = submit_review(session, _draft(None, sender="9009"), clock.current)
        assert created and guest.customer_id is None
        assert submit_review(session, _draft(None, sender="9009"), clock.current) == (guest, False)
    assert _count(sqlite_db, Review) == 2


def test_concurrent_double_submits_store_one_review(any_db: Database, program, clock) -> None:
    ann = _store(any_db, program, clock)
    workers = 6
    barrier = Barrier(workers)

    def submit(index: int) -> bool:
        # Half as the customer, half as a guest in one chat: each shopper ends with one review.
        draft = _draft(ann if index % 2 else None, sender="5001" if index % 2 else "7007")
        barrier.wait()
        with any_db.session(write=True) as session:
            return submit_review(session, draft, clock.current)[1]

    with ThreadPoolExecutor(workers) as pool:
        created = list(pool.map(submit, range(workers)))
    assert created.count(True) == 2
    assert _count(any_db, Review) == 2


# ---------------------------------------------------------------------------------------------
# Moderating


@pytest.mark.parametrize("media, points", [(None, 100), (PHOTO, 200), (VIDEO, 300)])
def test_approval_pays_by_media_kind_once_and_tells_the_shopper(sqlite_db: Database, program, clock,
                                                                media: Optional[SubmittedMedia], points: int) -> None:
    ann = _store(sqlite_db, program, clock)
    review_id = _submit(sqlite_db, _draft(ann, media=media), clock)
    with sqlite_db.session(write=True) as session:
        result = moderate_review(session, program, review_id, approve=True, actor="mia", note=None, now=clock.current)
        assert (result.item_id, result.status, result.points_awarded, result.customer_id) == (
            review_id, "approved", points, ann)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ModerationError, match=f"review #{review_id} is already approved"):
            moderate_review(session, program, review_id, approve=True, actor="mia", note=None, now=clock.current)
        with pytest.raises(ModerationError, match="already approved"):
            moderate_review(session, program, review_id, approve=False, actor="mia", note="spam", now=clock.current)
    with sqlite_db.session() as session:
        review = session.get(Review, review_id)
        assert (review.status, review.moderated_by, review.moderated_at, review.points_awarded) == (
            "approved", "mia", clock.current, points)
        assert balance(session, ann) == points and verify_balances(session) == []
    assert _count(sqlite_db, LedgerEntry) == 1
    assert _notices(sqlite_db) == [(
        ann, "review_approved",
        f"Your review of the Pebble table lamp is live — thank you! {points} points have been added to your account.",
        f"review:{review_id}:approved",
    )]


def test_a_chat_review_is_paid_even_when_the_store_credited_its_own_review_with_the_same_id(
    sqlite_db: Database, program, clock
) -> None:
    # The store API credits reviews by the store's review ids ("review:1"); chat reviews count their own.
    ann = _store(sqlite_db, program, clock)
    review_id = _submit(sqlite_db, _draft(ann), clock)
    with sqlite_db.session(write=True) as session:
        bo = create_customer(session, "bo@example.com", "Bo").id
        award(session, program, bo, credit_for(program, bo, "review_text", str(review_id), clock.current))
    with sqlite_db.session(write=True) as session:
        result = moderate_review(session, program, review_id, approve=True, actor="mia", note=None, now=clock.current)
    assert result.points_awarded == program.earning.review_text
    with sqlite_db.session() as session:
        assert balance(session, ann) == program.earning.review_text and verify_balances(session) == []


def test_a_one_star_review_earns_what_a_five_star_one_does(sqlite_db: Database, program, clock) -> None:
    ann = _store(sqlite_db, program, clock)
    with sqlite_db.session(write=True) as session:
        bo = create_customer(session, "bo@example.com", "Bo").id
    low = _submit(sqlite_db, _draft(ann, rating=1, media=PHOTO), clock)
    high = _submit(sqlite_db, _draft(bo, rating=5, media=PHOTO, sender="6001"), clock)
    with sqlite_db.session(write=True) as session:
        paid = [moderate_review(session, program, review_id, approve=True, actor="mia", note=None,
                                now=clock.current).points_awarded for review_id in (low, high)]
        assert paid == [200, 200] and balance(session, ann) == balance(session, bo) == 200


def test_a_rejection_needs_a_reason_pays_nothing_and_tells_the_shopper_why(sqlite_db: Database, program, clock) -> None:
    ann = _store(sqlite_db, program, clock)
    review_id = _submit(sqlite_db, _draft(ann, media=VIDEO), clock)
    with sqlite_db.session(write=True) as session:
        for note in (None, "", "   "):
            with pytest.raises(ModerationError, match="needs a reason"):
                moderate_review(session, program, review_id, approve=False, actor="mia", note=note, now=clock.current)
        with pytest.raises(ModerationError, match="at most 255"):
            moderate_review(session, program, review_id, approve=False, actor="mia", note="x" * 256, now=clock.current)
        with pytest.raises(ModerationError, match="name must be"):
            moderate_review(session, program, review_id, approve=True, actor=" ", note=None, now=clock.current)
        with pytest.raises(ModerationError, match="no review #999"):
            moderate_review(session, program, 999, approve=True, actor="mia", note=None, now=clock.current)
        result = moderate_review(session, program, review_id, approve=False, actor="mia",
                                 note="It names another shop", now=clock.current)
        assert (result.status, result.points_awarded) == ("rejected", 0)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ModerationError, match="already rejected"):
            moderate_review(session, program, review_id, approve=True, actor="mia", note=None, now=clock.current)
        review = session.get(Review, review_id)
        assert (review.status, review.moderation_note, review.points_awarded) == ("rejected", "It names another shop", 0)
        assert balance(session, ann) == 0
    assert _notices(sqlite_db) == [(
        ann, "review_rejected",
        "Thanks for your review of the Pebble table lamp. We couldn't publish it: It names another shop.",
        f"review:{review_id}:rejected",
    )]


def test_a_guest_review_is_approved_without_points_or_notice(sqlite_db: Database, program, clock) -> None:
    _store(sqlite_db, program, clock)
    review_id = _submit(sqlite_db, _draft(None, media=PHOTO, sender="9009"), clock)
    with sqlite_db.session(write=True) as session:
        result = moderate_review(session, program, review_id, approve=True, actor="mia", note=None, now=clock.current)
    assert (result.status, result.points_awarded, result.customer_id) == ("approved", 0, None)
    assert _count(sqlite_db, LedgerEntry) == 0 and _notices(sqlite_db) == []


def test_two_moderators_approving_at_once_pay_once(any_db: Database, program, clock) -> None:
    ann = _store(any_db, program, clock)
    review_id = _submit(any_db, _draft(ann), clock)
    workers = 4
    barrier = Barrier(workers)

    def approve(index: int) -> str:
        barrier.wait()
        try:
            with any_db.session(write=True) as session:
                return moderate_review(session, program, review_id, approve=index % 2 == 0, actor=f"m{index}",
                                       note="dup", now=clock.current).status
        except ModerationError:
            return "refused"

    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(approve, range(workers)))
    assert outcomes.count("refused") == workers - 1
    winner = next(outcome for outcome in outcomes if outcome != "refused")
    expected = 100 if winner == "approved" else 0
    with any_db.session() as session:
        assert balance(session, ann) == expected and verify_balances(session) == []
    assert _count(any_db, LedgerEntry) == (1 if expected else 0)
    assert len(_notices(any_db)) == 1
