"""Channel-neutral responses → what each platform can show. Shared by every channel."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

Measure = Callable[[str], int]


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def split_text(text: str, limit: int, measure: Measure = len) -> List[str]:
    """Split a message into parts within `limit`, preferring paragraph, line, sentence, then word breaks.

    Platforms cap a message's size (Telegram 4096 characters, Instagram 1000 UTF-8 bytes); a long
    answer is sent as several messages rather than cut off.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if not text:
        return []
    parts: List[str] = []
    while measure(text) > limit:
        cut = _best_cut(text, limit, measure)
        head, text = text[:cut].rstrip(), text[cut:].lstrip()
        if head:
            parts.append(head)
    if text:
        parts.append(text)
    return parts


def _best_cut(text: str, limit: int, measure: Measure) -> int:
    # Longest prefix that fits, found by bisection so byte-measured limits work too.
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    window = text[:low]
    for separator in ("\n\n", "\n", ". ", "! ", "? ", " "):
        position = window.rfind(separator)
        if position > low // 3:
            return position + len(separator)
    return low


def numbered_options(text: str, buttons: Sequence[Dict[str, str]]) -> str:
    """Text with the buttons as a numbered list, for surfaces that cannot show buttons."""
    if not buttons:
        return text
    options = "\n".join(f"{index}. {button['title']}" for index, button in enumerate(buttons, start=1))
    return f"{text}\n{options}"


# Product cards: actions send them as Rasa `elements` (dispatcher.utter_message(elements=[...])), each
#   {"title", "subtitle"?, "image_url"?, "buttons"?: [{"title", "payload"} | {"title", "url", "type": "web_url"}]}
# — the generic-template shape Rasa's channels already pass on. Every channel reads them with
# product_cards() and shows what it can: Instagram a generic template, Telegram a photo with an inline
# keyboard, the widget a card; cards_as_text() is the readable fallback.


@dataclass(frozen=True)
class CardButton:
    title: str
    payload: Optional[str] = None  # pressed: sent back as the shopper's message
    url: Optional[str] = None  # pressed: opens the link


@dataclass(frozen=True)
class ProductCard:
    title: str
    subtitle: Optional[str] = None
    image_url: Optional[str] = None
    buttons: Tuple[CardButton, ...] = ()

    @property
    def links(self) -> List[CardButton]:
        return [button for button in self.buttons if button.url]

    @property
    def actions(self) -> List[CardButton]:
        return [button for button in self.buttons if button.payload]


def _clean(value: Any) -> Optional[str]:
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def card_button(raw: Any) -> Optional[CardButton]:
    """A Rasa button ({title, payload} or {title, url, type: web_url}) as a CardButton, or None if unusable."""
    if not isinstance(raw, dict):
        return None
    title = _clean(raw.get("title"))
    if title is None:
        return None
    url = raw.get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")) and (
        raw.get("type") == "web_url" or not raw.get("payload")
    ):
        return CardButton(title=title, url=url)
    payload = raw.get("payload")
    if isinstance(payload, str) and payload.strip():
        return CardButton(title=title, payload=payload.strip())
    return None


def product_cards(elements: Any) -> List[ProductCard]:
    """The well-formed cards among `elements` (anything else is skipped, never raised on)."""
    if isinstance(elements, dict):
        elements = [elements]
    if not isinstance(elements, (list, tuple)):
        return []
    cards = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        title = _clean(element.get("title"))
        if title is None:
            continue
        image_url = element.get("image_url")
        buttons = tuple(
            button for button in map(card_button, element.get("buttons") or []) if button is not None
        )
        cards.append(
            ProductCard(
                title=title,
                subtitle=_clean(element.get("subtitle")),
                image_url=image_url if isinstance(image_url, str) and image_url.startswith(("https://", "http://")) else None,
                buttons=buttons,
            )
        )
    return cards


def card_text(card: ProductCard) -> str:
    """One card as text: title — subtitle, then its first link."""
    line = f"{card.title} — {card.subtitle}" if card.subtitle else card.title
    links = card.links
    return f"{line} {links[0].url}" if links else line


def cards_as_text(elements: Any) -> str:
    """Product cards as a bulleted list, for surfaces that cannot show cards."""
    return "\n".join(f"• {card_text(card)}" for card in product_cards(elements))
