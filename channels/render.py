"""Channel-neutral responses → what each platform can show. Shared by every channel."""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

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
