"""Photos and videos sent in chat: read from either channel's metadata, kept once, approved or rejected by the
merchant, and an approval pays earning.user_content once."""
from __future__ import annotations

from typing import Any, Optional

import pytest
from sqlalchemy import func, select

from bot.advocacy.content import (
    MAX_CAPTION_CHARS, SubmittedMedia, keep_submission, media_from_metadata, moderate_submission, telegram_file_id,
)
from bot.advocacy.moderation import ModerationError
from bot.db import Database
from bot.identity import create_customer
from bot.loyalty.ledger import balance
from bot.models import ContentSubmission, LedgerEntry, OutboundMessage

CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=abc"


@pytest.mark.parametrize("kind", ["photo", "video"])
def test_telegram_and_instagram_media_from_metadata(kind: str) -> None:
    telegram = {"content": {"kind": kind, "channel": "telegram", "telegram_file_id": "BAACAgIAAxkB",
                            "file_size": 12345, "mime_type": "video/mp4", "caption": "  unboxing  "}}
    assert media_from_metadata(telegram, "telegram", "5001") == SubmittedMedia(
        "telegram", "5001", kind, "telegram:BAACAgIAAxkB", [], "unboxing")
    instagram = {"content": {"kind": kind, "channel": "instagram", "urls": [CDN, "http://insecure", CDN + "2"]}}
    media = media_from_metadata(instagram, "instagram", "1784")
    assert media is not None
    assert (media.channel, media.sender_id, media.kind, media.urls, media.caption) == (
        "instagram", "1784", kind, [CDN, CDN + "2"], "")
    assert media.reference.startswith("sha256:") and len(media.reference) == len("sha256:") + 64
    assert media_from_metadata(instagram, "instagram", "other").reference == media.reference  # same media, same key


@pytest.mark.parametrize("metadata", [
    None, "photo", [], {}, {"content": "photo"}, {"content": {"kind": "audio", "telegram_file_id": "x"}},
    {"content": {"kind": "photo"}}, {"content": {"kind": "video", "telegram_file_id": "x" * 300}},
    {"content": {"kind": "video", "telegram_file_id": ""}}, {"content": {"kind": "photo", "urls": "https://x"}},
    {"content": {"kind": "photo", "urls": ["http://insecure", 5, None]}}, {"content": {"kind": "video", "urls": []}},
])
def test_junk_metadata_is_no_media(metadata: Any) -> None:
    assert media_from_metadata(metadata, "telegram", "1") is None


def test_captions_are_cut() -> None:
    long = {"content": {"kind": "photo", "telegram_file_id": "a", "caption": "x" * 5000}}
    assert len(media_from_metadata(long, "telegram", "1").caption) == MAX_CAPTION_CHARS


def _media(kind: str = "video", file_id: str = "BAACAgIAAxkB") -> SubmittedMedia:
    return SubmittedMedia("telegram", "5001", kind, f"telegram:{file_id}", [], "unboxing")


def _keep(db: Database, media: SubmittedMedia, customer_id: Optional[int], clock) -> int:
    with db.session(write=True) as session:
        return keep_submission(session, media, customer_id, clock.current)[0].id


def _customer(db: Database) -> int:
    with db.session(write=True) as session:
        return create_customer(session, "ann@example.com", "Ann").id


def test_a_submission_is_kept_once_per_channel_and_reference(any_db: Database, clock) -> None:
    ann = _customer(any_db)
    with any_db.session(write=True) as session:
        first, created = keep_submission(session, _media(), ann, clock.current)
        assert created and (first.kind, first.status, first.customer_id, first.points_awarded) == ("video", "pending", ann, 0)
        assert telegram_file_id(first) == "BAACAgIAAxkB"
        again, created = keep_submission(session, _media(), ann, clock.current)
        assert (again.id, created) == (first.id, False)
        other, created = keep_submission(session, _media(file_id="other"), None, clock.current)
        assert created and other.id != first.id and other.customer_id is None
    with any_db.session() as session:
        assert session.execute(select(func.count(ContentSubmission.id))).scalar_one() == 2


def test_approval_pays_user_content_once_and_tells_the_shopper(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    video, photo = _keep(sqlite_db, _media("video"), ann, clock), _keep(sqlite_db, _media("photo", "ph"), ann, clock)
    with sqlite_db.session(write=True) as session:
        result = moderate_submission(session, program, video, approve=True, actor="mia", note="great angle",
                                     now=clock.current)
        assert (result.status, result.points_awarded, result.customer_id) == ("approved", 100, ann)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ModerationError, match=f"submission #{video} is already approved"):
            moderate_submission(session, program, video, approve=True, actor="mia", note=None, now=clock.current)
        moderate_submission(session, program, photo, approve=True, actor="mia", note=None, now=clock.current)
        assert balance(session, ann) == 200
        submission = session.get(ContentSubmission, video)
        assert (submission.moderated_by, submission.moderation_note, submission.points_awarded) == (
            "mia", "great angle", 100)
        ledger = session.execute(select(LedgerEntry.idempotency_key).order_by(LedgerEntry.id)).scalars().all()
        assert ledger == [f"content:{video}", f"content:{photo}"]
        texts = session.execute(select(OutboundMessage.kind, OutboundMessage.text).order_by(OutboundMessage.id)).all()
    assert [tuple(row) for row in texts] == [
        ("content_approved", "Thanks for your video! Our team approved it and added 100 points to your account."),
        ("content_approved", "Thanks for your photo! Our team approved it and added 100 points to your account."),
    ]


def test_rejection_tells_the_reason_and_guests_get_nothing(sqlite_db: Database, program, clock) -> None:
    ann = _customer(sqlite_db)
    mine, guest = _keep(sqlite_db, _media("photo"), ann, clock), _keep(sqlite_db, _media("photo", "g"), None, clock)
    with sqlite_db.session(write=True) as session:
        with pytest.raises(ModerationError, match="needs a reason"):
            moderate_submission(session, program, mine, approve=False, actor="mia", note=None, now=clock.current)
        result = moderate_submission(session, program, mine, approve=False, actor="mia",
                                     note="We can't see our product in it", now=clock.current)
        assert (result.status, result.points_awarded) == ("rejected", 0)
        assert moderate_submission(session, program, guest, approve=True, actor="mia", note=None,
                                   now=clock.current).points_awarded == 0
        assert balance(session, ann) == 0
        assert session.execute(select(func.count(LedgerEntry.id))).scalar_one() == 0
        texts = session.execute(select(OutboundMessage.text)).scalars().all()
    assert texts == ["Thanks for sending us your photo. We couldn't use it: We can't see our product in it."]
