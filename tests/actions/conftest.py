from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from sqlalchemy.engine import make_url

from bot.db import get_database
from bot.demo import seed_demo
from bot.loyalty.program import get_program
from bot.settings import get_settings
from bot.shop import get_shop

TRACKERS = Path(__file__).parent / "trackers"


def make_tracker(sender_id: str, text: str, intent: str, channel: str = "rest",
                 history: Optional[List[Dict[str, Any]]] = None, entities: Optional[Dict[str, str]] = None,
                 slots: Optional[Dict[str, Any]] = None) -> Tracker:
    """A tracker as the action server receives it, ending with the shopper's message.

    `entities` maps entity names to values (as NLU and the synonym mapper extract them); `slots` are
    the conversation's slot values at that point.
    """
    extracted = [
        {"entity": name, "value": value, "start": 0, "end": len(text), "extractor": "DIETClassifier"}
        for name, value in (entities or {}).items()
    ]
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.98}, "entities": extracted}
    events = list(history or []) + [
        {"event": "user", "text": text, "parse_data": latest, "input_channel": channel, "timestamp": 1_790_000_000.0}
    ]
    return Tracker(sender_id, dict(slots or {}), latest, events, False, None, {}, "action_listen")


def only_topic_events(events: List[Dict[str, Any]]) -> bool:
    """Whether an action's events are nothing but the topic its answer opens for the next message
    (actions/thread.py): the answers of these tests change no other slot."""
    return all(event.get("event") == "slot" and event.get("name") in ("topic", "topic_ref") for event in events)


def saved_tracker(name: str) -> Tracker:
    return Tracker.from_dict(json.loads((TRACKERS / f"{name}.json").read_text()))


@pytest.fixture()
def demo_store(environment, sqlite_templates):
    """The demo shop seeded into a fresh SQLite store that the actions use through settings."""
    sqlite_templates.copy_to(Path(make_url(get_settings().database_url).database))
    database = get_database()
    with database.session(write=True) as session:
        seed_demo(session, get_program(), get_shop().store_url)
    return database
