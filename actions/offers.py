"""A typed "yes" takes the offer the last answer made.

An answer to a question about something that writes (actions/asking.py) ends with its offer as the first
button ("I follow on Instagram", "Get my link"). A tap runs the button's payload; a typed "yes", "sure",
"ok do it" reaches the NLU as `affirm`, which by itself means nothing (action_what_next). `take_offer` reads
the answer just before the yes: when its first button is one of OFFER_ACTIONS and no other button offers the
same kind of thing (three "I follow on …" buttons leave the network open), the yes runs that button's action,
which reads the button's entities with `accepted_offer_entities`. A yes two messages later is a stray yes.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction

from bot.log import get_logger

log = get_logger(__name__)

# The button intents a yes may take, and the action each one runs (as the button's intent does, by rule).
OFFER_ACTIONS: Dict[str, str] = {
    "claim_social_follow": "action_claim_social_follow",
    "get_referral_link": "action_referral_link",
}


def take_offer(tracker: Tracker) -> List[Dict[Text, Any]]:
    """For a yes to the offer of the answer just before it: that offer's action next (it reads the offer's
    entities with `accepted_offer_entities`); else []."""
    if not is_yes(tracker):
        return []
    offer = offer_of_last_answer(tracker)
    if offer is None:
        return []
    log.info("offer.taken", action=offer[0])
    return [FollowupAction(offer[0])]


def accepted_offer_entities(tracker: Tracker) -> Dict[str, Any]:
    """The entities of the button a typed yes took ({} when the latest message is not such a yes)."""
    offer = offer_of_last_answer(tracker) if is_yes(tracker) else None
    return offer[1] if offer is not None else {}


def is_yes(tracker: Tracker) -> bool:
    return (tracker.latest_message.get("intent") or {}).get("name") == "affirm"


def offer_of_last_answer(tracker: Tracker) -> Optional[Tuple[str, Dict[str, Any]]]:
    """The action and entities of the offer the answer between the shopper's previous message and the latest
    one made, if it made one."""
    users = [index for index, event in enumerate(tracker.events) if event.get("event") == "user"]
    if len(users) < 2:
        return None
    buttons: List[Dict[str, Any]] = []
    for event in tracker.events[users[-2] + 1:users[-1]]:
        if event.get("event") == "bot":
            buttons = list((event.get("data") or {}).get("buttons") or [])  # the last message's buttons
    if not buttons:
        return None
    intents = [parse_payload(str(button.get("payload") or ""))[0] for button in buttons]
    first, entities = parse_payload(str(buttons[0].get("payload") or ""))
    if first not in OFFER_ACTIONS or intents.count(first) > 1:
        return None
    return OFFER_ACTIONS[first], entities


def parse_payload(payload: str) -> Tuple[Optional[str], Dict[str, Any]]:
    """'/claim_social_follow{"social_network": "instagram"}' -> ("claim_social_follow", {...})."""
    if not payload.startswith("/"):
        return None, {}
    name, brace, rest = payload[1:].partition("{")
    entities: Dict[str, Any] = {}
    if brace:
        try:
            parsed = json.loads("{" + rest)
        except ValueError:
            return None, {}
        entities = parsed if isinstance(parsed, dict) else {}
    return name.strip() or None, entities
