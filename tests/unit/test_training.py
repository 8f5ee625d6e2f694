"""What `make run` and `make test` print of Rasa's training and validation (bot/training.py): a line per
phase read from Rasa's log, never its progress bars; the validator's findings without its known notes."""
from __future__ import annotations

import io
import re

import pytest

from bot import training
from bot.training import KNOWN_VALIDATOR_NOTES, TrainingProgress, train_command, validator_findings

# What `rasa train` writes: log lines, and tqdm bars redrawn with carriage returns.
RASA_LOG = (
    "2026-12-07 10:00:01 INFO     rasa.engine.training.hooks  - Restored component 'RegexFeaturizer' from cache.\n"
    "2026-12-07 10:00:02 INFO     rasa.engine.training.hooks  - Starting to train component 'DIETClassifier'.\n"
    "Epochs:   0%|          | 0/100 [00:00<?, ?it/s]\rEpochs:  40%|████      | 40/100 [00:20<00:30, t_loss=2.1]"
    "\rEpochs:  70%|███████   | 70/100 [00:35<00:15, t_loss=1.2]\n"
    "2026-12-07 10:01:02 INFO     rasa.engine.training.hooks  - Finished training component 'DIETClassifier'.\n"
    "2026-12-07 10:01:03 INFO     rasa.engine.training.hooks  - Starting to train component 'TEDPolicy'.\n"
)


def test_progress_names_the_slow_components_and_says_when_they_are_halfway(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    progress = TrainingProgress(out, started=1000.0)
    progress.read(RASA_LOG[:400])  # the log arrives in pieces, cut anywhere
    progress.read(RASA_LOG[400:])
    said = [re.sub(r"^\[train\]\s+\S+\s+", "", line) for line in out.getvalue().splitlines()]
    assert said == ["training DIETClassifier", "DIETClassifier: epoch 70/100"]  # halfway: its start is named too
    assert (progress.trained, progress.restored) == (2, 1)
    now[0] += 5
    progress.tick()  # TEDPolicy has trained for 5 s: quick so far, not named
    assert len(out.getvalue().splitlines()) == 2
    now[0] += 10
    progress.tick()
    progress.tick()
    assert out.getvalue().splitlines()[-1].endswith("training TEDPolicy")
    for epoch in range(1, 101):  # every redraw of the bar: one line, at half way
        progress.read(f"Epochs: {epoch}%|█▏        | {epoch}/100 [00:05<00:40, t_loss=3.3]\r")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].endswith("TEDPolicy: epoch 50/100") and lines[-1].startswith("[train]     15s")
    assert "%|" not in out.getvalue() and "\r" not in out.getvalue()


def test_training_reads_only_the_training_data() -> None:
    command = train_command()
    data = command[command.index("--data") + 1:command.index("--fixed-model-name")]
    assert data == ["data/nlu", "data/faq", "data/rules", "data/stories"]  # the quiz files are not Rasa's


def test_the_validators_findings_come_one_line_each_and_known_notes_are_known() -> None:
    log = (
        "\x1b[93m/x/rasa/shared/utils/io.py:100: UserWarning: The following duplicated intents have been found "
        "across multiple domain files: faq\n\x1b[0m"
        "2026-12-07 10:00:00 INFO     rasa.validator  - Validating intents...\n"
        "\x1b[93m/x/io.py:100: UserWarning: The utterance 'utter_default' is not used in any story or rule.\n"
        "\x1b[0m\x1b[93m/x/io.py:100: UserWarning: Issue found in 'data/rules/x.yml': \n"
        "Found intent 'nope' in stories which is not part of the domain.\n"
        "\x1b[0m\x1b[93m/x/io.py:100: UserWarning: The utterance 'utter_default' is not used in any story or rule.\n"
        "2026-12-07 10:00:01 INFO     rasa.validator  - No story structure conflicts found.\n"
    )
    found = validator_findings(log)
    assert found == [
        "The following duplicated intents have been found across multiple domain files: faq",
        "The utterance 'utter_default' is not used in any story or rule.",
        "Issue found in 'data/rules/x.yml': Found intent 'nope' in stories which is not part of the domain.",
    ]
    assert [finding in KNOWN_VALIDATOR_NOTES for finding in found] == [True, True, False]
