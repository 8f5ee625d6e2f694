"""`make bench-console`: the merchant console at scale. Seeds 100,000 feedback with transcripts from
random.Random(42) on SQLite, starts the real web app, signs in and times the inbox, search and transcript
pages and the streamed CSV export (with the server's memory), PASS/MISS against the targets, results in
var/bench/console.json. The scenarios and what the figures mean: the README's "Console"."""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import aiohttp
import sqlalchemy
from sqlalchemy import func, insert, select

from bench.harness import (
    finish, formatted, log, machine as describe_machine, percentile, process_kib, rounded, sqlite_url, target,
    write_json,
)
from bot.db import Database
from bot.feedback.search import search_text_for
from bot.models import (
    ChannelIdentity, Customer, Feedback, FeedbackNote, FeedbackTopic, HandoffRequest, Merchant, Order, Transcript,
)
from bot.processes import free_port
from bot.settings import PROJECT_ROOT

SEED = 42
DEFAULT_RECORDS = 100_000
DEFAULT_CUSTOMERS = 20_000
DEFAULT_REQUESTS = 200
DEFAULT_WARM_UP = 20
DEFAULT_EXPORT_ROWS = 10_000
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "console.db"
JSON_PATH = BENCH_DIR / "console.json"
BATCH = 5_000
PROGRESS_EVERY_SECONDS = 2.0
HISTORY_END = datetime(2026, 11, 1, tzinfo=timezone.utc)
HISTORY_DAYS = 365
PAGE_SIZE = 25  # bot/feedback/inbox.py's
DEEP_PAGE = 200
OWNER_EMAIL = "bench-owner@shop.example"
TARGET_P95_MS = 200.0
RSS_SAMPLE_SECONDS = 0.02
SERVER_START_SECONDS = 60.0

CHANNELS = (("widget", 0.45), ("telegram", 0.30), ("instagram", 0.22), ("rest", 0.03))
GUEST_SHARE = 0.15
NPS_SHARE = 0.20
COMMENT_SHARE = 0.65
ORDER_SHARE = 0.80  # of customers' feedback: about an order
NOTE_SHARE = 0.25  # of handled low scores
HANDOFF_SHARE = 0.30  # of low scores
CSAT_SCORES = ((5, 0.45), (4, 0.25), (3, 0.12), (2, 0.08), (1, 0.10))
NPS_SCORES = ((10, 0.25), (9, 0.20), (8, 0.15), (7, 0.10), (6, 0.08), (5, 0.06), (4, 0.04), (3, 0.04), (2, 0.03),
              (1, 0.02), (0, 0.03))
TOPIC_SHARES = (("shipping", 0.25), ("quality", 0.18), ("product", 0.15), ("support", 0.12), ("price", 0.08),
                ("sizing", 0.06), ("packaging", 0.06), ("website", 0.04), ("returns", 0.03), ("payment", 0.02),
                ("rewards", 0.01))
COMMON_WORD = "delivery"
RARE_WORD = "chandelier"
RARE_SHARE = 0.0001  # of the everyday exchanges: a few dozen transcripts in 100,000

FIRST_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kenji", "Lena",
               "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wen", "Yara", "Zoe")
LAST_NAMES = ("Moreau", "Okafor", "Tan", "Patel", "Garcia", "Kim", "Novak", "Silva", "Brown", "Rossi", "Ivanova",
              "Haddad", "Nguyen", "Schmidt", "Kowalski", "Jensen", "Dubois", "Costa", "Sato", "Murphy")
ADJECTIVES = ("Linden", "Harbour", "Fold", "Rise", "Nook", "Ember", "Pebble", "Stack", "Alder", "Brook", "Cove",
              "Drift", "Fern", "Hollow", "Isle", "Juniper", "Loom", "Marlow", "North", "Orchard", "Quill", "Rowan",
              "Sable", "Thistle", "Vale", "Wren", "Yarrow")
PRODUCT_TYPES = ("lamp", "chair", "table", "throw", "runner", "desk", "sofa", "rug", "cushion", "mug", "shelf",
                 "vase", "blanket", "stool", "mirror", "planter")
COLOURS = ("oak", "walnut", "sage", "charcoal", "navy", "terracotta", "cream", "mustard", "rust", "oatmeal")
COURIERS = ("DPD", "UPS", "FedEx", "Royal Mail", "the courier", "the driver")
MERCHANTS = ("olive@shop.example", "arlo@shop.example", "mina@shop.example")

# Comment phrases by topic and polarity; {product}, {days}, {courier}, {colour} are filled in.
PHRASES: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "shipping": {
        "+": ("Delivery was fast, it arrived the next day", "Quick delivery and {courier} was lovely",
              "Arrived on time and the tracking was spot on", "Speedy shipping, the {product} came in {days} days"),
        "-": ("The parcel arrived {days} days late", "Delivery took ages and {courier} left it in the rain",
              "Still waiting for my {product}, tracking has not moved in {days} days",
              "{courier} said delivered but nothing came", "Late delivery, I missed the birthday"),
        "0": ("Delivery took {days} days", "It came with {courier} on a Tuesday"),
    },
    "quality": {
        "+": ("The {product} is really well made and sturdy", "Solid build, lovely {colour} finish",
              "Great quality for the price", "Beautiful craftsmanship on the {product}"),
        "-": ("The {product} arrived broken", "Chipped glaze on the {product}", "Feels flimsy and wobbly",
              "Scratched {colour} top and a missing screw", "Stitching came apart after {days} days"),
        "0": ("Quality is what I expected for a {product}",),
    },
    "product": {
        "+": ("Love the {colour} {product}, looks exactly as pictured", "The {product} is gorgeous in our hallway",
              "Comfortable and the colour is perfect", "Stunning design, everyone asks about it"),
        "-": ("The {colour} looks nothing like the photo", "Uncomfortable to sit on for long",
              "The {product} is smaller than it looks online"),
        "0": ("It is a {colour} {product}, does the job", "The {product} looks fine"),
    },
    "support": {
        "+": ("Customer service sorted it in minutes", "The team replied the same day, very helpful",
              "Friendly support on the chat", "Helpful agent, thank you"),
        "-": ("Nobody answered my emails for {days} days", "Support was rude and unhelpful",
              "I had to call three times to get a reply", "No response from customer service"),
        "0": ("I asked support about the {product} and they answered",),
    },
    "price": {
        "+": ("Good value for money", "Great price in the sale", "Affordable and nice"),
        "-": ("Overpriced for what it is", "Too expensive compared to other shops", "The price went up after I ordered"),
        "0": ("Price is about average",),
    },
    "sizing": {
        "+": ("Fits perfectly in the corner", "The size is just right"),
        "-": ("Too big for the room, check the dimensions", "Too small, the measurements online are wrong"),
        "0": ("Slightly larger than I thought",),
    },
    "packaging": {
        "+": ("Well packed, no plastic", "Lovely packaging, felt like a gift"),
        "-": ("The box was crushed and the padding was useless", "Far too much plastic packaging"),
        "0": ("Came in a big cardboard box",),
    },
    "website": {
        "+": ("The website was easy to use", "Checkout was quick"),
        "-": ("The checkout page kept crashing", "Could not log in to my account on the site"),
        "0": ("Found it through the search on the site",),
    },
    "returns": {
        "+": ("The return was easy and the refund came fast", "Exchange for a new {product} went smoothly"),
        "-": ("Still no refund {days} days after the return", "Return label never arrived"),
        "0": ("I returned one {product}",),
    },
    "payment": {
        "+": ("Paying with Apple Pay was smooth",),
        "-": ("I was charged twice", "The card payment failed three times"),
        "0": ("Paid by card",),
    },
    "rewards": {
        "+": ("Love the points, got a voucher already", "The referral reward was a nice touch"),
        "-": ("My points never showed up", "The reward code did not work at checkout"),
        "0": ("I used my points on this order",),
    },
}
POSITIVE_TAILS = ("Will order again!", "Thank you!", "Highly recommend.", "", "", "")
NEGATIVE_TAILS = ("Very disappointed.", "Please sort this out.", "Not what I expected.", "", "")

# Turns the bot has every day: (shopper, bot) pairs, filled like the phrases.
EVERYDAY_TURNS: Tuple[Tuple[str, str], ...] = (
    ("how many points do I have?", "You have {points} points. {away} more and you can get $5 off."),
    ("what tier am I", "You are {tier}. Spend ${spend} more this year to reach the next tier."),
    ("do you have a {colour} {product}?", "Here are 3 {colour} options: the {adjective} {product} and two more."),
    ("how long does delivery take", "Standard delivery takes 3-5 working days; express arrives next day."),
    ("can I return it", "Yes, returns are free within 30 days. I can send you a return label."),
    ("where is my order", "Your order #{order} is with {courier}, expected in {days} days."),
    ("what's your returns policy", "You have 30 days to return anything unused, and the refund takes 5 days."),
    ("give me my referral link", "Share this link: friends get 10% off and you get 500 points."),
    ("any discounts at the moment?", "Members get early access to the sale on Friday."),
    ("is the {product} in stock", "The {adjective} {product} is in stock in {colour}."),
    ("thanks", "You're welcome! Anything else?"),
)
OPENERS = ("hi", "hello", "hey there", "good morning", "hi, quick question", "hello!")
RARE_TURN = ("do you sell a {colour} chandelier?", "Not yet, but I noted that you asked about a chandelier.")


# ---------------------------------------------------------------------------------------------
# Data


def _chooser(rng: random.Random, weighted: Sequence[Tuple[Any, float]]) -> Callable[[], Any]:
    values = [value for value, _ in weighted]
    cumulative = list(accumulate(weight for _, weight in weighted))
    total = cumulative[-1]
    return lambda: values[min(bisect(cumulative, rng.random() * total), len(values) - 1)]


@dataclass
class Batch:
    """Rows for one executemany per table (dicts keyed by column name)."""

    customers: List[Dict[str, Any]] = field(default_factory=list)
    identities: List[Dict[str, Any]] = field(default_factory=list)
    orders: List[Dict[str, Any]] = field(default_factory=list)
    transcripts: List[Dict[str, Any]] = field(default_factory=list)
    handoffs: List[Dict[str, Any]] = field(default_factory=list)
    feedback: List[Dict[str, Any]] = field(default_factory=list)
    topics: List[Dict[str, Any]] = field(default_factory=list)
    notes: List[Dict[str, Any]] = field(default_factory=list)


class _Placeholders(dict):
    """{product}, {days}, … drawn when a template asks for them."""

    def __init__(self, generator: "Generator") -> None:
        super().__init__()
        self.generator = generator

    def __missing__(self, name: str) -> object:
        rng = self.generator.rng
        value: object
        if name == "product":
            value = rng.choice(self.generator.products)
            value = value.split()[-1] if rng.random() < 0.5 else value
        elif name in _NUMBERS:
            value = rng.randint(*_NUMBERS[name])
        else:
            value = rng.choice(_WORDS[name])
        self[name] = value
        return value


_NUMBERS = {"days": (2, 21), "points": (0, 2400), "away": (10, 490), "spend": (20, 600), "order": (1000, 99999)}
_WORDS = {"courier": COURIERS, "colour": COLOURS, "tier": ("Bronze", "Silver", "Gold"), "adjective": ADJECTIVES}


class Generator:
    """The whole store from random.Random(seed): customers first, then feedback in time order (ids follow
    time, as they do when feedback arrives), each with its transcript and, for customers, usually an order."""

    def __init__(self, records: int, customers: int, seed: int = SEED, end: datetime = HISTORY_END) -> None:
        self.records = records
        self.customers = max(1, customers)
        self.rng = random.Random(seed)
        self.end = end
        self.start = end - timedelta(days=HISTORY_DAYS)
        rng = self.rng
        self.channel = _chooser(rng, CHANNELS)
        self.csat = _chooser(rng, CSAT_SCORES)
        self.nps = _chooser(rng, NPS_SCORES)
        self.topic = _chooser(rng, TOPIC_SHARES)
        self.products = [f"{adjective} {kind}" for adjective in ADJECTIVES for kind in PRODUCT_TYPES]
        self.customer_channel: Dict[int, Tuple[str, str]] = {}
        self.order_id = 0
        self.handoff_id = 0

    # -- customers

    def customer_rows(self) -> Batch:
        batch = Batch()
        rng = self.rng
        for number in range(1, self.customers + 1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            created = self.start - timedelta(days=rng.uniform(0, 700))
            channel = self.channel()
            sender = self._sender(channel)
            self.customer_channel[number] = (channel, sender)
            batch.customers.append({
                "id": number, "email": f"{first.lower()}.{last.lower()}.{number}@example.com", "first_name": first,
                "last_name": last, "birthday": None, "points_balance": 0, "created_at": created,
                "external_id": f"shop-{number}", "last_activity_at": None, "tier_name": None, "tier_held_until": None,
            })
            batch.identities.append({"id": number, "channel": channel, "external_id": sender, "customer_id": number,
                                     "created_at": created + timedelta(days=1)})
        return batch

    def _sender(self, channel: str) -> str:
        rng = self.rng
        if channel == "telegram":
            return str(rng.randrange(10**8, 10**10))
        if channel == "instagram":
            return str(rng.randrange(10**16, 10**17))
        return f"{rng.getrandbits(64):016x}" if channel == "widget" else f"rest-{rng.randrange(10**9):09d}"

    # -- feedback

    def times(self) -> List[datetime]:
        span = (self.end - self.start).total_seconds()
        offsets = sorted(self.rng.random() * span for _ in range(self.records))
        return [self.start + timedelta(seconds=offset) for offset in offsets]

    def batches(self, size: int = BATCH) -> Iterator[Batch]:
        times = self.times()
        for first in range(0, self.records, size):
            batch = Batch()
            for index in range(first, min(first + size, self.records)):
                self._feedback(batch, index + 1, times[index])
            yield batch

    def _fill(self, template: str) -> str:
        # Only the placeholders the template has are drawn (a third of the generation time otherwise).
        return template.format_map(_Placeholders(self)) if "{" in template else template

    def _comment(self, topics: List[str], polarity: str) -> str:
        rng = self.rng
        parts = []
        for index, topic in enumerate(topics):
            # A mixed answer: the second topic is sometimes the other way ("lovely lamp but it arrived late").
            mood = polarity if index == 0 or rng.random() < 0.6 else ("-" if polarity == "+" else "+")
            parts.append(self._fill(rng.choice(PHRASES[topic][mood])))
        comment = (" but " if len(parts) > 1 and rng.random() < 0.5 else ". ").join(parts)
        tail = rng.choice(POSITIVE_TAILS if polarity == "+" else NEGATIVE_TAILS if polarity == "-" else ("",))
        return (comment + ". " + tail).strip() if tail else comment + "."

    def _feedback(self, batch: Batch, number: int, created: datetime) -> None:
        rng = self.rng
        guest = rng.random() < GUEST_SHARE
        customer_id = None if guest else rng.randint(1, self.customers)
        if customer_id is not None and rng.random() < 0.9:
            channel, sender = self.customer_channel[customer_id]
        else:
            channel = self.channel()
            sender = self._sender(channel)
        kind = "nps" if rng.random() < NPS_SHARE else "csat"
        score = self.nps() if kind == "nps" else self.csat()
        low = score <= (6 if kind == "nps" else 2)
        high = score >= (9 if kind == "nps" else 4)
        comment = topics = sentiment = None
        if rng.random() < COMMENT_SHARE:
            roll = rng.random()
            polarity = ("-" if roll < 0.85 else "0") if low else ("+" if roll < 0.85 else "0") if high else \
                ("0" if roll < 0.5 else "-" if roll < 0.8 else "+")
            count = 1 if rng.random() < 0.6 else 2
            topics = []
            while len(topics) < count:
                topic = self.topic()
                if topic not in topics:
                    topics.append(topic)
            comment = self._comment(topics, polarity)
            sentiment = {"+": "positive", "-": "negative", "0": "neutral"}[polarity]
        order_id = order_number = None
        if customer_id is not None and rng.random() < ORDER_SHARE:
            self.order_id += 1
            order_id, order_number = self.order_id, str(100000 + self.order_id)
            total = Decimal(rng.randint(15, 900)) + Decimal(rng.choice((0, 0, 50, 99))) / 100
            batch.orders.append({
                "id": order_id, "external_id": order_number, "customer_id": customer_id, "total": total,
                "refunded_total": Decimal(0), "currency": "USD", "status": "paid", "points_earned": int(total) * 5,
                "placed_at": created - timedelta(days=rng.uniform(4, 25)), "updated_at": None,
                "fulfilled_at": created - timedelta(days=rng.uniform(1, 3)), "shipping_address_hash": None,
                "ip_hash": None,
            })
        turns = self._turns(created, kind, score, comment, order_number)
        batch.transcripts.append({
            "id": number, "customer_id": customer_id, "order_id": order_id, "channel": channel, "sender_id": sender,
            "reason": "feedback", "turns": turns, "redacted": True, "created_at": created,
        })
        age = (self.end - created).days
        roll = rng.random()
        if age > 30:
            status = "done" if roll < 0.85 else "in_progress" if roll < 0.9 else "new"
        else:
            status = "new" if roll < 0.6 else "in_progress" if roll < 0.85 else "done"
        handoff_id = None
        if low and rng.random() < HANDOFF_SHARE:
            self.handoff_id += 1
            handoff_id = self.handoff_id
            batch.handoffs.append({
                "id": handoff_id, "customer_id": customer_id, "channel": channel,
                # Only the newest requests may be open; one open request per sender (a unique index).
                "sender_id": sender, "status": "closed", "last_messages": turns[-4:], "requested_at": created,
                "transcript_id": number, "closed_at": created + timedelta(hours=rng.uniform(1, 48)),
                "closed_by": rng.choice(MERCHANTS),
            })
        batch.feedback.append({
            "id": number, "customer_id": customer_id, "order_id": order_id, "transcript_id": number,
            "channel": channel, "sender_id": sender, "kind": kind, "score": score, "comment": comment,
            "sentiment": sentiment, "topics": topics or [], "search_text": search_text_for(comment, turns),
            "status": status, "goodwill_points": 0, "handoff_request_id": handoff_id, "created_at": created,
            "updated_at": created if status == "new" else created + timedelta(hours=rng.uniform(1, 72)),
        })
        batch.topics.extend({"feedback_id": number, "topic": topic} for topic in topics or [])
        if low and status != "new" and rng.random() < NOTE_SHARE:
            for hours in range(1, rng.choice((1, 1, 2)) + 1):
                batch.notes.append({
                    "feedback_id": number, "merchant_id": None, "author": rng.choice(MERCHANTS),
                    "text": rng.choice(("Called the customer, sending a replacement.",
                                        "Refund issued, apologised by email.",
                                        "Courier claim opened.", "Offered 200 goodwill points.",
                                        "Waiting for photos of the damage.")),
                    "created_at": created + timedelta(hours=hours * 3),
                })

    def _turns(self, created: datetime, kind: str, score: int, comment: Optional[str],
               order_number: Optional[str]) -> List[Dict[str, str]]:
        rng = self.rng
        target = rng.randint(8, 20)
        what = f"your order #{order_number}" if order_number else "your experience with us"
        question = (f"How was {what}? Tap 1-5." if kind == "csat"
                    else "How likely are you to recommend us to a friend, 0-10?")
        closing = [("bot", question), ("shopper", str(score)),
                   ("bot", "Thanks! What is the main reason for your score?"),
                   ("shopper", comment or rng.choice(("nothing really", "no", "all good", "skip"))),
                   ("bot", "Thank you, that helps us a lot." if score >= 3 else
                    "I'm sorry. Would you like to talk to a person from our team?")]
        opening = [("shopper", rng.choice(OPENERS)), ("bot", "Hi! How can I help you today?")]
        middle: List[Tuple[str, str]] = []
        while len(opening) + len(middle) + len(closing) + 2 <= target:
            pair = RARE_TURN if rng.random() < RARE_SHARE else rng.choice(EVERYDAY_TURNS)
            middle.extend((("shopper", self._fill(pair[0])), ("bot", self._fill(pair[1]))))
        if len(opening) + len(middle) + len(closing) < target:
            middle.append(("shopper", "ok"))
        chosen = opening + middle + closing
        moment = created - timedelta(seconds=40 * len(chosen))
        turns = []
        for role, words in chosen:
            moment += timedelta(seconds=rng.uniform(5, 70))
            turns.append({"role": role, "text": words, "at": moment.isoformat()})
        return turns


# ---------------------------------------------------------------------------------------------
# Seeding


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def seed_database(path: Path, records: int, customers: int, seed: int = SEED,
                  progress: Callable[[str], None] = log) -> Dict[str, Any]:
    """A fresh database at `path` with the generated store; the seed figures."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path)
    database = Database(sqlite_url(path))
    phases: Dict[str, float] = {}
    rows = {"customers": 0, "channel_identities": 0, "orders": 0, "transcripts": 0, "handoff_requests": 0,
            "feedback": 0, "feedback_topics": 0, "feedback_notes": 0}
    try:
        mark = time.perf_counter()
        database.create_schema()
        phases["schema"] = time.perf_counter() - mark
        generator = Generator(records, customers, seed)
        mark = time.perf_counter()
        tables = (("customers", Customer), ("identities", ChannelIdentity), ("orders", Order),
                  ("transcripts", Transcript), ("handoffs", HandoffRequest), ("feedback", Feedback),
                  ("topics", FeedbackTopic), ("notes", FeedbackNote))
        names = {"identities": "channel_identities", "handoffs": "handoff_requests", "topics": "feedback_topics",
                 "notes": "feedback_notes"}
        with database.engine.connect() as connection:
            # The load only: a crash halfway means seeding again, so no waiting for the disk on each commit.
            # (on the DBAPI connection: SQLite refuses it inside the transaction SQLAlchemy would begin)
            connection.connection.execute("PRAGMA synchronous=OFF")
            last_report = time.perf_counter()

            def load(batch: Batch) -> None:
                with connection.begin():
                    for attribute, model in tables:
                        values = getattr(batch, attribute)
                        if values:
                            connection.execute(insert(model.__table__), values)
                            rows[names.get(attribute, attribute)] += len(values)

            load(generator.customer_rows())
            for batch in generator.batches():
                load(batch)
                now = time.perf_counter()
                if now - last_report >= PROGRESS_EVERY_SECONDS or rows["feedback"] == records:
                    elapsed = now - mark
                    progress(f"seeding {rows['feedback']:,}/{records:,} feedback ({rows['feedback'] / records:.0%})"
                             f"  {elapsed:.1f} s  {rows['feedback'] / elapsed if elapsed else 0:,.0f} feedback/s")
                    last_report = now
            connection.connection.execute("PRAGMA synchronous=FULL")
        phases["load"] = time.perf_counter() - mark
        mark = time.perf_counter()
        with database.engine.connect() as connection:
            connection.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        phases["flush"] = time.perf_counter() - mark
    finally:
        database.dispose()
    seconds = time.perf_counter() - started
    total_rows = sum(rows.values())
    return {
        "seconds": round(seconds, 2), "phases_seconds": {name: round(value, 2) for name, value in phases.items()},
        "rows": rows, "rows_per_second": round(total_rows / phases["load"]) if phases.get("load") else None,
        "database_mib": round(path.stat().st_size / 2**20, 1),
    }


def add_owner(database: Database, password: str) -> None:
    """The console account the benchmark signs in with (replaced on every run)."""
    from bot import clock
    from bot.console.accounts import add_merchant

    with database.session(write=True) as session:
        session.execute(sqlalchemy.delete(Merchant).where(Merchant.email == OWNER_EMAIL))
        add_merchant(session, OWNER_EMAIL, "Bench Owner", "owner", password, clock.now())


# ---------------------------------------------------------------------------------------------
# What to request


@dataclass(frozen=True)
class Plan:
    """The URLs of each scenario, and how much of the data each filter or search matches."""

    scenarios: Dict[str, Dict[str, Any]]
    transcript_ids: List[int]
    export_window: Tuple[str, str]
    export_window_rows: int
    records: int


def _token(created_at: datetime, row_id: int) -> str:
    from bot.feedback.inbox import Cursor

    return Cursor(created_at, row_id).token


def _position(session: Any, offset: int) -> Tuple[datetime, int]:
    """The row at `offset` (0-based) in the inbox's order, newest first."""
    row = session.execute(
        select(Feedback.created_at, Feedback.id).order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(1).offset(offset)).one()
    return row.created_at, row.id


def plan(database: Database, requests: int, warm_up: int, export_rows: int, seed: int = SEED) -> Plan:
    from bot.feedback.inbox import InboxFilter, _conditions

    rng = random.Random(seed + 1)
    with database.session() as session:
        records = session.execute(select(func.count()).select_from(Feedback)).scalar_one()
        if records == 0:
            raise SystemExit("the database has no feedback: seed it first (run without --skip-seed)")

        def matches(params: Mapping[str, str]) -> int:
            conditions = _conditions(session, InboxFilter.from_params(params)[0])
            return int(session.execute(select(func.count()).select_from(Feedback).where(*conditions)).scalar_one())

        deep = min(DEEP_PAGE, max(2, math.ceil(records / PAGE_SIZE)))
        last = max(2, math.ceil(records / PAGE_SIZE))
        deep_cursor = _position(session, min(records - 1, (deep - 1) * PAGE_SIZE - 1))
        last_cursor = _position(session, min(records - 1, (last - 1) * PAGE_SIZE - 1))
        window_end = _position(session, 0)[0].date()
        window_start = _position(session, min(records, export_rows) - 1)[0].date()
        window = (window_start.isoformat(), window_end.isoformat())
        window_rows = matches({"from": window[0], "to": window[1]})
        scenarios: Dict[str, Dict[str, Any]] = {
            "inbox": {"title": "inbox, first page", "params": {}},
            "inbox_filtered": {"title": "inbox, sentiment=negative & topic=shipping",
                               "params": {"sentiment": "negative", "topic": "shipping"}},
            "search_common": {"title": f"search, common word “{COMMON_WORD}”", "params": {"q": COMMON_WORD}},
            "search_rare": {"title": f"search, rare word “{RARE_WORD}”", "params": {"q": RARE_WORD}},
            "deep_page": {"title": f"inbox, page {deep} (its link)",
                          "params": {"older": _token(*deep_cursor), "page": str(deep)}, "matches": records},
            "last_page": {"title": f"inbox, last page ({last}, its link)",
                          "params": {"older": _token(*last_cursor), "page": str(last)}, "matches": records},
        }
        for scenario in scenarios.values():
            scenario.setdefault("matches", matches(scenario["params"]))
            query = "&".join(f"{name}={value}" for name, value in scenario["params"].items())
            scenario["path"] = "/console/feedback" + (f"?{query}" if query else "")
        scenarios["transcript"] = {"title": "feedback beside its transcript (random ids)", "path": "/console/feedback/{id}",
                                   "params": {}, "matches": 1}
        ids = [rng.randint(1, records) for _ in range(requests + warm_up)]
    return Plan(scenarios, ids, window, window_rows, records)


# ---------------------------------------------------------------------------------------------
# The web app in a child process


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux: "5" to clear_refs); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Server:
    """`python -m bot web` on the benchmark database, its JSON log in a file."""

    def __init__(self, database_path: Path, data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log_offset = log_path.stat().st_size if log_path.exists() else 0
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": sqlite_url(database_path), "RAPPORT_DATA_DIR": str(data_dir),
            "WEB_PORT": str(self.port), "BIND_HOST": "127.0.0.1", "PUBLIC_BASE_URL": self.base,
            "LOYALTY_JOBS_INTERVAL_MINUTES": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
            "RAPPORT_ENV": "development", "PYTHONWARNINGS": "ignore",
        }
        for name in ("REDIS_URL", "STORE_API_TOKEN", "TELEGRAM_TOKEN", "INSTAGRAM_APP_SECRET"):
            env.pop(name, None)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bot", "web"], cwd=PROJECT_ROOT, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self, client: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the web app exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                async with client.get(self.base + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the web app did not answer within {SERVER_START_SECONDS:.0f} s:\n{self.log_tail()}")

    def new_log_events(self) -> List[Dict[str, Any]]:
        """The JSON log lines written since the last call."""
        self._log.flush()
        with self.log_path.open("rb") as handle:
            handle.seek(self.log_offset)
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        self.log_offset += complete
        events = []
        for line in data[:complete].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def sign_in(client: aiohttp.ClientSession, base: str, password: str) -> None:
    """Through the login form, like a browser: the form's token, the post, the session cookie."""
    async with client.get(base + "/console/login") as page:
        found = _CSRF.search(await page.text())
    if found is None:
        raise RuntimeError("the sign-in page has no CSRF token")
    form = {"email": OWNER_EMAIL, "password": password, "csrf_token": found.group(1), "next": "/console/feedback"}
    async with client.post(base + "/console/login", data=form, allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"sign-in failed with HTTP {response.status}")
    async with client.get(base + "/console/feedback", allow_redirects=False) as response:
        if response.status != 200:
            raise RuntimeError(f"the inbox answered HTTP {response.status} after signing in")


# ---------------------------------------------------------------------------------------------
# Measuring


def summary(latencies_ms: Sequence[float], server_ms: Sequence[float], errors: int) -> Dict[str, Any]:
    return {
        "count": len(latencies_ms), "errors": errors,
        "p50_ms": rounded(percentile(latencies_ms, 0.50)), "p95_ms": rounded(percentile(latencies_ms, 0.95)),
        "max_ms": rounded(max(latencies_ms) if latencies_ms else None),
        "server_p50_ms": rounded(percentile(server_ms, 0.50)), "server_p95_ms": rounded(percentile(server_ms, 0.95)),
        "server_max_ms": rounded(max(server_ms) if server_ms else None),
    }


def _server_durations(events: Sequence[Mapping[str, Any]], route: str, count: int) -> List[float]:
    found = [float(event["duration_ms"]) for event in events
             if event.get("event") == "http.request" and event.get("route") == route and "duration_ms" in event]
    return found[-count:] if count else []


async def measure_scenario(client: aiohttp.ClientSession, server: Server, name: str, scenario: Mapping[str, Any],
                           requests: int, warm_up: int, ids: Sequence[int]) -> Dict[str, Any]:
    latencies: List[float] = []
    errors = 0
    samples: List[str] = []
    server.new_log_events()
    for index in range(warm_up + requests):
        path = scenario["path"].replace("{id}", str(ids[index % len(ids)])) if name == "transcript" else scenario["path"]
        started = time.perf_counter()
        async with client.get(server.base + path, allow_redirects=False) as response:
            await response.read()
            status = response.status
        elapsed = (time.perf_counter() - started) * 1000
        if index >= warm_up:
            latencies.append(elapsed)
            if status != 200:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"HTTP {status} for {path}")
    route = "/console/feedback/{id}" if name == "transcript" else "/console/feedback"
    events = server.new_log_events()
    deadline = time.monotonic() + 5
    while len(_server_durations(events, route, warm_up + requests)) < warm_up + requests \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        events += server.new_log_events()
    result = summary(latencies, _server_durations(events, route, requests), errors)
    result.update({"title": scenario["title"], "path": scenario["path"], "matches": scenario["matches"]})
    if samples:
        result["error_samples"] = samples
    return result


class RssSampler:
    """VmRSS of a process every RSS_SAMPLE_SECONDS on a thread, keeping the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.highest = process_kib("VmRSS", pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.highest = max(self.highest, process_kib("VmRSS", self.pid))

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.highest = max(self.highest, process_kib("VmRSS", self.pid))


def count_csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


async def measure_export(client: aiohttp.ClientSession, server: Server, title: str, params: Mapping[str, str],
                         scratch: Path) -> Dict[str, Any]:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    path = "/console/feedback/export.csv" + (f"?{query}" if query else "")
    server.new_log_events()
    peak_reset = reset_peak(server.pid)
    before = process_kib("VmRSS", server.pid)
    size = 0
    first_byte: Optional[float] = None
    started = time.perf_counter()
    with RssSampler(server.pid) as sampler, scratch.open("wb") as sink:
        async with client.get(server.base + path, allow_redirects=False) as response:
            status = response.status
            async for chunk in response.content.iter_chunked(1 << 16):
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                sink.write(chunk)
                size += len(chunk)
    seconds = time.perf_counter() - started
    peak = max(sampler.highest, process_kib("VmHWM", server.pid) if peak_reset else 0)
    rows = count_csv_rows(scratch) if status == 200 else 0
    # The app logs the export once the last byte is written, which can be just after the client read it.
    events = server.new_log_events()
    deadline = time.monotonic() + 5
    while not _server_durations(events, "/console/feedback/export.csv", 1) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        events += server.new_log_events()
    logged = [event for event in events if event.get("event") == "console.feedback_export"]
    return {
        "title": title, "path": path, "status": status, "rows": rows, "bytes": size, "seconds": round(seconds, 2),
        "ttfb_ms": rounded(first_byte * 1000 if first_byte is not None else None),
        "mib_per_second": round(size / 2**20 / seconds, 1) if seconds else None,
        "rows_per_second": round(rows / seconds) if seconds else None,
        "server_ms": (_server_durations(events, "/console/feedback/export.csv", 1) or [None])[0],
        "server_rows": logged[-1].get("rows") if logged else None,
        "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round(max(0, peak - before) / 1024, 1), "peak_from_vmhwm": peak_reset,
    }


class Client:
    """A browser-like client (keeps cookies, also for 127.0.0.1) of one web app process, signed in."""

    def __init__(self, server: Server, password: str) -> None:
        self.server = server
        self.password = password
        self.session: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> aiohttp.ClientSession:
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_read=300))
        await self.server.wait_ready(self.session)
        await sign_in(self.session, self.server.base, self.password)
        return self.session

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.session is not None
        await self.session.close()


async def measure(config: "Config", the_plan: Plan, password: str) -> Dict[str, Any]:
    data_dir, log_path = config.db_path.parent / "console-data", config.db_path.parent / "console-server.log"
    log_path.unlink(missing_ok=True)
    # Other work on the machine slows every figure: the 1-minute load average is reported beside them.
    result: Dict[str, Any] = {"scenarios": {}, "exports": {}, "load_average": {"start": round(os.getloadavg()[0], 2)}}
    server = Server(config.db_path, data_dir, log_path)
    try:
        async with Client(server, password) as client:
            result["server"] = {"rss_start_mib": round(process_kib("VmRSS", server.pid) / 1024, 1)}
            log(f"web app pid {server.pid} on {server.base}, signed in as {OWNER_EMAIL}")
            for name, scenario in the_plan.scenarios.items():
                log(f"measuring {name}: {config.warm_up} warm-up + {config.requests} requests")
                result["scenarios"][name] = await measure_scenario(
                    client, server, name, scenario, config.requests, config.warm_up, the_plan.transcript_ids)
            result["server"]["rss_end_mib"] = round(process_kib("VmRSS", server.pid) / 1024, 1)
            result["server"]["peak_rss_mib"] = round(process_kib("VmHWM", server.pid) / 1024, 1)
    finally:
        server.stop()
    result["load_average"]["pages"] = round(os.getloadavg()[0], 2)

    # Each export in a fresh web app process (after a small export that loads what any export needs once),
    # so neither inherits the other's heap: what is compared is what the export itself costs.
    window = {"from": the_plan.export_window[0], "to": the_plan.export_window[1]}
    newest_day = {"from": window["to"], "to": window["to"]}
    exports = (
        ("window", f"{the_plan.export_window_rows:,} rows ({window['from']} to {window['to']})", window),
        ("all", f"all {the_plan.records:,} rows", {}),
    )
    with tempfile.TemporaryDirectory(prefix="bench-console-") as scratch_dir:
        scratch = Path(scratch_dir) / "export.csv"
        for name, title, params in exports:
            server = Server(config.db_path, data_dir, log_path)
            try:
                async with Client(server, password) as client:
                    warm = await measure_export(client, server, "warm-up", newest_day, scratch)
                    log(f"exporting {title} (web app pid {server.pid}, after a warm-up export of {warm['rows']} rows)")
                    stats = await measure_export(client, server, title, params, scratch)
                    stats["warm_up_rows"] = warm["rows"]
                    result["exports"][name] = stats
            finally:
                server.stop()
    result["load_average"]["end"] = round(os.getloadavg()[0], 2)
    return result


# ---------------------------------------------------------------------------------------------
# Report


def evaluate_targets(result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    for name, stats in (result.get("scenarios") or {}).items():
        value = stats.get("p95_ms")
        rows.append(target(f"{name} p95 ≤ {TARGET_P95_MS:g} ms", value, TARGET_P95_MS, "ms"))
    exports = result.get("exports") or {}
    if "window" in exports and "all" in exports:
        small, full = exports["window"]["rss_growth_mib"], exports["all"]["rss_growth_mib"]
        limit = 2 * small + 8
        rows.append(target(f"export RSS growth, all ≤ 2 × {exports['window']['rows']:,}-row export + 8 MiB "
                           f"(≤ {limit:.1f} MiB)", full, limit, "MiB"))
        complete = exports["all"]["rows"] == result.get("records") and exports["all"]["status"] == 200
        rows.append({"target": "export of all rows complete", "value": exports["all"]["rows"], "unit": "rows",
                     "result": "PASS" if complete else "MISS"})
    return rows


def format_report(report: Mapping[str, Any]) -> str:
    machine, dataset, seed = report["machine"], report["dataset"], report.get("seed") or {}
    lines = ["", "Machine"]
    lines.append(f"  nproc {machine['nproc']}, CPU {machine['cpu_model']}, memory {machine['memory_gib']} GiB")
    lines.append(f"  Python {machine['python']}, SQLite {machine['sqlite']}, SQLAlchemy {machine['sqlalchemy']}, "
                 f"aiohttp {machine['aiohttp']}")
    rows = dataset.get("rows") or {}
    lines.append(f"\nData: seed {dataset['seed']}, {dataset['records']:,} feedback with transcripts, "
                 f"{dataset['customers']:,} customers; {dataset.get('database_mib', '-')} MiB at {dataset['path']}")
    if rows:
        lines.append("  rows: " + ", ".join(f"{name} {count:,}" for name, count in rows.items()))
    if seed:
        phases = seed.get("phases_seconds") or {}
        lines.append(f"  seeding {formatted(seed.get('seconds'))} s (schema {formatted(phases.get('schema'))}, load "
                     f"{formatted(phases.get('load'))}, flush {formatted(phases.get('flush'))}), "
                     f"{formatted(seed.get('rows_per_second'), 0)} rows/s"
                     + ("  (carried over from the seeding run)" if seed.get("carried_over") else ""))

    lines.append("\nPages (one request at a time from a local client after a warm-up; wall time of the whole request;"
                 " server = the app's logged duration)")
    lines.append(f"  {'scenario':<15} {'matches':>8} {'count':>5} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} "
                 f"{'max ms':>8} {'server p50':>10} {'server p95':>10}  target")
    for name, stats in (report.get("scenarios") or {}).items():
        verdict = "PASS" if stats["p95_ms"] is not None and stats["p95_ms"] <= TARGET_P95_MS else "MISS"
        lines.append(
            f"  {name:<15} {stats['matches']:>8,} {stats['count']:>5} {stats['errors']:>6} {formatted(stats['p50_ms']):>8} "
            f"{formatted(stats['p95_ms']):>8} {formatted(stats['max_ms']):>8} {formatted(stats['server_p50_ms'], 0):>10} "
            f"{formatted(stats['server_p95_ms'], 0):>10}  p95 ≤ {TARGET_P95_MS:g} ms {verdict}")
        lines.append(f"  {'':<15} {stats['title']}: {stats['path']}")

    lines.append("\nCSV export (streamed; each in a fresh web app process after a small warm-up export; its RSS before → "
                 "peak during the export)")
    lines.append(f"  {'export':<8} {'rows':>8} {'MiB':>8} {'seconds':>8} {'TTFB ms':>8} {'rows/s':>8} {'MiB/s':>6} "
                 f"{'RSS before':>10} {'peak':>7} {'growth':>7}")
    for name, stats in (report.get("exports") or {}).items():
        lines.append(
            f"  {name:<8} {stats['rows']:>8,} {stats['bytes'] / 2**20:>8.1f} {stats['seconds']:>8.2f} "
            f"{formatted(stats['ttfb_ms']):>8} {formatted(stats['rows_per_second'], 0):>8} {formatted(stats['mib_per_second']):>6} "
            f"{stats['rss_before_mib']:>10.1f} {stats['rss_peak_mib']:>7.1f} {stats['rss_growth_mib']:>7.1f}"
            + ("" if stats["status"] == 200 else f"  HTTP {stats['status']}"))
        lines.append(f"  {'':<8} {stats['title']}")
    server = report.get("server") or {}
    if server:
        lines.append(f"  web app serving the pages: RSS {server.get('rss_start_mib')} MiB after sign-in, "
                     f"{server.get('rss_end_mib')} MiB after the last page, peak {server.get('peak_rss_mib')} MiB "
                     f"(the sign-in's argon2 hash included)")

    load = report.get("load_average") or {}
    if load:
        lines.append("  1-min load average (start → after the pages → after the exports): "
                     + " → ".join(f"{value:g}" for value in load.values()))

    lines.append("\nTargets")
    for row in report["targets"]:
        value = "-" if row["value"] is None else f"{row['value']:,} {row['unit']}"
        lines.append(f"  {row['target']:<72} {value:>14}  {row['result']}")
    lines.append(f"\ntotal time {report['total_seconds']:.0f} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


@dataclass(frozen=True)
class Config:
    records: int = DEFAULT_RECORDS
    customers: int = DEFAULT_CUSTOMERS
    requests: int = DEFAULT_REQUESTS
    warm_up: int = DEFAULT_WARM_UP
    export_rows: int = DEFAULT_EXPORT_ROWS
    db_path: Path = DB_PATH
    skip_seed: bool = False
    seed: int = SEED


def dataset_counts(database: Database) -> Dict[str, int]:
    with database.session() as session:
        return {
            "feedback": session.execute(select(func.count()).select_from(Feedback)).scalar_one(),
            "transcripts": session.execute(select(func.count()).select_from(Transcript)).scalar_one(),
            "customers": session.execute(select(func.count()).select_from(Customer)).scalar_one(),
            "orders": session.execute(select(func.count()).select_from(Order)).scalar_one(),
            "feedback_topics": session.execute(select(func.count()).select_from(FeedbackTopic)).scalar_one(),
        }


def run(config: Config, json_path: Optional[Path] = JSON_PATH) -> Dict[str, Any]:
    started = time.perf_counter()
    machine = describe_machine(("aiohttp",), sqlite=sqlite3.sqlite_version, sqlalchemy=sqlalchemy.__version__)
    seed_result: Optional[Dict[str, Any]] = None
    if not config.skip_seed:
        log(f"seeding {config.records:,} feedback with transcripts and {config.customers:,} customers "
            f"into {config.db_path}")
        seed_result = seed_database(config.db_path, config.records, config.customers, config.seed)
        log(f"seeded in {seed_result['seconds']:.1f} s ({seed_result['database_mib']} MiB)")
    elif not config.db_path.is_file():
        raise SystemExit(f"--skip-seed: there is no database at {config.db_path}")
    elif json_path is not None and json_path.is_file():
        try:
            previous = json.loads(json_path.read_text()).get("seed")
            seed_result = dict(previous, carried_over=True) if previous else None
        except ValueError:
            seed_result = None
    database = Database(sqlite_url(config.db_path))
    password = secrets.token_urlsafe(18)
    try:
        database.create_schema()  # an older database from --skip-seed gets the current schema
        add_owner(database, password)
        the_plan = plan(database, config.requests, config.warm_up, config.export_rows, config.seed)
        counts = dataset_counts(database)
    finally:
        database.dispose()
    measured = asyncio.run(measure(config, the_plan, password))
    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "dataset": {"seed": config.seed, "records": counts["feedback"], "customers": counts["customers"],
                    "path": str(config.db_path), "rows": counts,
                    "database_mib": round(config.db_path.stat().st_size / 2**20, 1)},
        "records": counts["feedback"],
        "seed": seed_result,
        **measured,
    }
    report["targets"] = evaluate_targets(report)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(json_path, report)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console",
        description="Seed 100,000 feedback with transcripts on SQLite, start the web app and time the console's "
                    "inbox, search, transcript pages and CSV export.")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, metavar="N",
                        help=f"feedback to generate (default: {DEFAULT_RECORDS:,})")
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, metavar="N",
                        help=f"customers to generate (default: {DEFAULT_CUSTOMERS:,})")
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, metavar="N",
                        help=f"measured requests per scenario (default: {DEFAULT_REQUESTS})")
    parser.add_argument("--warm-up", type=int, default=DEFAULT_WARM_UP, metavar="N",
                        help=f"unmeasured requests first (default: {DEFAULT_WARM_UP})")
    parser.add_argument("--export-rows", type=int, default=DEFAULT_EXPORT_ROWS, metavar="N",
                        help=f"about how many rows the smaller export has (default: {DEFAULT_EXPORT_ROWS:,})")
    parser.add_argument("--db", type=Path, default=DB_PATH, metavar="PATH",
                        help=f"SQLite file (default: {DB_PATH.relative_to(PROJECT_ROOT)}; replaced when seeding)")
    parser.add_argument("--skip-seed", action="store_true", help="measure the existing database again")
    parser.add_argument("--json", type=Path, default=JSON_PATH, metavar="PATH",
                        help=f"where to write the results (default: {JSON_PATH.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.records < 1 or args.customers < 1 or args.requests < 1 or args.warm_up < 0 or args.export_rows < 1:
        parser.error("--records, --customers, --requests and --export-rows must be at least 1, --warm-up at least 0")
    config = Config(records=args.records, customers=args.customers, requests=args.requests, warm_up=args.warm_up,
                    export_rows=args.export_rows, db_path=args.db.resolve(), skip_seed=args.skip_seed)
    report = run(config, args.json)
    failed = sum(stats["errors"] for stats in report["scenarios"].values()) + sum(
        1 for stats in report["exports"].values() if stats["status"] != 200)
    return finish(report, format_report(report), args.json, args.check, failed)


if __name__ == "__main__":
    raise SystemExit(main())
