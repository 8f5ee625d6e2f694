"""The NLU's own components on real inputs: the all-MiniLM-L6-v2 featurizer and the intent classifier
trained, stored, loaded and asked about phrasings it never saw."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.intent_classifier import ShopperIntentClassifier
from bot.sentence_embeddings import SentenceEmbeddingFeaturizer, sentence_vector

TRAINING = {
    "check_points": ["how many points do i have", "what's my points balance", "show my reward points",
                     "points?", "do i have enough points for a reward"],
    "faq": ["how long does shipping take", "do you ship to canada", "what is your return policy",
            "can i pay with paypal", "is there a warranty"],
    "out_of_scope": ["what's the weather tomorrow", "tell me a joke", "book me a flight to rome",
                     "who won the football", "what's the capital of peru"],
}


def _messages(texts: List[str], intent: str = None) -> List[Message]:
    return [Message(data={TEXT: text, **({INTENT: intent} if intent else {})}) for text in texts]


def _context(name: str) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=name)


@pytest.fixture(scope="module")
def featurize():
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    featurizer = SentenceEmbeddingFeaturizer.create(
        {**SentenceEmbeddingFeaturizer.get_default_config(), "alias": "minilm"}, None, None, _context("minilm"))

    def run(messages: List[Message]) -> List[Message]:
        for message in messages:
            tokenizer.process([message])
        return featurizer.process(messages)

    return run


def test_the_sentence_vector_is_a_unit_vector() -> None:
    vector = sentence_vector(np.ones((3, 4), dtype=np.float32), np.array([1, 1, 0]))
    assert vector.shape == (1, 4) and np.linalg.norm(vector) == pytest.approx(1.0)


def test_paraphrases_embed_closer_than_other_requests(featurize) -> None:
    messages = featurize(_messages(["how many points have I earned", "what's my rewards balance",
                                    "book a flight to paris"]))
    vectors = [m.get_dense_features(TEXT)[1].features.reshape(-1) for m in messages]
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    sequence, sentence = messages[0].get_dense_features(TEXT)
    assert sequence is None and sentence.features.shape == (1, 384)  # sentence features only


def test_the_classifier_learns_stores_and_generalises(featurize, tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("intent_classifier")
    config = ShopperIntentClassifier.get_default_config()
    examples = [m for intent, texts in TRAINING.items() for m in featurize(_messages(texts, intent))]
    classifier = ShopperIntentClassifier.create(config, storage, resource, _context("intent_classifier"))
    classifier.train(TrainingData(training_examples=examples))

    loaded = ShopperIntentClassifier.load(config, storage, resource, _context("intent_classifier"))
    unseen = featurize(_messages(["hw many pts have i got", "when will my sofa get shipped",
                                  "how is the weather in london today"]))
    loaded.process(unseen)
    assert [m.get(INTENT)["name"] for m in unseen] == ["check_points", "faq", "out_of_scope"]
    ranking = unseen[0].get(INTENT_RANKING_KEY)
    assert len(ranking) == 3 and sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-6)


def test_an_untrained_classifier_leaves_messages_alone(featurize, tmp_path: Path) -> None:
    classifier = ShopperIntentClassifier.load(
        ShopperIntentClassifier.get_default_config(), LocalModelStorage(tmp_path), Resource("nothing"),
        _context("intent_classifier"))
    messages = classifier.process(featurize(_messages(["hello"])))
    assert messages[0].get(INTENT) is None
