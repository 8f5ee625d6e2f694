"""Text the project compares, cleans and words: normalisation for matching, plurals, durations, control
characters, and what a chat channel does with a shopper's raw message (clean it; refuse it politely when
empty or too long)."""
from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Optional

# Typo tolerance wherever typed words are matched against known ones (quiz answers, catalog search).
FUZZY_CUTOFF = 0.8  # difflib ratio for a typo to count ("lether" ~ "leather")
FUZZY_MIN_CHARS = 4  # shorter words only match exactly (so "a", "or" never match by accident)

EMPTY_MESSAGE_REPLY = "I received an empty message. What can I help you with?"

# C0 and C1 control characters, DEL; tab, line feed and carriage return are the ones text may keep.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Mass nouns name a kind of product in the singular and the plural alike ("storage", not "storages").
_MASS_NOUNS = frozenset({"storage", "shelving", "seating", "bedding", "tableware", "dinnerware", "lighting"})
_KEPT_IN_CHAT = {"\n", "\t"}
# A UTF-16 surrogate on its own: JSON's "\ud800" escape decodes to one (a pair becomes the character it
# encodes), but no encoder writes it: UTF-8 for SQLite, PostgreSQL and spaCy refuses it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize(text: str) -> str:
    """Lower case, accents and punctuation gone (except $ . - in numbers), spaces collapsed: how typed text
    is compared with quiz options, catalog words, product titles and social networks."""
    text = text.replace("’", "'").replace("–", "-").replace("—", "-")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = text.replace("&", " and ")
    text = re.sub(r"[^a-z0-9$.\-+' ]+", " ", text)
    text = re.sub(r"(?<![0-9])[.\-']|[.\-'](?![0-9a-z])", " ", text)
    return " ".join(text.split())


def normalize_email(email: Optional[str]) -> str:
    """The stored form of an email: trimmed, lower-case."""
    return (email or "").strip().lower()


def singular(word: str) -> str:
    """ "benches" → "bench", "shelves" → "shelf", "lamps" → "lamp"; short and -ss/-us/-is words unchanged."""
    if len(word) <= 3 or not word.isalpha() or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ves"):
        return word[:-3] + "f"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def stem(word: str) -> str:
    """A word's rough stem, so a typed answer's inflection still finds a phrase: "standing" and "stand",
    "sitting" and "sit", "lamps" and "lamp", "seated" and "seat". Not a linguist's stemmer: just the endings
    that keep two words of one meaning apart in shoppers' answers."""
    word = singular(word)
    if not word.isalpha():
        return word
    for ending in ("ing", "ed"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            root = word[:-len(ending)]
            # "sitting" → "sitt" → "sit"; "stopped" → "stop" (but "add" and "fall" keep their letters)
            if len(root) >= 4 and root[-1] == root[-2] and root[-1] not in "lsz":
                root = root[:-1]
            return root
    return word


def plural(label: str, count: int = 2) -> str:
    """ "standing desk" → "standing desks", "bench" → "benches", "storage" → "storage"; the label unchanged
    when `count` is 1."""
    if count == 1:
        return label
    *head, last = label.split(" ")
    if last in _MASS_NOUNS:
        word = last
    elif last.endswith(("s", "x", "ch", "sh", "z")):
        word = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return " ".join(head + [word])


def human_duration(delta: Optional[timedelta]) -> str:
    """ "1m 52s", "3h 05m", "2d 4h"; "–" for none."""
    if delta is None:
        return "–"
    seconds = int(round(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def has_control_characters(value: str, *, allow_line_breaks: bool = False) -> bool:
    """True when `value` holds a control character (NUL, escape, …; with `allow_line_breaks` tab, line feed
    and carriage return are fine). No e-mail, customer id or chat sender id has one, and PostgreSQL refuses
    NUL in a query parameter outright."""
    if allow_line_breaks:
        return _CONTROL.search(value) is not None
    return any(unicodedata.category(char) == "Cc" for char in value)


def without_control_characters(value: str) -> str:
    """`value` less its control characters other than tab and line breaks: what a page may show back of it."""
    return _CONTROL.sub("", value)


def has_lone_surrogate(value: str) -> bool:
    """True when `value` holds a UTF-16 surrogate that is not part of a character (see _LONE_SURROGATE)."""
    return _LONE_SURROGATE.search(value) is not None


def clean_chat_text(text: str) -> str:
    """A shopper's message as every channel hands it on: NFC-normalised, without control or format
    characters (tab and newline kept) or lone surrogates, trimmed."""
    normalized = unicodedata.normalize("NFC", _LONE_SURROGATE.sub("", text))
    kept = "".join(ch for ch in normalized if ch in _KEPT_IN_CHAT or unicodedata.category(ch) not in ("Cc", "Cf"))
    return kept.strip()


def too_long_reply(length: int, limit: int) -> Optional[str]:
    """What a channel answers (without the model) to a message over MAX_MESSAGE_CHARS; None when it fits."""
    if length <= limit:
        return None
    return (f"That message is too long for me ({length:,} characters). "
            f"Please keep it under {limit:,} characters and I'll gladly help.")
