"""Photos shoppers send in chat, kept for the merchant's review (user-generated content).

The channels put what the platform gave into the message metadata, which only they can set:
  Telegram  {"content": {"kind": "photo", "channel": "telegram", "telegram_file_id": "…", "caption": "…"}}
  Instagram {"content": {"kind": "photo", "channel": "instagram", "urls": ["https://…"], "caption": "…"}}
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, List, Mapping, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import ContentSubmission

MAX_CAPTION_CHARS = 2000
MAX_URLS = 10


@dataclass(frozen=True)
class SubmittedPhoto:
    channel: str
    sender_id: str
    reference: str
    urls: List[str]
    caption: str


def photo_from_metadata(metadata: Any, channel: str, sender_id: str) -> Optional[SubmittedPhoto]:
    """The photo a channel described in a message's metadata, or None when there is no usable one."""
    content = metadata.get("content") if isinstance(metadata, Mapping) else None
    if not isinstance(content, Mapping) or content.get("kind") != "photo":
        return None
    caption = content.get("caption") if isinstance(content.get("caption"), str) else ""
    caption = caption.strip()[:MAX_CAPTION_CHARS]
    file_id = content.get("telegram_file_id")
    if isinstance(file_id, str) and 0 < len(file_id) <= 255:
        return SubmittedPhoto(channel, sender_id, f"telegram:{file_id}", [], caption)
    urls = [url for url in content.get("urls") or [] if isinstance(url, str) and url.startswith("https://")]
    if urls and isinstance(content.get("urls"), list):
        urls = urls[:MAX_URLS]
        # CDN URLs run to hundreds of characters: the key is their hash, the URLs are kept in full.
        digest = hashlib.sha256("\n".join(urls).encode("utf-8")).hexdigest()
        return SubmittedPhoto(channel, sender_id, f"sha256:{digest}", urls, caption)
    return None


def keep_photo(
    session: Session, photo: SubmittedPhoto, customer_id: Optional[int], now: datetime
) -> Tuple[ContentSubmission, bool]:
    """Store the photo for review; (submission, created). The same photo delivered again is the same row."""
    existing = _find(session, photo)
    if existing is not None:
        return existing, False
    submission = ContentSubmission(
        channel=photo.channel, sender_id=photo.sender_id, customer_id=customer_id, kind="photo",
        reference=photo.reference, urls=photo.urls, caption=photo.caption, status="pending", created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(submission)
            session.flush()
    except IntegrityError:  # a concurrent delivery of the same photo won
        found = _find(session, photo)
        assert found is not None
        return found, False
    return submission, True


def _find(session: Session, photo: SubmittedPhoto) -> Optional[ContentSubmission]:
    return session.execute(
        select(ContentSubmission).where(
            ContentSubmission.channel == photo.channel, ContentSubmission.reference == photo.reference
        )
    ).scalar_one_or_none()
