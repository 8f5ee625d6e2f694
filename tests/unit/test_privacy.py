"""Erasing a customer (bot/privacy.py) on real SQLite and PostgreSQL, with a customer who has everything;
their conversations erased from real Rasa tracker stores (SQLite, Redis)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import Text, cast, func, select, text

from bot.advocacy.content import SubmittedMedia, keep_submission
from bot.advocacy.friend_offers import find_friend_offer, record_click
from bot.advocacy.referrals import claim_in_chat, referral_code_for
from bot.advocacy.reviews import ReviewableProduct, ReviewDraft, moderate_review, submit_review
from bot.advocacy.social import claim_social_follow
from bot.db import Database
from bot.feedback.search import matching, search_text_for
from bot.feedback.transcripts import store_transcript
from bot.handoff import request_handoff
from bot.identity import create_customer, find_customers, link_identity
from bot.identity.linking import issue_link_code, redeem_link_code
from bot.loyalty.earning import award, credit_for
from bot.loyalty.ledger import verify_balances
from bot.loyalty.orders import LineInput, record_paid_order
from bot.loyalty.program import Program
from bot.loyalty.rewards import mark_used, redeem
from bot.models import (
    ChannelIdentity, ContentSubmission, Customer, Feedback, FeedbackNote, FeedbackTopic, HandoffRequest, LedgerEntry,
    LinkAttempt, LinkCode, Order, OutboundMessage, ProductSearch, QuizRun, Referral, ReferralClick, Review, RewardCode,
    SocialFollowClaim, Transcript,
)
from bot.models.base import Base
from bot.notices import queue_notice
from bot.privacy import (
    ERASED_SENDER, UnknownCustomer, customer_by_email, customer_profile, erase_conversations, erase_customer,
    erase_customer_everywhere,
)
from bot.settings import Settings
from tests.services import REDIS_URL, require_service

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
EMAIL = "annabelle.zyxwq@example.com"
TELEGRAM = "7300111222"
INSTAGRAM = "1784000111999"
WIDGET = "wc-8f1d2a9e7c"
GUEST_WEB = "rest-guest-55aa"  # a conversation before she linked it: found through the link code it used
ADDRESS_HASH = "a1" * 32
IP_HASH = "b2" * 32
FRIEND_IP_HASH = "c3" * 32  # her network, from her own clicks on referral links
BROWSER = "Mozilla/5.0 (iPhone; Annabelle's phone)"
OTHER_IP_HASH = "e5" * 32  # someone else's visit through her link
OTHER_BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"
MEDIA = "telegram:AgACAgIAAxkBAAIQuixotic"
CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=quixotic"
# Everything that would tell who she is, looked for in every column of every table afterwards.
NEEDLES = ("quixotic", "annabelle", "zyxwq", TELEGRAM, INSTAGRAM, WIDGET, GUEST_WEB, ADDRESS_HASH, IP_HASH,
           FRIEND_IP_HASH, "1990-04-0")
LAMP = ReviewableProduct("OE-LT-002", "Pebble table lamp", "A-1001")
CHAIR = ReviewableProduct("OE-CH-001", "Linden chair", "A-1001")


@dataclass
class Store:
    ann: int
    bo: int
    cy: int
    ann_feedback: List[int]
    bo_feedback: int
    bo_transcript: int
    cy_referral: int


def turns(*texts: str) -> List[Dict[str, object]]:
    return [{"role": "shopper" if index % 2 == 0 else "bot", "text": text, "at": NOW - timedelta(minutes=10 - index)}
            for index, text in enumerate(texts)]


def add_feedback(session, *, customer_id, channel, sender, score, comment, transcript, topics, order_id=None,
                 handoff_id=None) -> Feedback:
    feedback = Feedback(
        customer_id=customer_id, order_id=order_id, transcript_id=transcript.id, channel=channel, sender_id=sender,
        kind="csat", score=score, comment=comment, sentiment="negative" if score <= 2 else "positive",
        topics=topics, search_text=search_text_for(comment, transcript.turns), status="new", goodwill_points=0,
        handoff_request_id=handoff_id, created_at=NOW, updated_at=NOW,
    )
    session.add(feedback)
    session.flush()
    for topic in topics:
        session.add(FeedbackTopic(feedback_id=feedback.id, topic=topic))
    return feedback


def seed(db: Database, program: Program) -> Store:
    """Ann has every kind of row the store keeps about a shopper; Bo and Cy are other people."""
    with db.session(write=True) as session:
        ann = create_customer(session, EMAIL, "Annabelle", "Quixotic", date(1990, 4, 7))
        ann.external_id = "shopify-quixotic-77"
        bo = create_customer(session, "bo@example.com", "Bo", "Berg")
        cy = create_customer(session, "cy@example.com", "Cy", "Cole")
        for customer in (ann, bo, cy):
            award(session, program, customer.id, credit_for(program, customer.id, "signup", None, NOW), at=NOW)
        link_identity(session, ann.id, "telegram", TELEGRAM)
        link_identity(session, ann.id, "instagram", INSTAGRAM)
        link_identity(session, ann.id, "widget", WIDGET)
        link_identity(session, bo.id, "telegram", "5550001")
        # A guest conversation on the REST channel: a referral claimed, a wrong link code, then the link.
        bo_code = referral_code_for(session, bo.id, NOW).code
        claim_in_chat(session, program, bo_code, "rest", GUEST_WEB, "chat", NOW)
        referral = session.execute(select(Referral).where(Referral.friend_sender_id == GUEST_WEB)).scalar_one()
        # Her visit through Bo's link, which the referral points at (and copied its IP hash from).
        bo_click = record_click(session, program, bo_code, FRIEND_IP_HASH, BROWSER, NOW - timedelta(hours=1))
        bo_offer = find_friend_offer(session, bo_click.offer_code)
        referral.click_id, referral.ip_hash = bo_offer.click_id, FRIEND_IP_HASH
        redeem_link_code(session, "WRONG-CODE", "rest", GUEST_WEB, NOW)
        code = issue_link_code(session, ann.id, NOW).code
        assert redeem_link_code(session, code, "cmdline", GUEST_WEB, NOW).status == "linked"
        # Wrong tries from her Telegram and Instagram chats (the guest one went when she linked), and Bo's.
        redeem_link_code(session, "ZZZZ-ZZZZ", "telegram", TELEGRAM, NOW)
        redeem_link_code(session, "YYYY-YYYY", "instagram", INSTAGRAM, NOW)
        redeem_link_code(session, "XXXX-XXXX", "telegram", "5550001", NOW)
        issue_link_code(session, ann.id, NOW)  # and an unused one
        referral.friend_customer_id = ann.id
        # Ann as an advocate: Cy came through her code (Cy's data stays).
        ann_code = referral_code_for(session, ann.id, NOW).code
        claim_in_chat(session, program, ann_code, "telegram", "cy-chat-1", "chat", NOW)
        assert record_click(session, program, ann_code, OTHER_IP_HASH, OTHER_BROWSER, NOW).counted  # not hers
        # Her visit through Cy's link: its friend offer she used on her order below (no referral of its own,
        # she already has Bo's).
        cy_code = referral_code_for(session, cy.id, NOW).code
        cy_click = record_click(session, program, cy_code, FRIEND_IP_HASH, BROWSER, NOW - timedelta(days=21))
        cy_offer = find_friend_offer(session, cy_click.offer_code)
        cy_referral = session.execute(select(Referral.id).where(Referral.friend_sender_id == "cy-chat-1")).scalar_one()

        order = record_paid_order(session, program, ann.id, "A-1001", Decimal("240"), NOW - timedelta(days=20),
                                  lines=[LineInput("Pebble table lamp", 2, Decimal("120"), "OE-LT-002")]).order
        order.shipping_address_hash, order.ip_hash = ADDRESS_HASH, IP_HASH
        assert mark_used(session, cy_offer, "A-1001", NOW - timedelta(days=20), used_by_customer_id=ann.id)
        redeem(session, program, ann.id, "free-shipping", idempotency_key="ann-redeem-1")

        review, _ = submit_review(session, ReviewDraft("telegram", TELEGRAM, ann.id, LAMP, 2,
                                                       "Annabelle Quixotic here: the glaze chipped.",
                                                       SubmittedMedia("telegram", TELEGRAM, "photo", MEDIA, [], "")),
                                  NOW)
        moderate_review(session, program, review.id, approve=True, actor="merchant:olive",
                        note="Replied to Annabelle", now=NOW)
        submit_review(session, ReviewDraft("instagram", INSTAGRAM, ann.id, CHAIR, 5, "Quixotic comfort!"), NOW)
        submit_review(session, ReviewDraft("instagram", "bo-insta", bo.id, LAMP, 4, "Nice lamp, Bo"), NOW)
        keep_submission(session, SubmittedMedia("instagram", INSTAGRAM, "video", "sha256:quixotic", [CDN],
                                                "Annabelle unboxing"), ann.id, NOW)
        claim_social_follow(session, program, ann.id, "instagram", "@annabelle.quixotic", "telegram", NOW)
        claim_social_follow(session, program, ann.id, "tiktok", "@quixotic.ann", "telegram", NOW)

        # A handoff with its transcript, and feedback with transcripts: hers, one from before she linked
        # Instagram (no customer on it), and Bo's.
        handoff = request_handoff(session, "telegram", TELEGRAM, ann.id,
                                  [{"role": "shopper", "text": "Annabelle Quixotic, call me please", "at": NOW.isoformat()}])
        handoff_transcript = store_transcript(
            session, channel="telegram", sender_id=TELEGRAM, customer_id=ann.id, order_id=order.id, reason="handoff",
            turns=turns("I am Annabelle Quixotic", "How can I help?", f"mail me at {EMAIL}"), redact=False, now=NOW)
        handoff.transcript_id = handoff_transcript.id
        transcript = store_transcript(
            session, channel="telegram", sender_id=TELEGRAM, customer_id=ann.id, order_id=order.id, reason="feedback",
            turns=turns("feedback", "How was order A-1001?", "2", "Sorry! Why?", "Annabelle says: chipped glaze"),
            redact=True, now=NOW)
        feedback = add_feedback(session, customer_id=ann.id, channel="telegram", sender=TELEGRAM, score=2,
                                comment="Quixotic packaging, chipped glaze", transcript=transcript,
                                topics=["quality", "packaging"], order_id=order.id, handoff_id=handoff.id)
        session.add(FeedbackNote(feedback_id=feedback.id, author="olive@shop.example", created_at=NOW,
                                 text="Called Annabelle, sending a new lamp"))
        guest_transcript = store_transcript(
            session, channel="instagram", sender_id=INSTAGRAM, customer_id=None, order_id=None, reason="feedback",
            turns=turns("love it", "Thanks! Anything else?", "ask for annabelle next time"), redact=True, now=NOW)
        guest_feedback = add_feedback(session, customer_id=None, channel="instagram", sender=INSTAGRAM, score=5,
                                      comment="Quixotic service", transcript=guest_transcript, topics=["service"])
        bo_transcript = store_transcript(
            session, channel="telegram", sender_id="5550001", customer_id=bo.id, order_id=None, reason="feedback",
            turns=turns("fast shipping", "Great!"), redact=True, now=NOW)
        bo_feedback = add_feedback(session, customer_id=bo.id, channel="telegram", sender="5550001", score=5,
                                   comment="Fast shipping", transcript=bo_transcript, topics=["shipping"])

        session.add_all([
            QuizRun(quiz_id="room-makeover", channel="widget", sender_id=WIDGET, customer_id=ann.id, status="completed",
                    stage="done", answers={"room": ["living"]}, results=[{"sku": "OE-LT-002", "score": 3, "reasons": []}],
                    email=EMAIL, consent_text="Yes, email Annabelle tips", consent_at=NOW, started_at=NOW, updated_at=NOW),
            QuizRun(quiz_id="room-makeover", channel="instagram", sender_id=INSTAGRAM, customer_id=None,
                    status="in_progress", stage="questions", answers={}, started_at=NOW, updated_at=NOW),
            ProductSearch(channel="telegram", sender_id=TELEGRAM, customer_id=ann.id, text="a gift for Annabelle Quixotic",
                          criteria={"product_type": "lamp"}, results=["OE-LT-002"], created_at=NOW),
        ])
        queue_notice(session, ann.id, "review_approved", "Thanks Annabelle, your review is live", "ann-notice-1", NOW,
                     {"name": "Annabelle Quixotic"})
        session.flush()
        return Store(ann.id, bo.id, cy.id, [feedback.id, guest_feedback.id], bo_feedback.id, bo_transcript.id,
                     cy_referral)


def personal_traces(db: Database) -> List[Tuple[str, str, str]]:
    """(table, column, needle) for every text, JSON, date… column of every table that still holds one, and
    for SQLite's full-text index (index_traces)."""
    found = index_traces(db)
    with db.session() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                for needle in NEEDLES:
                    hits = session.execute(
                        select(func.count()).select_from(table)
                        .where(func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True))
                    ).scalar_one()
                    if hits:
                        found.append((table.name, column.name, needle))
    return found


def index_traces(db: Database) -> List[Tuple[str, str, str]]:
    """The needles in the shadow tables of SQLite's FTS5 feedback index (feedback_search_data…): what the
    index has stored, whether or not a delete marker hides it from searches (fts5vocab would not show it).
    Terms are stored lower-cased, in blobs."""
    if db.engine.dialect.name != "sqlite":
        return []
    found = []
    with db.session() as session:
        tables = session.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'feedback!_search!_%' ESCAPE '!'"
        )).scalars().all()
        assert "feedback_search_data" in tables
        for table in tables:
            for column in [row[1] for row in session.execute(text(f'PRAGMA table_info("{table}")'))]:
                stored = [value if isinstance(value, bytes) else str(value).encode()
                          for value in session.execute(text(f'SELECT "{column}" FROM "{table}"')).scalars()
                          if value is not None]
                found.extend((table, column, needle) for needle in NEEDLES
                             if any(needle.lower().encode() in value.lower() for value in stored))
    return found


def search_hits(db: Database, query: str) -> int:
    with db.session() as session:
        condition = matching(db.engine.dialect.name, query)
        return session.execute(select(func.count()).select_from(Feedback).where(condition)).scalar_one()


def count(db: Database, model, *where) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_erasure_leaves_nothing_personal_and_keeps_the_books(any_db: Database, program: Program) -> None:
    store = seed(any_db, program)
    before = personal_traces(any_db)
    assert {table for table, _, _ in before} >= {
        "customers", "channel_identities", "transcripts", "feedback", "feedback_notes", "handoff_requests", "reviews",
        "content_submissions", "social_follow_claims", "quiz_runs", "product_searches", "outbound_messages", "orders",
        "referrals", "referral_clicks", "link_codes", "link_attempts",
    }, "the seed must put her data everywhere the test looks"
    if any_db.engine.dialect.name == "sqlite":
        assert ("feedback_search_data", "block", "quixotic") in before, "the FTS index holds her words"
    assert search_hits(any_db, "quixotic") == 2 and search_hits(any_db, "chipped") == 1
    with any_db.session() as session:
        profile = customer_profile(session, store.ann, program, NOW)
        entries_before = session.execute(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.customer_id == store.ann)).scalar_one()
        balance_before = session.get(Customer, store.ann).points_balance
        codes_before = session.execute(select(func.count()).select_from(RewardCode)).scalar_one()
    assert profile.has_personal_data and len(profile.identities) == 4
    assert profile.counts["feedback"] == 2 and profile.counts["transcripts"] == 3 and profile.counts["orders"] == 1
    assert balance_before > 0

    with any_db.session(write=True) as session:
        report = erase_customer(session, store.ann, actor="merchant:olive@shop.example", now=NOW)

    assert personal_traces(any_db) == []
    assert search_hits(any_db, "quixotic") == 0 and search_hits(any_db, "chipped") == 0
    assert search_hits(any_db, "fast shipping") == 1, "other shoppers' feedback stays searchable"
    assert set(report.conversations) == {("instagram", INSTAGRAM), ("rest", GUEST_WEB), ("telegram", TELEGRAM),
                                         ("widget", WIDGET)}
    assert report.deleted["transcripts"] == 3 and report.deleted["feedback_notes"] == 1
    assert report.deleted["channel_identities"] == 4 and report.deleted["link_codes"] == 2
    assert report.deleted["link_attempts"] == 2 and report.deleted["outbound_messages"] >= 1
    assert report.deleted["content_submissions"] == 1
    assert report.deleted["reviews"] == 1 and report.anonymised["reviews"] == 1  # pending withdrawn, approved kept
    assert report.deleted["social_follow_claims"] == 2
    assert report.anonymised["feedback"] == 2 and report.anonymised["handoff_requests"] == 1
    assert report.anonymised["quiz_runs"] == 2 and report.anonymised["product_searches"] == 1
    assert report.anonymised["orders"] == 1 and report.anonymised["referrals"] == 1
    assert report.anonymised["referral_clicks"] == 2  # hers through Bo's link and through Cy's
    assert report.anonymised["customers"] == 1 and report.points_forfeited == balance_before

    with any_db.session() as session:
        ann = session.get(Customer, store.ann)
        assert (ann.email, ann.first_name, ann.last_name, ann.birthday, ann.external_id) == (None,) * 5
        assert ann.points_balance == 0 and ann.display_name == f"customer {store.ann}"
        assert verify_balances(session) == []
        # The ledger and the reward codes are the store's books: all kept, plus the forfeiture.
        entries = session.execute(select(LedgerEntry).where(LedgerEntry.customer_id == store.ann)
                                  .order_by(LedgerEntry.id)).scalars().all()
        assert len(entries) == entries_before + 1
        assert entries[-1].kind == "adjust" and entries[-1].points == -balance_before
        assert session.execute(select(func.count()).select_from(RewardCode)).scalar_one() == codes_before
        order = session.execute(select(Order).where(Order.customer_id == store.ann)).scalar_one()
        assert order.total == Decimal("240") and order.external_id == "A-1001" and len(order.lines) == 1
        # Her scores still count, with nothing that leads back to her.
        kept = session.execute(select(Feedback).where(Feedback.id.in_(store.ann_feedback)).order_by(Feedback.id)).scalars().all()
        assert [(item.kind, item.score, item.topics) for item in kept] == [
            ("csat", 2, ["quality", "packaging"]), ("csat", 5, ["service"])]
        for item in kept:
            assert (item.comment, item.search_text, item.customer_id, item.order_id, item.transcript_id,
                    item.handoff_request_id, item.sender_id) == (None, "", None, None, None, None, ERASED_SENDER)
        assert session.execute(select(func.count()).select_from(FeedbackTopic)
                               .where(FeedbackTopic.feedback_id.in_(store.ann_feedback))).scalar_one() == 3
        handoff = session.execute(select(HandoffRequest)).scalar_one()
        assert (handoff.status, handoff.last_messages, handoff.customer_id) == ("closed", [], None)
        review = session.execute(select(Review).where(Review.product_sku == LAMP.sku, Review.customer_id.is_(None))).scalar_one()
        assert (review.rating, review.status, review.text, review.media_urls) == (2, "approved", "", [])
        assert review.points_awarded > 0
        quiz = session.execute(select(QuizRun).where(QuizRun.status == "completed")).scalar_one()
        assert quiz.answers == {"room": ["living"]} and quiz.email is None and quiz.consent_text is None
        assert session.execute(select(QuizRun.status).where(QuizRun.quiz_id == "room-makeover")
                               .order_by(QuizRun.id)).scalars().all() == ["completed", "abandoned"]
        # Other people are untouched: Bo's feedback and transcript, Bo's and Cy's accounts, Cy's referral.
        bo_feedback = session.get(Feedback, store.bo_feedback)
        assert bo_feedback.comment == "Fast shipping" and bo_feedback.transcript_id == store.bo_transcript
        assert session.get(Customer, store.bo).email == "bo@example.com"
        assert session.get(Customer, store.cy).first_name == "Cy"
        cy_referral = session.get(Referral, store.cy_referral)
        assert cy_referral.friend_sender_id == "cy-chat-1" and cy_referral.advocate_id == store.ann
        # Every visit stays counted; only someone else's still has a network and a browser.
        clicks = session.execute(select(ReferralClick.ip_hash, ReferralClick.user_agent)
                                 .order_by(ReferralClick.id)).all()
        assert [tuple(row) for row in clicks] == [(None, None), (OTHER_IP_HASH, OTHER_BROWSER), (None, None)]
        assert session.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one() == 1
        assert session.execute(select(LinkAttempt.sender)).scalars().all() == ["5550001"]
        assert session.execute(select(func.count()).select_from(Review).where(Review.customer_id == store.bo)).scalar_one() == 1
        profile = customer_profile(session, store.ann, program, NOW)
    assert not profile.has_personal_data and profile.identities == [] and profile.counts["orders"] == 1

    with any_db.session(write=True) as session:
        again = erase_customer(session, store.ann, actor="merchant:olive@shop.example", now=NOW + timedelta(hours=1))
    assert again.nothing_left and again.deleted == {} and again.anonymised == {} and again.conversations == ()
    with any_db.session() as session:
        assert verify_balances(session) == []
    assert count(any_db, LedgerEntry, LedgerEntry.customer_id == store.ann) == entries_before + 1


def test_an_unknown_customer_is_a_clear_error(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        with pytest.raises(UnknownCustomer, match="no customer with id 4242"):
            erase_customer(session, 4242, actor="cli", now=NOW)


def test_customers_are_found_by_email_id_or_sender(sqlite_db: Database, program: Program) -> None:
    store = seed(sqlite_db, program)
    with sqlite_db.session() as session:
        assert [c.id for c in find_customers(session, " Annabelle.ZYXWQ@example.com ")] == [store.ann]
        assert [c.id for c in find_customers(session, f"#{store.bo}")] == [store.bo]
        assert [c.id for c in find_customers(session, TELEGRAM)] == [store.ann]
        assert find_customers(session, "nobody@example.com") == [] and find_customers(session, "  ") == []


def test_only_ascii_digits_are_an_id(sqlite_db: Database, program: Program) -> None:
    """Only ASCII digits: "²" and "①" are str.isdigit() but int() refuses them, int() reads "٣" (Arabic-Indic)
    as 3, and 5,000 digits are past int()'s limit."""
    store = seed(sqlite_db, program)
    assert store.cy == 3
    with sqlite_db.session() as session:
        for query in ("²", "#①", "٣", "#٣", "9" * 5000, "#" + "0" * 40 + "3"):
            assert find_customers(session, query) == [], query
        assert [c.id for c in find_customers(session, "#0003")] == [store.cy]


def test_control_characters_match_nobody(any_db: Database, program: Program) -> None:
    """PostgreSQL refuses NUL in a parameter: such a query matches nothing instead of failing."""
    store = seed(any_db, program)
    with any_db.session() as session:
        for query in ("a\x00b", EMAIL + "\x00", f"#{store.ann}\x00", TELEGRAM + "\x00", f"{TELEGRAM}\n{store.ann}"):
            assert find_customers(session, query) == [], repr(query)
        with pytest.raises(UnknownCustomer, match="control characters"):
            customer_by_email(session, EMAIL + "\x00")
        assert customer_by_email(session, f" {EMAIL} ").id == store.ann


# ---------------------------------------------------------------------------------------------
# Trackers

DOMAIN = Domain.from_dict({"intents": ["greet"]})


async def save_conversation(store, sender: str, text: str) -> None:
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    tracker.update(UserUttered(text, {"name": "greet", "confidence": 1.0}))
    await store.save(tracker)


async def test_conversations_are_erased_from_rasas_sql_tracker_store(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = SQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(path))
    for sender in (TELEGRAM, INSTAGRAM, "someone-else"):
        await save_conversation(store, sender, f"hello from {sender}")
    await save_conversation(store, TELEGRAM, "a second turn")
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "TRACKER_DATABASE_URL": f"sqlite:///{path}"})

    assert erase_conversations(settings, [TELEGRAM, INSTAGRAM, "never-talked"]) == 2

    assert await store.retrieve(TELEGRAM) is None and await store.retrieve(INSTAGRAM) is None
    assert (await store.retrieve("someone-else")).latest_message.text == "hello from someone-else"
    assert erase_conversations(settings, [TELEGRAM, INSTAGRAM]) == 0, "erasing twice is fine"
    store.engine.dispose()


def test_no_tracker_database_yet_means_nothing_to_erase(tmp_path: Path) -> None:
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path)})
    assert erase_conversations(settings, [TELEGRAM]) == 0
    assert not (tmp_path / "conversations.db").exists(), "no empty tracker database is made"


async def test_conversations_are_erased_from_rasas_redis_tracker_store(tmp_path: Path) -> None:
    require_service("Redis", 6379)
    from bot.conversation_storage import redis_kwargs

    store = RedisTrackerStore(domain=DOMAIN, **redis_kwargs(REDIS_URL))
    mine, other = f"tg-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    try:
        await save_conversation(store, mine, "hello")
        await save_conversation(store, other, "hi")
        settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "REDIS_URL": REDIS_URL})

        assert erase_conversations(settings, [mine, "never-talked"]) == 1

        assert await store.retrieve(mine) is None and store.red.get(store.key_prefix + mine) is None
        assert (await store.retrieve(other)).latest_message.text == "hi"
        assert erase_conversations(settings, [mine]) == 0
    finally:
        store.red.delete(store.key_prefix + mine, store.key_prefix + other)


async def test_erasing_everywhere_takes_the_trackers_and_logs_no_personal_data(
        sqlite_db: Database, program: Program, tmp_path: Path, capsys) -> None:
    store_db = seed(sqlite_db, program)
    path = tmp_path / "conversations.db"
    trackers = SQLTrackerStore(domain=DOMAIN, dialect="sqlite", db=str(path))
    for sender in (TELEGRAM, GUEST_WEB, WIDGET, "5550001"):
        await save_conversation(trackers, sender, "hello")
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "TRACKER_DATABASE_URL": f"sqlite:///{path}"})
    capsys.readouterr()

    report = erase_customer_everywhere(sqlite_db, settings, store_db.ann, actor="cli:test", now=NOW)

    assert report.trackers_erased == 3
    for sender in (TELEGRAM, GUEST_WEB, WIDGET):
        assert await trackers.retrieve(sender) is None
    assert await trackers.retrieve("5550001") is not None, "Bo's conversation stays"
    logged = capsys.readouterr().err
    assert "privacy.customer_erased" in logged and "cli:test" in logged
    for needle in NEEDLES:
        assert needle.lower() not in logged.lower()
    trackers.engine.dispose()


def test_a_tracker_store_that_fails_rolls_the_erasure_back(sqlite_db: Database, program: Program,
                                                          tmp_path: Path) -> None:
    store = seed(sqlite_db, program)
    # Nothing listens on port 1: the conversations cannot be erased, so the store must keep everything.
    settings = Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0"})
    with pytest.raises(Exception):
        erase_customer_everywhere(sqlite_db, settings, store.ann, actor="cli:test", now=NOW)
    with sqlite_db.session() as session:
        assert session.get(Customer, store.ann).email == EMAIL
        assert session.execute(select(func.count()).select_from(ChannelIdentity)
                               .where(ChannelIdentity.customer_id == store.ann)).scalar_one() == 4
    assert count(sqlite_db, Transcript) == 4 and count(sqlite_db, ContentSubmission) == 1
    assert count(sqlite_db, LinkCode) == 2 and count(sqlite_db, LinkAttempt) == 3
    assert count(sqlite_db, OutboundMessage) >= 1 and count(sqlite_db, SocialFollowClaim) == 2
    assert count(sqlite_db, ProductSearch, ProductSearch.customer_id == store.ann) == 1
    assert count(sqlite_db, FeedbackNote) == 1
