"""The held-out set stays a test of understanding: most of it is not training data, and what overlaps
(short messages both sides were bound to write) is left out of the figures (tests/nlu/evaluate.py)."""
from __future__ import annotations

from bot.settings import PROJECT_ROOT
from tests.nlu.evaluate import HELDOUT_DIR, OFF_TOPIC, load_heldout, training_texts


def test_the_unseen_held_out_messages_are_enough_to_judge_by() -> None:
    examples = load_heldout(trained=training_texts(PROJECT_ROOT))
    unseen = [e for e in examples if not e.seen]
    in_scope = [e for e in unseen if e.label != OFF_TOPIC]
    off_topic = [e for e in unseen if e.label == OFF_TOPIC]
    assert len(in_scope) >= 600 and len(off_topic) >= 300, (len(in_scope), len(off_topic))
    # Copying the held-out set into training would shrink the unseen part: keep at least three quarters.
    assert len(unseen) >= 0.75 * len(examples), f"{len(examples) - len(unseen)} held-out messages are training examples"


def test_every_intent_is_covered() -> None:
    labels = {e.label.split("/")[0] for e in load_heldout() if e.label != OFF_TOPIC}
    assert {"order_status", "subscribe", "unsubscribe", "forget_me", "check_points", "faq", "greet"} <= labels
    assert (HELDOUT_DIR / "README.md").exists()
