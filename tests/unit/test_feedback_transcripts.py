"""Conversation snapshots (bot/feedback/transcripts.py): what redaction masks and what it leaves, and the
stored Transcript rows (immutable, trimmed, redacted on request) on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.feedback.transcripts import luhn_valid, redact, store_transcript
from bot.models import Transcript

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("mail me at jane.doe+shop@example.co.uk please", "mail me at [email] please"),
    ("JANE_DOE@Example.COM wrote", "[email] wrote"),
    ("call +44 20 7946 0958 today", "call [phone] today"),
    ("or (555) 123-4567", "or [phone]"),
    ("555.123.4567 after six", "[phone] after six"),
    ("my mobile is 07700 900123", "my mobile is [phone]"),
    ("+33612345678", "[phone]"),
    ("card 4111 1111 1111 1111 exp 12/27", "card [card] exp 12/27"),
    ("4111-1111-1111-1111", "[card]"),
    ("4111111111111111", "[card]"),
    ("amex 3782 822463 10005", "amex [card]"),
    ("a 19-digit 6011 0000 0000 0000 001 card", "a 19-digit [card] card"),
])
def test_emails_phone_numbers_and_card_numbers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "order #1042 arrived on 2026-06-15",
    "12 pieces for $189.00, 1,598 points",
    "delivered 15/06/2026 at 10.30, 3-4 days",
    "4111 1111 1111 1112 is not a card number (Luhn)",
    "tracking 9400111202555842761234",
    "room 12 34 56",
    "",
])
def test_numbers_that_are_not_contact_or_card_details_are_kept(text: str) -> None:
    assert redact(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112") and not luhn_valid("")


TURNS = [
    {"role": "shopper", "text": "hi, I'm jane@example.com", "at": "2026-06-15T11:58:00+00:00"},
    {"role": "bot", "text": "Hi Jane!", "at": datetime(2026, 6, 15, 11, 58, 1, tzinfo=timezone.utc)},
    {"role": "shopper", "text": "  ", "at": "2026-06-15T11:58:30Z"},  # nothing said: left out
    {"role": "shopper", "text": "call me on +44 7700 900123", "at": "2026-06-15T11:59:00Z"},
]


def test_a_transcript_is_stored_redacted_in_utc_and_can_never_change(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        transcript = store_transcript(session, channel="telegram", sender_id="555", customer_id=None, order_id=None,
                                      reason="feedback", turns=TURNS, redact=True, now=NOW)
        transcript_id = transcript.id
    with any_db.session() as session:
        stored = session.get(Transcript, transcript_id)
        assert (stored.channel, stored.sender_id, stored.reason, stored.redacted) == ("telegram", "555", "feedback", True)
        assert stored.created_at == NOW
        assert stored.turns == [
            {"role": "shopper", "text": "hi, I'm [email]", "at": "2026-06-15T11:58:00+00:00"},
            {"role": "bot", "text": "Hi Jane!", "at": "2026-06-15T11:58:01+00:00"},
            {"role": "shopper", "text": "call me on [phone]", "at": "2026-06-15T11:59:00+00:00"},
        ]
    with pytest.raises(ValueError, match="immutable"):
        with any_db.session(write=True) as session:
            session.get(Transcript, transcript_id).reason = "handoff"
            session.flush()
    with any_db.session() as session:
        assert session.get(Transcript, transcript_id).reason == "feedback"


def test_without_redaction_the_text_is_kept_and_only_the_last_turns_are_stored(sqlite_db: Database) -> None:
    with sqlite_db.session(write=True) as session:
        transcript = store_transcript(session, channel="rest", sender_id="alice", customer_id=None, order_id=None,
                                      reason="handoff", turns=TURNS, redact=False, now=NOW, max_turns=2)
        assert transcript.redacted is False
        assert [turn["text"] for turn in transcript.turns] == ["Hi Jane!", "call me on +44 7700 900123"]


@pytest.mark.parametrize("change, message", [
    ({"reason": "chat"}, "reason"),
    ({"turns": [{"role": "agent", "text": "hi", "at": "2026-06-15T12:00:00Z"}]}, "role"),
    ({"turns": [{"role": "bot", "text": "hi"}]}, "time"),
])
def test_bad_snapshots_are_refused_and_nothing_is_written(sqlite_db: Database, change: dict, message: str) -> None:
    arguments = dict(channel="rest", sender_id="alice", customer_id=None, order_id=None, reason="feedback",
                     turns=TURNS, redact=True, now=NOW)
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        with sqlite_db.session(write=True) as session:
            store_transcript(session, **arguments)
    with sqlite_db.session() as session:
        assert session.execute(select(Transcript)).first() is None
