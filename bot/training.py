"""Train the Rasa model only when its inputs changed, and say how it goes in a few lines: Rasa's own output
(tqdm bars, TensorFlow's notices) goes to var/train.log, the terminal gets a line per phase."""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import IO, Iterable, List, Optional

from bot.settings import PROJECT_ROOT
from bot.shared.text import human_duration

MODEL_NAME = "rapport"
TRAINING_DATA = ("data/nlu", "data/faq", "data/rules", "data/stories")  # not data/quizzes etc.: not Rasa's
TRAINING_INPUTS = ("config.yml", "domain.yml", *TRAINING_DATA)
QUICK_SECONDS = 10.0  # a component that trains faster is not named (the summary counts it)
HALFWAY = 50  # a long component's epochs are reported once, at this percentage
FAILURE_TAIL_LINES = 30

# What `rasa data validate` says about this project that is not a problem: responses it cannot see being used
# (it only looks at stories and rules) and the retrieval intent it adds to the domain a second time.
KNOWN_VALIDATOR_NOTES = {
    "The utterance 'utter_ask_review_rating' is not used in any story or rule.": "review_form asks it",
    "The utterance 'utter_ask_review_text' is not used in any story or rule.": "review_form asks it",
    "The utterance 'utter_ask_review_media' is not used in any story or rule.": "review_form asks it",
    "The utterance 'utter_handoff_requested_in_language' is not used in any story or rule.":
        "action_request_handoff says it to a shopper who wrote in another language",
    "The utterance 'utter_default' is not used in any story or rule.": "action_default_fallback says it",
    "The utterance 'utter_faq' is not used in any story or rule.": "action_answer_faq answers utter_faq/<topic>",
    "The utterance 'utter_help' is not used in any story or rule.": "action_help says it (actions/replies.py)",
    "The utterance 'utter_out_of_scope' is not used in any story or rule.": "action_out_of_scope says it",
    "The utterance 'utter_not_understood' is not used in any story or rule.":
        "action_not_understood and action_answer_faq say it",
    "The utterance 'utter_what_next' is not used in any story or rule.": "action_what_next says it",
    "The utterance 'utter_you_are_welcome' is not used in any story or rule.": "action_you_are_welcome says it",
    "The utterance 'utter_no_quiz_running' is not used in any story or rule.": "action_no_quiz_running says it",
    "The intent 'other_language' is listed in the domain file, but is not found in the NLU training data.":
        "bot.nlu.LanguageClassifier sets it; the English model is not trained on other languages",
    "The intent 'answer_poll' is listed in the domain file, but is not found in the NLU training data.":
        "only a campaign poll's buttons send it (a typed answer is mapped to the same payload by bot/rasa_hooks.py)",
    "The following duplicated intents have been found across multiple domain files: faq":
        "Rasa adds the retrieval intent from data/faq to the domain, which declares it for the rules",
}
_WARNING = re.compile(r"(?:UserWarning:|rasa\.validator\s+-|ERROR\s+[\w.]+\s+-)\s*(.*)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

_STARTED = re.compile(r"Starting to train component '([^']+)'")
_RESTORED = re.compile(r"Restored component '([^']+)' from cache")
_EPOCHS = re.compile(r"Epochs:\s+(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")


class TrainingFailed(RuntimeError):
    """`rasa train` failed; the message ends with the end of its log."""


def _files(root: Path, inputs: Iterable[str]) -> List[Path]:
    found: List[Path] = []
    for name in inputs:
        path = root / name
        found.extend(sorted(path.rglob("*.yml")) if path.is_dir() else [path])
    return found


def training_fingerprint(root: Path = PROJECT_ROOT) -> str:
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in _files(root, TRAINING_INPUTS):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def model_path(root: Path = PROJECT_ROOT) -> Path:
    return root / "models" / f"{MODEL_NAME}.tar.gz"


def _stamp(root: Path) -> Path:
    return root / "models" / f"{MODEL_NAME}.fingerprint"


def train_log_path(root: Path = PROJECT_ROOT) -> Path:
    return root / "var" / "train.log"


def is_current(root: Path = PROJECT_ROOT) -> bool:
    stamp = _stamp(root)
    return model_path(root).exists() and stamp.exists() and stamp.read_text().strip() == training_fingerprint(root)


def train_command(root: Path = PROJECT_ROOT) -> List[str]:
    """`rasa train` on exactly the training inputs (Rasa would otherwise read every YAML under data/)."""
    return [sys.executable, "-m", "rasa", "train", "--config", "config.yml", "--domain", "domain.yml",
            "--data", *TRAINING_DATA, "--fixed-model-name", MODEL_NAME, "--out", "models"]


def train_if_changed(root: Path = PROJECT_ROOT, force: bool = False, out: IO[str] = sys.stdout) -> bool:
    """Train models/rapport.tar.gz when the data changed; True when a training ran. TrainingFailed (with the
    end of Rasa's log) when the training failed."""
    if not force and is_current(root):
        print(f"[train] model is current: {model_path(root).relative_to(root)}", file=out, flush=True)
        return False
    fingerprint = training_fingerprint(root)
    log_path = train_log_path(root)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shown = log_path.relative_to(root)
    print(f"[train] the training data changed: training the model (about 5 minutes on 2 cores; Rasa's output "
          f"in {shown})", file=out, flush=True)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(train_command(root), cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    progress = TrainingProgress(out, started)
    with open(log_path, "rb") as reading:
        while True:
            finished = process.poll() is not None
            progress.read(reading.read().decode("utf-8", errors="replace"))
            if finished:
                break
            progress.tick()
            time.sleep(1.0)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").replace("\r", "\n").splitlines()[-FAILURE_TAIL_LINES:])
        raise TrainingFailed(f"rasa train failed (exit code {process.returncode}); the end of {shown}:\n{tail}")
    _stamp(root).write_text(fingerprint + "\n")
    print(f"[train] model saved: {model_path(root).relative_to(root)} in {progress.elapsed()} "
          f"({progress.trained} components trained, {progress.restored} restored from Rasa's cache)",
          file=out, flush=True)
    return True


def validate_data(root: Path = PROJECT_ROOT, out: IO[str] = sys.stdout) -> int:
    """`rasa data validate` on the training inputs, its output in var/validate.log; prints what it found
    that matters (KNOWN_VALIDATOR_NOTES are counted, not shown) and returns its exit code."""
    log_path = root / "var" / "validate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "rasa", "data", "validate", "--config", "config.yml", "--domain", "domain.yml",
               "--data", *TRAINING_DATA]
    with open(log_path, "wb") as log:
        code = subprocess.run(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                              ).returncode
    found = validator_findings(log_path.read_text(errors="replace"))
    known = [finding for finding in found if finding in KNOWN_VALIDATOR_NOTES]
    for finding in found:
        if finding not in KNOWN_VALIDATOR_NOTES:
            print(f"  {finding}", file=out)
    verdict = "passed" if code == 0 else f"failed (exit code {code})"
    note = (f"; {len(known)} known notes not shown (responses used by forms, the fallback and the FAQ action, "
            "the FAQ retrieval intent)") if known else ""
    print(f"[validate] rasa data validate {verdict}{note}; its output: {log_path.relative_to(root)}", file=out,
          flush=True)
    return code


def validator_findings(log: str) -> List[str]:
    """The warnings and errors in `rasa data validate`'s output, one line each, in order (Rasa's progress
    lines such as "Validating intents..." left out)."""
    findings: List[str] = []
    lines = _ANSI.sub("", log).splitlines()
    for index, line in enumerate(lines):
        match = _WARNING.search(line)
        if match is None:
            continue
        text = match.group(1).strip()
        if text.endswith(":") and index + 1 < len(lines):  # "Issue found in '<file>':" and the issue below
            text = f"{text} {lines[index + 1].strip()}"
        if not text or text.startswith(("Validating ", "Story structure validation", "No story structure conflicts",
                                         "Considering ")):
            continue
        if text not in findings:
            findings.append(text)
    return findings


class TrainingProgress:
    """Reads Rasa's log as it grows and names a component once it has trained for QUICK_SECONDS, then says
    when its epochs are halfway: a few lines a CI log keeps readable (no bars), however slow the machine."""

    def __init__(self, out: IO[str], started: float) -> None:
        self.out = out
        self.started = started
        self.trained = 0
        self.restored = 0
        self.component: Optional[str] = None
        self.component_started = started
        self.named = False  # the current component's line was printed
        self.halfway = False
        self._pending = ""

    def elapsed(self) -> str:
        return human_duration(timedelta(seconds=time.monotonic() - self.started))

    def read(self, text: str) -> None:
        lines = (self._pending + text).replace("\r", "\n").split("\n")
        self._pending = lines.pop()
        for line in lines:
            started = _STARTED.search(line)
            if started:
                self.trained += 1
                self.component, self.component_started = started.group(1), time.monotonic()
                self.named = self.halfway = False
                continue
            if _RESTORED.search(line):
                self.restored += 1
                continue
            epochs = _EPOCHS.search(line)
            if epochs and self.component and not self.halfway:
                done, total = int(epochs.group(2)), int(epochs.group(3))
                if HALFWAY <= done * 100 // max(total, 1) and done < total:
                    self.halfway = True
                    self._name()
                    self._say(f"  {self.component}: epoch {done}/{total}")

    def tick(self) -> None:
        """Called every second or so: names the current component once it has taken long enough."""
        if self.component and not self.named and time.monotonic() - self.component_started >= QUICK_SECONDS:
            self._name()

    def _name(self) -> None:
        if not self.named:
            self.named = True
            self._say(f"training {self.component}")

    def _say(self, message: str) -> None:
        print(f"[train] {self.elapsed():>7}  {message}", file=self.out, flush=True)
