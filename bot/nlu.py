"""Rasa NLU components that decide a message's intent by rules the trained model cannot learn.

BareCodeClassifier: a message that is nothing but one of our codes means what the code is for.

Link codes (K7PM-Q2ZX) and referral codes (N3864PAC8J) are random symbols, so the trained classifier
has no words to go on and its confidence on a bare code swings between trainings and machines; below the
FallbackClassifier's threshold the shopper gets "I didn't get that" for a perfectly good code. The code
formats are ours and exact, so this component, placed after the FallbackClassifier in config.yml, decides
those messages by format instead. Any message with other words in it is left to the trained model.

LanguageClassifier: a message in another language is `other_language` with the language as an entity.
The trained model is English; on "quiero devolver una silla" it guesses an English intent with confidence
(a Spanish return request got the tier table). bot/languages.py tells the language, and the rules answer
in it (data/rules/languages.yml). A short yes or no in those languages ("oui", "ja bitte", "não obrigado")
is affirm or deny, so the person offered can be accepted by typing.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.advocacy.codes import normalize_referral_code
from bot.identity.linking import find_code, normalize_code
from bot.languages import detect_language, load_identifier, yes_or_no

LINK_INTENT = "link_account"
REFERRAL_INTENT = "claim_referral"
OTHER_LANGUAGE_INTENT = "other_language"
LANGUAGE_ENTITY = "language"
# Punctuation a shopper may put around a code they paste ("K7PM-Q2ZX." or "`K7PM-Q2ZX`").
_WRAPPING = " \t\r\n.,!?;:'\"`()[]"


def intent_for_bare_code(text: str) -> Optional[str]:
    """The intent a message that is only a code stands for, or None when it is anything else.

    Left to the model: digits alone (an order or phone number reads the same) and two words, one of them
    without a digit ("item 4567"), which may be a phrase rather than a code typed with a space.
    """
    typed = text.strip(_WRAPPING)
    if not typed or len(typed) > 40:
        return None
    cleaned = normalize_code(typed)
    if not any(symbol.isalpha() for symbol in cleaned):
        return None
    words = typed.split()
    if len(words) == 2 and not all(any(symbol.isdigit() for symbol in word) for word in words):
        return None
    if len(words) <= 2 and find_code(typed) == cleaned:
        return LINK_INTENT
    if len(words) == 1 and normalize_referral_code(typed) is not None:
        return REFERRAL_INTENT
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class BareCodeClassifier(GraphComponent, IntentClassifier):
    """Sets the intent of a message that is only a link or referral code (see the module docstring)."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> BareCodeClassifier:
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            intent = intent_for_bare_code(text) if isinstance(text, str) else None
            if intent is not None:
                _decide(message, intent)
        return messages


def _decide(message: Message, intent: str) -> None:
    """Make `intent` the message's intent with full confidence; the model's ranking stays below it."""
    decided = {INTENT_NAME_KEY: intent, PREDICTED_CONFIDENCE_KEY: 1.0}
    ranking = [
        ranked for ranked in message.get(INTENT_RANKING_KEY) or []
        if ranked.get(INTENT_NAME_KEY) not in (intent, DEFAULT_NLU_FALLBACK_INTENT_NAME)
    ]
    message.set(INTENT, decided, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [decided, *ranking], add_to_output=True)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR],
    is_trainable=False,
)
class LanguageClassifier(GraphComponent, IntentClassifier):
    """Sets `other_language` and the `language` entity on a message not in English, affirm/deny on a yes
    or no in another language (see the module docstring)."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageClassifier:
        load_identifier()  # at model load, not in the first turn that needs it
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str):
                continue
            answer = yes_or_no(text)
            if answer is not None:
                _decide(message, "affirm" if answer else "deny")
                continue
            found = detect_language(text)
            if found is None:
                continue
            _decide(message, OTHER_LANGUAGE_INTENT)
            # The model's entities were read in English: none of them can be trusted in another language.
            message.set(ENTITIES, [{
                ENTITY_ATTRIBUTE_TYPE: LANGUAGE_ENTITY, ENTITY_ATTRIBUTE_VALUE: found.language,
                ENTITY_ATTRIBUTE_START: 0, ENTITY_ATTRIBUTE_END: len(text), EXTRACTOR: type(self).__name__,
            }], add_to_output=True)
        return messages
