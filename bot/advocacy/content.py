"""Photos and videos shoppers send in chat, kept for the merchant's approval (user-generated content).

The channels put what the platform gave into the message metadata, which only they can set:
  Telegram  {"content": {"kind": "photo"|"video", "channel": "telegram", "telegram_file_id": "…",
                         "file_size": 12345, "mime_type": "video/mp4", "caption": "…"}}
  Instagram {"content": {"kind": "photo"|"video", "channel": "instagram", "urls": ["https://…"], "caption": "…"}}
An approved submission earns the program's earning.user_content points once.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, List, Mapping, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.advocacy.moderation import ModerationResult, moderate, reason_sentence
from bot.loyalty.earning import Credit, credit_for
from bot.loyalty.program import Program
from bot.models import ContentSubmission

MAX_CAPTION_CHARS = 2000
MAX_URLS = 10
MAX_FILE_ID_CHARS = 255
MEDIA_KINDS = ("photo", "video")


@dataclass(frozen=True)
class SubmittedMedia:
    channel: str
    sender_id: str
    kind: str  # photo | video
    reference: str  # "telegram:<file_id>" or "sha256:<hash of the URLs>": the same media gives the same reference
    urls: List[str]
    caption: str


def media_from_metadata(metadata: Any, channel: str, sender_id: str) -> Optional[SubmittedMedia]:
    """The photo or video a channel described in a message's metadata, or None when there is no usable one."""
    content = metadata.get("content") if isinstance(metadata, Mapping) else None
    if not isinstance(content, Mapping) or content.get("kind") not in MEDIA_KINDS:
        return None
    kind = str(content["kind"])
    caption = content.get("caption") if isinstance(content.get("caption"), str) else ""
    caption = caption.strip()[:MAX_CAPTION_CHARS]
    file_id = content.get("telegram_file_id")
    if isinstance(file_id, str) and 0 < len(file_id) <= MAX_FILE_ID_CHARS:
        return SubmittedMedia(channel, sender_id, kind, f"telegram:{file_id}", [], caption)
    raw_urls = content.get("urls")
    if not isinstance(raw_urls, list):
        return None
    urls = [url for url in raw_urls if isinstance(url, str) and url.startswith("https://")][:MAX_URLS]
    if not urls:
        return None
    # CDN URLs run to hundreds of characters: the key is their hash, the URLs are kept in full.
    digest = hashlib.sha256("\n".join(urls).encode("utf-8")).hexdigest()
    return SubmittedMedia(channel, sender_id, kind, f"sha256:{digest}", urls, caption)


def keep_submission(
    session: Session, media: SubmittedMedia, customer_id: Optional[int], now: datetime
) -> Tuple[ContentSubmission, bool]:
    """Store the media for review; (submission, created). The same media delivered again is the same row."""
    existing = _find(session, media)
    if existing is not None:
        return existing, False
    submission = ContentSubmission(
        channel=media.channel, sender_id=media.sender_id, customer_id=customer_id, kind=media.kind,
        reference=media.reference, urls=media.urls, caption=media.caption, status="pending", created_at=now,
        points_awarded=0,
    )
    try:
        with session.begin_nested():
            session.add(submission)
            session.flush()
    except IntegrityError:  # a concurrent delivery of the same media won
        found = _find(session, media)
        assert found is not None
        return found, False
    return submission, True


def moderate_submission(
    session: Session, program: Program, submission_id: int, *, approve: bool, actor: str, note: Optional[str],
    now: datetime,
) -> ModerationResult:
    """Approve (pays earning.user_content once) or reject (with the reason the shopper is told) a submission."""
    return moderate(session, program, ContentSubmission, submission_id, what="content", approve=approve,
                    actor=actor, note=note, now=now, credit_of=lambda item: _credit(program, item, now),
                    message_of=_message)


def telegram_file_id(submission: ContentSubmission) -> Optional[str]:
    """The Telegram file id a submission can be fetched with (None for Instagram media, which has URLs)."""
    reference = submission.reference or ""
    return reference[len("telegram:"):] if reference.startswith("telegram:") else None


def _credit(program: Program, submission: ContentSubmission, now: datetime) -> Credit:
    return credit_for(program, submission.customer_id, "user_content", str(submission.id), now)


def _message(submission: ContentSubmission, approved: bool, points: int, note: Optional[str]) -> str:
    kind = submission.kind if submission.kind in MEDIA_KINDS else "photo"
    if not approved:
        return f"Thanks for sending us your {kind}. We couldn't use it: {reason_sentence(note)}"
    if points:
        return f"Thanks for your {kind}! Our team approved it and added {points:,} points to your account."
    return f"Thanks for your {kind}! Our team approved it."


def _find(session: Session, media: SubmittedMedia) -> Optional[ContentSubmission]:
    return session.execute(
        select(ContentSubmission).where(
            ContentSubmission.channel == media.channel, ContentSubmission.reference == media.reference
        )
    ).scalar_one_or_none()
