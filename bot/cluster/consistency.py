"""Is a stored conversation consistent? Reads a conversation's events from the SQL tracker store (Rasa's
`events` table) and checks what per-conversation locking must guarantee:

- every user message sent is there exactly once (none lost, none duplicated);
- turns do not interleave: each user message comes after the previous turn's action_listen, with no other
  user message before its own turn ends;
- no event is stored twice (the same type, time and data);
- optionally, the bot's replies stored for a message are the ones its sender received.

Used by the cluster lock test, `make chaos` and `python -m bot cluster check` style reports.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from sqlalchemy import create_engine, text


@dataclass
class ConversationReport:
    sender_id: str
    events: int = 0
    turns: int = 0
    missing: List[str] = field(default_factory=list)  # sent, never stored
    duplicated: List[str] = field(default_factory=list)  # stored more than once
    interleaved: int = 0  # user messages that arrived inside another turn
    duplicate_events: int = 0
    reply_mismatches: List[str] = field(default_factory=list)
    order: List[str] = field(default_factory=list)  # user texts in stored order

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.interleaved or self.duplicate_events or self.reply_mismatches)

    def summary(self) -> str:
        return (f"{self.sender_id}: {self.events} events, {self.turns} turns; missing {len(self.missing)}, "
                f"duplicated {len(self.duplicated)}, interleaved {self.interleaved}, "
                f"duplicate events {self.duplicate_events}, reply mismatches {len(self.reply_mismatches)}")


def load_events(database_url: str, sender_id: str) -> List[Dict]:
    engine = create_engine(database_url, hide_parameters=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT data FROM events WHERE sender_id = :sender ORDER BY id"), {"sender": sender_id}
            ).all()
    finally:
        engine.dispose()
    return [json.loads(row[0]) for row in rows]


def senders(database_url: str, prefix: str) -> List[str]:
    engine = create_engine(database_url, hide_parameters=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT DISTINCT sender_id FROM events WHERE sender_id LIKE :prefix"), {"prefix": prefix + "%"}
            ).all()
    finally:
        engine.dispose()
    return sorted(row[0] for row in rows)


def check_events(
    sender_id: str,
    events: Sequence[Mapping],
    sent: Iterable[str] = (),
    replies: Optional[Mapping[str, List[str]]] = None,
) -> ConversationReport:
    """`sent`: the user texts sent (each unique); `replies`: text → the bot texts its sender received."""
    report = ConversationReport(sender_id, events=len(events))
    keys = Counter(json.dumps(event, sort_keys=True) for event in events)
    report.duplicate_events = sum(count - 1 for count in keys.values() if count > 1)

    stored_replies: Dict[str, List[str]] = {}
    current: Optional[str] = None
    in_turn = False
    for event in events:
        kind = event.get("event")
        if kind == "user":
            if in_turn:
                report.interleaved += 1
            current = str(event.get("text"))
            report.order.append(current)
            stored_replies.setdefault(current, [])
            in_turn = True
            report.turns += 1
        elif kind == "bot" and current is not None and in_turn:
            stored_replies[current].append(str(event.get("text") or ""))
        elif kind == "action" and event.get("name") == "action_listen":
            in_turn = False

    counts = Counter(report.order)
    for text_ in sent:
        if counts[text_] == 0:
            report.missing.append(text_)
        elif counts[text_] > 1:
            report.duplicated.append(text_)
    if replies is not None:
        for text_, received in replies.items():
            if text_ in stored_replies and [r for r in received if r] != [r for r in stored_replies[text_] if r]:
                report.reply_mismatches.append(text_)
    return report
