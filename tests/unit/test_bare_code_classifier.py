"""bot/nlu.py: a message that is only a link or referral code gets its intent from the code's format."""
from typing import Any, Dict, List, Optional

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu import BareCodeClassifier, intent_for_bare_code


@pytest.mark.parametrize("text, intent", [
    ("2FPF-7DSG", "link_account"),
    ("k7pm q2zx", "link_account"),
    ("  N6BYS4QE.  ", "link_account"),
    ("`wpq9-ta7k`", "link_account"),
    ("N3864PAC8J", "claim_referral"),
    ("n3864pac8j!", "claim_referral"),
    # left to the trained model
    ("23456789", None),
    ("2345678923", None),
    ("item 4567", None),
    ("my code is K7PM-Q2ZX", None),
    ("SHIPPING", None),
    ("FRIEND-AB2C-3DEF", None),
    ("K7PM-Q2ZX please", None),
    ("N386 4PAC8J", None),
    ("N3864PAC8O", None),  # O is not in the referral alphabet
    ("", None),
    ("x" * 200, None),
])
def test_a_bare_code_is_recognised_by_its_format(text: str, intent: Optional[str]) -> None:
    assert intent_for_bare_code(text) == intent


def _message(text: str, intent: str, ranking: List[Dict[str, Any]]) -> Message:
    message = Message(data={TEXT: text})
    message.set(INTENT, {"name": intent, "confidence": ranking[0]["confidence"]}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
    return message


def test_the_classifier_overrides_a_fallback_for_a_bare_code_and_keeps_the_rest_of_the_ranking() -> None:
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.55},
        {"name": "claim_referral", "confidence": 0.41},
        {"name": "link_account", "confidence": 0.38},
    ]
    [message] = BareCodeClassifier().process([_message("2FPF-7DSG", "nlu_fallback", ranking)])

    assert message.get(INTENT) == {"name": "link_account", "confidence": 1.0}
    assert [ranked["name"] for ranked in message.get(INTENT_RANKING_KEY)] == ["link_account", "claim_referral"]
    assert "intent" in message.output_properties


def test_the_classifier_leaves_ordinary_messages_to_the_model() -> None:
    ranking = [{"name": "check_points", "confidence": 0.93}, {"name": "link_account", "confidence": 0.02}]
    [message] = BareCodeClassifier().process([_message("how many points do I have", "check_points", ranking)])

    assert message.get(INTENT) == {"name": "check_points", "confidence": 0.93}
    assert message.get(INTENT_RANKING_KEY) == ranking
