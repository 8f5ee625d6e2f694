"""Several requests in one message ("whats my balance and also do u ship to canada"): find each of them.

A message is cut where shoppers join requests ("and also", "also", "and", "plus", "then", ";", ",", and after
"?", "!" or "."), and the pieces are read by the NLU. It is several requests only when every clause the pieces
make is one the NLU is sure of, long enough to be a request of its own, and about a different thing than the
others: "black and white lamp" and "points and rewards?" stay one request. A piece too short or too unclear to
be a request joins the clause before it ("do you have black and white lamps and whats my balance" is two).

The Rasa server runs each request as its own turn, in order (bot/rasa_hooks.py) except that a request asking
something back goes last (ASKS_BACK); no more than MAX_ANSWERED are answered, and the shopper is told when there
were more (more_requests_note).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

# How sure the NLU must be of each clause (the intent, and for faq the answer too).
CONFIDENT = 0.75
MIN_WORDS = 2  # "black", "rewards?" are not requests of their own...
# ...but a greeting, a thanks or a goodbye is, in one word ("hi! where's my order?", "thanks, bye").
ONE_WORD_REQUESTS = frozenset({"greet", "thank_you", "goodbye"})
MAX_ANSWERED = 2
MAX_PIECES = 6  # a longer run of "and"s is read as one rambling request (and bounds the NLU work)
# Readings that are not a request to answer on their own: a clause the NLU did not understand, or an
# aside that is not about the shop ("and it should be cheap" is part of the request before it).
NOT_A_REQUEST = frozenset({"nlu_fallback", "out_of_scope"})
# A request whose answer asks something back (a confirmation, a form's first question) is answered last, so
# that the shopper's next "yes" answers that question: "can I talk to a human? my parcel never came" gets the
# parcel answer, then "Would you like that?". Two such requests in one message are answered as one message.
ASKS_BACK = frozenset({"human_handoff", "redeem_reward", "leave_review", "start_quiz", "restart_quiz",
                       "give_feedback", "forget_me"})
# A message in another language is answered whole, in that language.
WHOLE_MESSAGE = frozenset({"other_language"})

# The words that join requests, longest first. "?", "!" and "." end the clause they belong to and stay with
# it (only before a space: "$5.50", "1.5x" are not ends); a comma before a space joins like "and".
_CONNECTOR = re.compile(
    r"\s*(?:\b(?:and also|and then|and|also|plus|then)\b|;|,(?=\s)|(?<=[?!.])(?=\s))\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


@dataclass(frozen=True)
class Reading:
    """What the NLU made of a piece of text: the intent (faq/<topic> for the FAQ) and how sure it is."""

    intent: str
    confidence: float


Classify = Callable[[str], Awaitable[Reading]]


def reading_of(parse_data: Dict[str, Any]) -> Reading:
    """A Reading from Rasa's parse data: faq clauses by their topic, only as sure as the answer chosen."""
    intent = parse_data.get("intent") or {}
    name = str(intent.get("name") or "nlu_fallback")
    confidence = float(intent.get("confidence") or 0.0)
    if name == "faq":
        selected = ((parse_data.get("response_selector") or {}).get("faq") or {}).get("response") or {}
        key = selected.get("intent_response_key")
        name = str(key) if key else name
        confidence = min(confidence, float(selected.get("confidence") or 0.0))
    return Reading(name, confidence)


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int


def pieces(text: str) -> List[_Piece]:
    """The stretches of `text` between connectors (character spans, so clauses keep the shopper's words)."""
    found: List[_Piece] = []
    start = 0
    for match in _CONNECTOR.finditer(text):
        if text[start:match.start()].strip():
            found.append(_Piece(start, match.start()))
        start = max(start, match.end())
    if text[start:].strip():
        found.append(_Piece(start, len(text)))
    return found


def might_hold_several(text: str) -> bool:
    """A quick look before any NLU work: a typed message with a connector between words."""
    if not text or text.lstrip().startswith("/"):
        return False
    return len(pieces(text)) >= 2


def _stands_alone(text: str, reading: Reading) -> bool:
    long_enough = len(_WORD.findall(text)) >= MIN_WORDS or reading.intent in ONE_WORD_REQUESTS
    return long_enough and reading.confidence >= CONFIDENT and reading.intent not in NOT_A_REQUEST


async def split_requests(text: str, classify: Classify) -> List[str]:
    """The requests in `text`, in order; [text] when it is one request (or cannot be read as several)."""
    if not might_hold_several(text):
        return [text]
    spans = pieces(text)
    if len(spans) > MAX_PIECES:
        return [text]
    cache: Dict[str, Reading] = {}

    async def read(span: _Piece) -> Reading:
        words = text[span.start:span.end].strip()
        if words not in cache:
            cache[words] = await classify(words)
        return cache[words]

    clauses: List[_Piece] = []
    readings: List[Reading] = []
    for span in spans:
        reading = await read(span)
        alone = _stands_alone(text[span.start:span.end], reading)
        if clauses and not (alone and _stands_alone(text[clauses[-1].start:clauses[-1].end], readings[-1])
                            and reading.intent != readings[-1].intent):
            # Not a request of its own, or more of the same: part of the clause before it.
            clauses[-1] = _Piece(clauses[-1].start, span.end)
            readings[-1] = await read(clauses[-1])
            continue
        clauses.append(span)
        readings.append(reading)
    if len(clauses) < 2:
        return [text]
    texts = [text[clause.start:clause.end].strip() for clause in clauses]
    intents = [reading.intent for reading in readings]
    if len(set(intents)) != len(intents) or not all(_stands_alone(t, r) for t, r in zip(texts, readings)):
        return [text]
    asking_back = [index for index, intent in enumerate(intents) if intent in ASKS_BACK]
    if WHOLE_MESSAGE & set(intents) or len(asking_back) > 1:
        return [text]
    last_answered = min(len(texts), MAX_ANSWERED) - 1
    if asking_back and asking_back[0] < last_answered:
        texts.insert(last_answered, texts.pop(asking_back[0]))
    return texts


def more_requests_note(requests: Sequence[str], answered: int = MAX_ANSWERED) -> Optional[str]:
    """What the shopper is told when the message held more requests than were answered, else None."""
    rest = list(requests[answered:])
    if not rest:
        return None
    first = {1: "first", 2: "first two", 3: "first three"}.get(answered, f"first {answered}")
    quoted = ", ".join(f"“{request}”" for request in rest)
    again = "on its own" if len(rest) == 1 else "one at a time"
    return f"I answered the {first}; ask me about the rest ({quoted}) {again} and I'll answer that too."
