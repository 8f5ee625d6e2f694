"""Conversation snapshots kept with feedback and handoff requests, and the redaction of what they store.

`redact` masks, in this order:
- email addresses → "[email]";
- card-like numbers: 13–19 digits, optionally grouped by spaces or dashes, that pass the Luhn check
  → "[card]" (a tracking or order number that fails the check is kept);
- phone numbers: 9–15 digits, optionally with a leading +, a (area code) and spaces, dots or dashes
  between groups → "[phone]". Shorter numbers (order #1042, 12 pieces, $189.00, 2026-06-15) are kept.

`store_transcript` writes one immutable Transcript row (bot/models/feedback.py): turns oldest first, each
{"role": "shopper"|"bot", "text", "at": ISO 8601 UTC}, redacted when asked. A bot turn keeps what the shopper
saw beside its text: "buttons" [{"title", "url"?}] (quick replies; a link button's address) and "cards"
[{"title", "subtitle"?, "image_url"?, "buttons"?}] (product cards), each present only when there were some.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional

from sqlalchemy.orm import Session

from bot.models import Transcript

REASONS = ("feedback", "handoff")
ROLES = ("shopper", "bot")
MAX_TURN_CHARS = 4000  # one message as stored (Telegram's limit is 4096; the widget's body limit is smaller)
MAX_BUTTONS = 13  # Telegram's and Instagram's most quick replies under one message
MAX_CARDS = 10  # Instagram's most generic-template elements
MAX_LABEL_CHARS = 200  # a button's title, a card's title or subtitle
MAX_URL_CHARS = 2000

EMAIL_MASK, CARD_MASK, PHONE_MASK = "[email]", "[card]", "[phone]"

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
# Digits in groups separated by one space or dash; the count is checked afterwards.
_CARD = re.compile(r"(?<![\w+])\d(?:[ -]?\d){12,18}(?!\w)")
_PHONE = re.compile(
    r"(?<![\w+/.,])"  # not inside a word, a decimal, a date like 15/06 or a price like 1,234
    r"(?:\+\d{1,3}[ .-]?)?"  # country code
    r"(?:\(\d{1,5}\)[ .-]?)?"  # (area code)
    r"\d{1,5}(?:[ .-]?\d{1,5}){1,5}"  # groups
    r"(?![\w/])(?!\.\d)(?!,\d)"
)


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of a digit string (the check digit of payment card numbers)."""
    digits = [int(char) for char in number]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return bool(digits) and total % 10 == 0


def _card(match: "re.Match[str]") -> str:
    digits = _digits(match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return CARD_MASK
    return match.group(0)


def _phone(match: "re.Match[str]") -> str:
    text = match.group(0)
    count = len(_digits(text))
    if _is_date(text):
        return text
    if 9 <= count <= 15 or (text.startswith("+") and 7 <= count <= 15):
        return PHONE_MASK
    return text


_DATE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4}")


def _is_date(text: str) -> bool:
    return _DATE.fullmatch(text.strip()) is not None


def redact(text: str) -> str:
    """`text` with emails, Luhn-valid card numbers and phone numbers masked."""
    if not text:
        return text
    text = _EMAIL.sub(EMAIL_MASK, text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def clean_turns(turns: Iterable[Mapping[str, object]], *, redact_text: bool,
                max_turns: Optional[int] = None) -> List[Dict[str, Any]]:
    """Turns as stored: the last `max_turns`, each {"role", "text", "at"} with a known role, text (cut at
    MAX_TURN_CHARS, redacted when asked) and `at` as ISO 8601 UTC, and a bot turn's buttons and cards. A
    turn with neither text nor buttons nor cards is left out."""
    cleaned: List[Dict[str, Any]] = []
    for turn in turns:
        role = str(turn.get("role") or "")
        if role not in ROLES:
            raise ValueError(f"a transcript turn's role must be one of {', '.join(ROLES)}, not {role!r}")
        text = str(turn.get("text") or "").strip()[:MAX_TURN_CHARS]
        buttons = _buttons(turn.get("buttons"), redact_text)
        cards = _cards(turn.get("cards"), redact_text)
        if not (text or buttons or cards):
            continue
        stored: Dict[str, Any] = {"role": role, "text": redact(text) if redact_text else text,
                                  "at": _iso_utc(turn.get("at"))}
        if buttons:
            stored["buttons"] = buttons
        if cards:
            stored["cards"] = cards
        cleaned.append(stored)
    if max_turns is not None:
        cleaned = cleaned[-max_turns:] if max_turns > 0 else []
    return cleaned


def _label(value: object, redact_text: bool) -> str:
    text = " ".join(str(value or "").split())[:MAX_LABEL_CHARS]
    return redact(text) if redact_text else text


def _url(value: object) -> Optional[str]:
    """A web address a button or card pointed to; anything but http(s) is not kept."""
    url = str(value or "").strip()
    return url if url.lower().startswith(("https://", "http://")) and len(url) <= MAX_URL_CHARS else None


def _buttons(value: object, redact_text: bool) -> List[Dict[str, str]]:
    """Buttons as the shopper saw them: their titles (a press came back as the title, not the payload)
    and a link button's address."""
    kept: List[Dict[str, str]] = []
    for button in value if isinstance(value, list) else []:
        title = _label(button.get("title"), redact_text) if isinstance(button, Mapping) else ""
        if not title:
            continue
        url = _url(button.get("url"))
        kept.append({"title": title, **({"url": url} if url else {})})
    return kept[:MAX_BUTTONS]


def _cards(value: object, redact_text: bool) -> List[Dict[str, Any]]:
    """Product cards (channels/render.py's shape): title, subtitle, picture and buttons."""
    kept: List[Dict[str, Any]] = []
    for card in value if isinstance(value, list) else []:
        if not isinstance(card, Mapping):
            continue
        title = _label(card.get("title"), redact_text)
        if not title:
            continue
        stored: Dict[str, Any] = {"title": title}
        subtitle = _label(card.get("subtitle"), redact_text)
        image_url = _url(card.get("image_url"))
        buttons = _buttons(card.get("buttons"), redact_text)
        if subtitle:
            stored["subtitle"] = subtitle
        if image_url:
            stored["image_url"] = image_url
        if buttons:
            stored["buttons"] = buttons
        kept.append(stored)
    return kept[:MAX_CARDS]


def _iso_utc(value: object) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        raise ValueError(f"a transcript turn needs its time ('at'), not {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def store_transcript(
    session: Session,
    *,
    channel: str,
    sender_id: str,
    customer_id: Optional[int],
    order_id: Optional[int],
    reason: str,
    turns: Iterable[Mapping[str, object]],
    redact: bool,
    now: datetime,
    max_turns: Optional[int] = None,
    language: Optional[str] = None,
) -> Transcript:
    """Write one snapshot of a conversation; it is never changed afterwards (only erased with its customer).

    `language`: the language the shopper wrote in when it was not English (the slot shopper_language).
    """
    if reason not in REASONS:
        raise ValueError(f"a transcript's reason must be one of {', '.join(REASONS)}, not {reason!r}")
    transcript = Transcript(
        customer_id=customer_id,
        order_id=order_id,
        channel=channel,
        sender_id=sender_id,
        reason=reason,
        turns=clean_turns(turns, redact_text=redact, max_turns=max_turns),
        redacted=bool(redact),
        created_at=now,
        language=language or None,
    )
    session.add(transcript)
    session.flush()
    return transcript
