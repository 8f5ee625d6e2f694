"""`make eval-nlu`: the trained model against the held-out messages in tests/nlu/heldout/.

Those messages were written independently of the training data and are never trained on
(tests/nlu/test_heldout_is_not_trained.py keeps it so). A message counts the way the shopper would feel it:
judged on the messages that are not also training examples (written independently, some short
messages — "thanks a lot", "do you ship to canada" — were bound to be written by both sides; those are
reported apart). An in-scope message is right when the model's intent is its label (a `faq/<topic>` label needs `faq` and,
reported apart, the topic); an off-topic message is right when the bot would answer with its "I can't help
with that" or "here is what I can do" menu — intent `out_of_scope`, `nlu_fallback`, or `faq` with an answer
the FAQ action is not sure of (actions/faq.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import yaml

HELDOUT_DIR = Path(__file__).resolve().parent / "heldout"
OFF_TOPIC = "off_topic"
MENU_INTENTS = frozenset({"out_of_scope", "nlu_fallback"})
OTHER_LANGUAGE = "other_language"
ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")

# The targets of issue 14, and the lower bars CI enforces (a guard against regressions, not a target).
TARGET_IN_SCOPE, TARGET_OFF_TOPIC = 0.92, 0.80
CI_IN_SCOPE, CI_OFF_TOPIC = 0.88, 0.75


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # an intent, "faq/<topic>", or OFF_TOPIC
    seen: bool = False  # the same text (ignoring case and punctuation) is a training example


@dataclass(frozen=True)
class Verdict:
    example: Example
    intent: str
    confidence: float
    topic: Optional[str]
    outcome: str  # what the bot would do: the intent, or OFF_TOPIC for the menu answers

    @property
    def correct(self) -> bool:
        return self.outcome == base_label(self.example.label)


@dataclass(frozen=True)
class LanguageVerdict:
    """A message of languages.yml: its language ("en" for English with foreign names), and what the NLU said."""

    text: str
    language: str
    intent: str
    detected: Optional[str]  # the `language` entity, when the intent is other_language

    @property
    def correct(self) -> bool:
        if self.language == "en":
            return self.intent != OTHER_LANGUAGE
        return self.intent == OTHER_LANGUAGE and self.detected == self.language


@dataclass
class Report:
    verdicts: List[Verdict] = field(default_factory=list)  # the unseen messages: what the figures judge
    seen: List[Verdict] = field(default_factory=list)  # messages that are also training examples
    seconds: float = 0.0
    languages: List[LanguageVerdict] = field(default_factory=list)  # languages.yml (bot.nlu.LanguageClassifier)

    @property
    def in_scope(self) -> List[Verdict]:
        return [v for v in self.verdicts if v.example.label != OFF_TOPIC]

    @property
    def off_topic(self) -> List[Verdict]:
        return [v for v in self.verdicts if v.example.label == OFF_TOPIC]

    @property
    def seen_accuracy(self) -> float:
        return self._share(self.seen)

    @staticmethod
    def _share(verdicts: Sequence[Verdict]) -> float:
        return sum(v.correct for v in verdicts) / len(verdicts) if verdicts else 0.0

    @property
    def in_scope_accuracy(self) -> float:
        return self._share(self.in_scope)

    @property
    def off_topic_recall(self) -> float:
        return self._share(self.off_topic)

    @property
    def faq_topic_accuracy(self) -> float:
        faq = [v for v in self.in_scope if v.example.label.startswith("faq/") and v.correct]
        return sum(v.topic == v.example.label for v in faq) / len(faq) if faq else 0.0


def base_label(label: str) -> str:
    return "faq" if label.startswith("faq/") else label


def normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def training_texts(root: Path) -> Set[str]:
    """Every NLU training example of the project at `root`, normalized."""
    texts: Set[str] = set()
    for path in [*sorted((root / "data" / "nlu").glob("*.yml")), root / "data" / "faq" / "questions.yml"]:
        for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            if "intent" not in block:
                continue
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    texts.add(normalized(ANNOTATION.sub(r"\1", line[2:])))
    return texts


def load_heldout(directory: Path = HELDOUT_DIR, trained: Optional[Set[str]] = None) -> List[Example]:
    in_scope = yaml.safe_load((directory / "in_scope.yml").read_text(encoding="utf-8"))
    off_topic = yaml.safe_load((directory / "off_topic.yml").read_text(encoding="utf-8"))
    labelled = [(str(text), label) for label, texts in (in_scope.get("intents") or {}).items() for text in texts]
    labelled += [(str(text), OFF_TOPIC) for text in off_topic.get("off_topic") or []]
    trained = trained if trained is not None else set()
    return [Example(text, label, normalized(text) in trained) for text, label in labelled]


def load_languages(directory: Path = HELDOUT_DIR) -> List[Tuple[str, str]]:
    """(language code, text) of languages.yml: messages in six languages, and English ("en") that must stay
    English."""
    languages = yaml.safe_load((directory / "languages.yml").read_text(encoding="utf-8")).get("languages") or {}
    return [(str(code), str(text)) for code, texts in languages.items() for text in texts]


def language_verdict(language: str, text: str, parse: Mapping[str, Any]) -> LanguageVerdict:
    intent = (parse.get("intent") or {}).get("name") or "nlu_fallback"
    detected = next((entity.get("value") for entity in parse.get("entities") or []
                     if entity.get("entity") == "language"), None)
    return LanguageVerdict(text, language, intent, detected if intent == OTHER_LANGUAGE else None)


def outcome_of(parse: Mapping[str, Any]) -> Tuple[str, float, Optional[str], str]:
    """(intent, confidence, faq topic, what the bot would do) for one parse result."""
    from actions.faq import FAQ_CONFIDENCE, faq_confidence, selected_answer

    intent = (parse.get("intent") or {}).get("name") or "nlu_fallback"
    confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
    topic = None
    if intent == "faq":
        answer, _ = selected_answer(dict(parse))
        topic = answer[len("utter_"):] if answer else None
    if intent in MENU_INTENTS or (intent == "faq" and faq_confidence(dict(parse)) < FAQ_CONFIDENCE):
        return intent, confidence, topic, OFF_TOPIC
    return intent, confidence, topic, intent


def quiet_rasa() -> None:
    """Rasa logs every parse at debug level; only warnings belong in the report.

    structlog is left on the project's own configuration (bot.log): Rasa's `configure_structlog` replaces
    it for the whole process, and inside pytest that sent every later test's structured logs to stdlib
    logging instead of stderr, where those tests look for them."""
    import logging

    from rasa.utils.common import configure_logging_and_warnings

    from bot.log import configure_logging

    configure_logging_and_warnings(logging.WARNING)
    configure_logging()


async def _parse_all(model: Path, texts: Sequence[str]) -> List[Dict[str, Any]]:
    from rasa.core.agent import Agent

    quiet_rasa()

    agent = Agent.load(str(model))
    results = []
    for text in texts:
        results.append(await agent.parse_message(text))
    return results


def evaluate(model: Path, examples: Sequence[Example], languages: Sequence[Tuple[str, str]] = ()) -> Report:
    started = time.perf_counter()
    parses = asyncio.run(_parse_all(model, [e.text for e in examples] + [text for _, text in languages]))
    report = Report(seconds=time.perf_counter() - started)
    report.languages = [language_verdict(language, text, parse)
                        for (language, text), parse in zip(languages, parses[len(examples):])]
    for example, parse in zip(examples, parses):
        intent, confidence, topic, outcome = outcome_of(parse)
        verdict = Verdict(example, intent, confidence, topic, outcome)
        (report.seen if example.seen else report.verdicts).append(verdict)
    return report


def per_label(report: Report) -> List[Tuple[str, int, float, float]]:
    """(label, support, recall, precision) per label (faq topics folded into faq)."""
    support: Counter = Counter()
    hits: Counter = Counter()
    predicted: Counter = Counter()
    for verdict in report.verdicts:
        label = base_label(verdict.example.label)
        support[label] += 1
        predicted[verdict.outcome] += 1
        hits[label] += verdict.correct
    rows = []
    for label in sorted(support):
        recall = hits[label] / support[label]
        precision = hits[label] / predicted[label] if predicted[label] else 0.0
        rows.append((label, support[label], recall, precision))
    return rows


def confusions(report: Report, limit: int = 15) -> List[Tuple[Tuple[str, str], int, List[str]]]:
    pairs: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    for verdict in report.verdicts:
        if not verdict.correct:
            pairs[(base_label(verdict.example.label), verdict.outcome)].append(verdict.example.text)
    ranked = sorted(pairs.items(), key=lambda item: -len(item[1]))[:limit]
    return [(pair, len(texts), texts[:3]) for pair, texts in ranked]


def print_report(report: Report, out=sys.stdout) -> None:
    n_in, n_off, n_all = len(report.in_scope), len(report.off_topic), len(report.verdicts) + len(report.seen)
    print(f"held-out: {n_in} in-scope and {n_off} off-topic messages that are not training examples "
          f"(and {len(report.seen)} that are, {report.seen_accuracy:.3f} right); parsed in {report.seconds:.1f} s "
          f"({1000 * report.seconds / max(1, n_all):.1f} ms a message)", file=out)
    print(f"in-scope accuracy   {report.in_scope_accuracy:.3f}  (target {TARGET_IN_SCOPE}, CI bar {CI_IN_SCOPE})",
          file=out)
    print(f"off-topic recall    {report.off_topic_recall:.3f}  (target {TARGET_OFF_TOPIC}, CI bar {CI_OFF_TOPIC})",
          file=out)
    print(f"faq topic accuracy  {report.faq_topic_accuracy:.3f}  (of faq messages recognised as faq)", file=out)
    print("\nper label                  n   recall  precision", file=out)
    for label, support, recall, precision in per_label(report):
        print(f"  {label:<22} {support:>4}   {recall:.2f}    {precision:.2f}", file=out)
    print("\nworst confusions (label -> what the bot did)", file=out)
    for (label, outcome), count, samples in confusions(report):
        print(f"  {count:>3}  {label} -> {outcome}: " + " | ".join(repr(s) for s in samples), file=out)
    if report.languages:
        print_languages(report.languages, out)


def language_figures(verdicts: Sequence[LanguageVerdict]) -> Dict[str, Tuple[int, int]]:
    """(right, all) per language of languages.yml."""
    figures: Dict[str, Tuple[int, int]] = {}
    for verdict in verdicts:
        right, total = figures.get(verdict.language, (0, 0))
        figures[verdict.language] = (right + verdict.correct, total + 1)
    return figures


def print_languages(verdicts: Sequence[LanguageVerdict], out=sys.stdout) -> None:
    figures = language_figures(verdicts)
    foreign = [v for v in verdicts if v.language != "en"]
    print(f"\nother languages: {sum(v.correct for v in foreign)}/{len(foreign)} answered as other_language in "
          "their language (" + ", ".join(f"{code} {right}/{total}" for code, (right, total) in figures.items()
                                         if code != "en") + ")", file=out)
    right, total = figures.get("en", (0, 0))
    print(f"English with foreign names and words: {right}/{total} kept English", file=out)
    for verdict in verdicts:
        if not verdict.correct:
            print(f"  {verdict.language}: {verdict.text!r} -> {verdict.intent} {verdict.detected or ''}", file=out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from bot.training import model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=model_path())
    parser.add_argument("--check", action="store_true", help="exit 1 below the CI bars")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    from bot.settings import PROJECT_ROOT

    report = evaluate(args.model, load_heldout(trained=training_texts(PROJECT_ROOT)), load_languages())
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "in_scope_accuracy": report.in_scope_accuracy,
            "off_topic_recall": report.off_topic_recall,
            "faq_topic_accuracy": report.faq_topic_accuracy,
            "per_label": per_label(report),
            "languages": language_figures(report.languages),
        }, indent=2))
    if args.check and (report.in_scope_accuracy < CI_IN_SCOPE or report.off_topic_recall < CI_OFF_TOPIC):
        print("held-out figures below the CI bars", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
