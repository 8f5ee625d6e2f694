"""Multi-turn conversation scripts (YAML): what a shopper types and what the answers must or must not say.

Played end to end by tests/e2e/test_conversation_scripts.py; the format is checked by
tests/unit/test_conversation_scripts_format.py. The README's "Conversation tests" section shows the format.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

SCRIPTS_DIR = Path(__file__).parent
TURN_KEYS = {"say", "expect", "expect_any", "reject"}
CONVERSATION_KEYS = {"name", "shopper", "turns"}


@dataclass(frozen=True)
class Turn:
    say: str
    expect: Tuple[str, ...] = ()
    expect_any: Tuple[str, ...] = ()
    reject: Tuple[str, ...] = ()

    def problems(self, answer: str) -> List[str]:
        """What is wrong with `answer` (the replies' text and button titles) for this turn."""
        lowered = answer.lower()
        found = [f"missing {text!r}" for text in self.expect if text.lower() not in lowered]
        if self.expect_any and not any(text.lower() in lowered for text in self.expect_any):
            found.append(f"none of {list(self.expect_any)!r}")
        found += [f"must not say {text!r}" for text in self.reject if text.lower() in lowered]
        return found


@dataclass(frozen=True)
class Conversation:
    name: str
    source: str
    turns: Tuple[Turn, ...]
    shopper: Optional[str] = None
    tags: Tuple[str, ...] = field(default=())


def _strings(value, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _turn(raw, where: str) -> Turn:
    if not isinstance(raw, dict) or not set(raw) <= TURN_KEYS or not isinstance(raw.get("say"), str):
        raise ValueError(f"{where}: a turn is a mapping with 'say' and optional {sorted(TURN_KEYS - {'say'})}")
    return Turn(
        raw["say"],
        _strings(raw.get("expect"), where),
        _strings(raw.get("expect_any"), where),
        _strings(raw.get("reject"), where),
    )


def load_conversations(directory: Path = SCRIPTS_DIR) -> List[Conversation]:
    """Every conversation of every script file, in file order; a malformed file raises ValueError."""
    conversations: List[Conversation] = []
    for path in sorted(directory.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for index, raw in enumerate(document.get("conversations") or []):
            where = f"{path.name} conversation {index + 1}"
            if not isinstance(raw, dict) or not set(raw) <= CONVERSATION_KEYS or not raw.get("name"):
                raise ValueError(f"{where}: a conversation has 'name', 'turns' and optionally 'shopper'")
            turns = tuple(_turn(turn, f"{where} turn {n + 1}") for n, turn in enumerate(raw.get("turns") or []))
            if not turns:
                raise ValueError(f"{where}: no turns")
            conversations.append(Conversation(str(raw["name"]), path.name, turns, raw.get("shopper")))
    return conversations
