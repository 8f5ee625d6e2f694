"""A Rasa intent classifier: logistic regression over sentence embeddings and character n-grams.

The sentence embedding (bot/sentence_embeddings.py) carries the meaning of a message, so phrasings the
training data never had land near the ones it had; character n-grams of the text itself keep typos and
shop words ("pts", "ur", "walnutt") close. One multinomial logistic regression over both trains in seconds,
and its probabilities are calibrated well enough for the FallbackClassifier's threshold to mean something —
measured on the held-out set with `make eval-nlu` (README, "Understanding shoppers").
"""
from __future__ import annotations

import pickle
from typing import Any, Dict, List, Optional, Text, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.sentence_embeddings import SentenceEmbeddingFeaturizer

MODEL_FILE = "intent_classifier.pkl"
RANKING_LENGTH = 10


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class ShopperIntentClassifier(GraphComponent, IntentClassifier):
    """Sets the intent and its ranking from the sentence embedding and the text (see the module docstring)."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [SentenceEmbeddingFeaturizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "C": 10.0,                  # inverse regularisation of the logistic regression
            "ngram_weight": 1.0,        # weight of the character n-grams against the embedding
            "ngram_range": [2, 4],
            "max_iter": 3000,
            "random_seed": 42,
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 vectorizer: Any = None, classifier: Any = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.vectorizer = vectorizer
        self.classifier = classifier

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "ShopperIntentClassifier":
        return cls(config, model_storage, resource)

    # -----------------------------------------------------------------------------------------
    # Features

    @staticmethod
    def _embedding(message: Message) -> Optional[np.ndarray]:
        _, sentence = message.get_dense_features(TEXT)
        if sentence is None:
            return None
        return np.asarray(sentence.features, dtype=np.float32).reshape(-1)

    def _features(self, messages: List[Message]) -> Any:
        from scipy.sparse import csr_matrix, hstack

        embeddings = np.vstack([self._embedding(message) for message in messages])
        ngrams = self.vectorizer.transform([str(message.get(TEXT) or "") for message in messages])
        return hstack([csr_matrix(embeddings), ngrams * float(self._config["ngram_weight"])]).tocsr()

    # -----------------------------------------------------------------------------------------
    # Training

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        examples = [
            example for example in training_data.intent_examples
            if example.get(INTENT) and self._embedding(example) is not None
        ]
        if len({example.get(INTENT) for example in examples}) < 2:
            return self._resource  # nothing to tell apart (an empty or one-intent project)
        low, high = self._config["ngram_range"]
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(int(low), int(high)),
                                          sublinear_tf=True, lowercase=True)
        self.vectorizer.fit([str(example.get(TEXT) or "") for example in examples])
        labels = [example.get(INTENT) for example in examples]
        self.classifier = LogisticRegression(C=float(self._config["C"]), max_iter=int(self._config["max_iter"]),
                                             random_state=int(self._config["random_seed"]))
        self.classifier.fit(self._features(examples), labels)
        with self._model_storage.write_to(self._resource) as directory:
            with open(directory / MODEL_FILE, "wb") as file:
                pickle.dump({"vectorizer": self.vectorizer, "classifier": self.classifier}, file)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "ShopperIntentClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                with open(directory / MODEL_FILE, "rb") as file:
                    stored = pickle.load(file)  # our own file inside our own model archive
        except (ValueError, FileNotFoundError):
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, stored["vectorizer"], stored["classifier"])

    # -----------------------------------------------------------------------------------------
    # Prediction

    def process(self, messages: List[Message]) -> List[Message]:
        ready = [m for m in messages if self.classifier is not None and self._embedding(m) is not None]
        if not ready:
            return messages
        probabilities = self.classifier.predict_proba(self._features(ready))
        labels = self.classifier.classes_
        for message, row in zip(ready, probabilities):
            order = np.argsort(row)[::-1][:RANKING_LENGTH]
            ranking = [{INTENT_NAME_KEY: str(labels[i]), PREDICTED_CONFIDENCE_KEY: float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
