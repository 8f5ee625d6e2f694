"""Transcripts as the shopper saw them, for every console view: each turn's text with the buttons (quick
replies) and product cards the bot sent with it, and every reward and friend code masked but its last 4
(bot/checkout.py mask_codes_in). The feedback page, the handoff page (the conversation before the shopper
asked and the live messages after), the customer page's conversations and the handoff queue's first words
all show transcripts through this module, and the templates through templates/_transcript.html."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional, Tuple

from bot.checkout import mask_codes_in

SHOPPER, BOT = "shopper", "bot"


@dataclass(frozen=True)
class ShownButton:
    title: str
    url: Optional[str] = None  # a link button: where it led


@dataclass(frozen=True)
class ShownCard:
    title: str
    subtitle: str = ""
    image_url: Optional[str] = None
    buttons: Tuple[ShownButton, ...] = ()


@dataclass(frozen=True)
class ShownTurn:
    role: str  # shopper | bot
    text: str
    at: Optional[datetime]
    buttons: Tuple[ShownButton, ...] = ()
    cards: Tuple[ShownCard, ...] = field(default_factory=tuple)


def shown_turns(stored: Any) -> List[ShownTurn]:
    """A stored transcript's turns (Transcript.turns, HandoffRequest.last_messages, or Turn objects of the
    feedback inbox) as the console shows them: codes masked, buttons and cards kept. A role other than
    shopper is shown as the bot's; anything unreadable is left out rather than failing the page."""
    shown: List[ShownTurn] = []
    for turn in stored if isinstance(stored, (list, tuple)) else []:
        value = turn if isinstance(turn, Mapping) else getattr(turn, "__dict__", None)
        if not isinstance(value, Mapping):
            continue
        buttons, cards = _buttons(value.get("buttons")), _cards(value.get("cards"))
        text = masked(value.get("text"))
        if not (text or buttons or cards):
            continue
        shown.append(ShownTurn(SHOPPER if value.get("role") == SHOPPER else BOT, text, _moment(value.get("at")),
                               buttons, cards))
    return shown


def masked(text: Any) -> str:
    """Any text a transcript view shows (a message, a reason, an agent's reply): codes masked."""
    return mask_codes_in(str(text)) if text else ""


def _buttons(value: Any) -> Tuple[ShownButton, ...]:
    return tuple(ShownButton(masked(button.get("title")), _link(button.get("url")))
                 for button in value if isinstance(button, Mapping) and button.get("title")) \
        if isinstance(value, (list, tuple)) else ()


def _cards(value: Any) -> Tuple[ShownCard, ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(ShownCard(masked(card.get("title")), masked(card.get("subtitle")), _link(card.get("image_url")),
                           _buttons(card.get("buttons")))
                 for card in value if isinstance(card, Mapping) and card.get("title"))


def _link(value: Any) -> Optional[str]:
    """Only web addresses become links or pictures (never javascript: or data:)."""
    url = str(value or "")
    return url if url.lower().startswith(("https://", "http://")) else None


def _moment(value: Any) -> Optional[datetime]:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
