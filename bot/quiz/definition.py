"""Quiz definitions (data/quizzes/*.yml), read and validated on load against the catalog's tags and SKUs;
every problem is a ConfigError naming the file, the place (`questions[2].options[1].weights.tags.lether`) and
what is wrong. The file format: the README's "Quiz files"."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from bot.config_files import ConfigError, read_yaml_mapping
from bot.shared.text import normalize

KINDS = ("single", "multi")
END = "end"
MAX_LABEL = 20  # the shortest button title every channel shows whole (Instagram quick replies)
MIN_WEIGHT, MAX_WEIGHT = -10, 10
MAX_RESULTS = 10
DEFAULT_RESULTS = 3
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

QUIZ_KEYS = ("id", "title", "intro", "start", "results", "known_tags", "email_capture", "questions")
QUESTION_KEYS = ("id", "text", "kind", "next", "options")
OPTION_KEYS = ("id", "label", "synonyms", "reason", "weights", "next", "rules")
WEIGHT_KEYS = ("tags", "products")
RULE_KEYS = ("max_price", "min_price", "exclude_tags", "require_tags")
EMAIL_KEYS = ("prompt", "consent")


@dataclass(frozen=True)
class CatalogVocabulary:
    """What a quiz may name: the catalog's tags and SKUs (from the store, or a catalog file in tests)."""

    tags: FrozenSet[str]
    skus: FrozenSet[str]

    @classmethod
    def of(cls, products: Iterable[Any]) -> "CatalogVocabulary":
        """From any records with .sku and .tags (ORM products, ProductRecords)."""
        tags: set = set()
        skus: set = set()
        for product in products:
            skus.add(product.sku)
            tags.update(product.tags or ())
        return cls(frozenset(tags), frozenset(skus))


@dataclass(frozen=True)
class Rules:
    """Filters an option puts on the results while it is chosen."""

    max_price: Optional[Decimal] = None
    min_price: Optional[Decimal] = None
    exclude_tags: FrozenSet[str] = frozenset()
    require_tags: FrozenSet[str] = frozenset()

    @property
    def has_price(self) -> bool:
        return self.max_price is not None or self.min_price is not None

    def __bool__(self) -> bool:
        return self.has_price or bool(self.exclude_tags) or bool(self.require_tags)


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    synonyms: Tuple[str, ...]
    reason: str  # the phrase quoted back in a recommendation's reason
    tag_weights: Mapping[str, int]
    product_weights: Mapping[str, int]
    next: Optional[str]  # a question id, "end", or None for the question's default
    rules: Rules

    @property
    def has_weights(self) -> bool:
        return bool(self.tag_weights) or bool(self.product_weights)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    kind: str
    options: Tuple[Option, ...]
    next: str  # the default next question id or "end" (resolved at load)
    index: int  # position in the file, for error messages and ordering
    option_by_id: Mapping[str, Option] = field(repr=False, compare=False, default_factory=dict)
    # (normalized phrase, option id) for free-text matching: ids, labels, synonyms
    match_keys: Tuple[Tuple[str, str], ...] = field(repr=False, compare=False, default=())
    is_budget: bool = field(compare=False, default=False)  # some option has a price rule
    next_given: bool = field(compare=False, default=True)  # False: `next` is the file's following question

    @property
    def multi(self) -> bool:
        return self.kind == "multi"

    def option(self, option_id: str) -> Optional[Option]:
        return self.option_by_id.get(option_id)

    def next_after(self, chosen: Tuple[str, ...]) -> str:
        """Where the quiz goes once these options (possibly none: skipped) are chosen."""
        for option in self.options:
            if option.id in chosen and option.next is not None:
                return option.next
        return self.next


@dataclass(frozen=True)
class EmailCapture:
    prompt: str
    consent: str


@dataclass(frozen=True)
class Quiz:
    id: str
    title: str
    intro: str
    start: str
    results: int
    questions: Tuple[Question, ...]
    email_capture: Optional[EmailCapture]
    known_tags: FrozenSet[str]
    source: Path
    question_by_id: Mapping[str, Question] = field(repr=False, compare=False, default_factory=dict)

    def question(self, question_id: str) -> Optional[Question]:
        return self.question_by_id.get(question_id)


# ---------------------------------------------------------------------------------------------
# Parsing


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.path, key, problem)

    def known_keys(self, data: Mapping[str, Any], key: str, allowed: Tuple[str, ...]) -> None:
        for name in data:
            if name not in allowed:
                where = f"{key}.{name}" if key else str(name)
                raise self.fail(where, f"is not a known setting (expected one of: {', '.join(allowed)})")

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        return value

    def text(self, data: Mapping[str, Any], key: str, name: str) -> str:
        value = data.get(name)
        if value is None:
            raise self.fail(key, "is required")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be non-empty text")
        return value.strip()

    def identifier(self, data: Mapping[str, Any], key: str, name: str) -> str:
        value = data.get(name)
        if isinstance(value, bool) or isinstance(value, (int, float)):
            value = str(value)
        value = self.text({name: value}, key, name)
        if not ID_PATTERN.match(value):
            raise self.fail(key, f"{value!r} must be lower-case letters, digits, - and _")
        return value

    def strings(self, data: Mapping[str, Any], key: str, name: str) -> List[str]:
        value = data.get(name, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{key}[{index}]", "must be non-empty text")
        return [item.strip() for item in value]

    def price(self, data: Mapping[str, Any], key: str, name: str) -> Optional[Decimal]:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, not {value!r}")
        if value < 0:
            raise self.fail(key, f"must be at least 0, not {value}")
        return Decimal(str(value))


class _Vocabulary:
    def __init__(self, reader: _Reader, catalog: CatalogVocabulary, known_tags: FrozenSet[str]) -> None:
        self.reader = reader
        self.catalog = catalog
        self.tags = catalog.tags | known_tags

    def tag(self, tag: Any, key: str) -> str:
        if not isinstance(tag, str) or not tag.strip():
            raise self.reader.fail(key, "tags are non-empty text")
        if tag not in self.tags:
            raise self.reader.fail(key, "unknown tag (not in the catalog or known_tags)" + _did_you_mean(tag, self.tags))
        return tag

    def sku(self, sku: Any, key: str) -> str:
        if not isinstance(sku, str) or sku not in self.catalog.skus:
            raise self.reader.fail(key, "unknown SKU (not in the catalog)" + _did_you_mean(str(sku), self.catalog.skus))
        return sku


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _weights(r: _Reader, vocabulary: _Vocabulary, data: Mapping[str, Any], key: str, name: str,
             check: Any) -> Dict[str, int]:
    block = data.get(name)
    if block is None:
        return {}
    block = r.mapping(block, f"{key}.{name}")
    result = {}
    for item, weight in block.items():
        where = f"{key}.{name}.{item}"
        check(item, where)
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise r.fail(where, f"must be a whole number from {MIN_WEIGHT} to {MAX_WEIGHT}, not {weight!r}")
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise r.fail(where, f"must be from {MIN_WEIGHT} to {MAX_WEIGHT}, not {weight}")
        if weight:
            result[item] = weight
    return result


def _rules(r: _Reader, vocabulary: _Vocabulary, data: Any, key: str) -> Rules:
    if data is None:
        return Rules()
    data = r.mapping(data, key)
    r.known_keys(data, key, RULE_KEYS)
    max_price = r.price(data, f"{key}.max_price", "max_price")
    min_price = r.price(data, f"{key}.min_price", "min_price")
    if max_price is not None and min_price is not None and min_price > max_price:
        raise r.fail(f"{key}.min_price", f"{min_price} is above max_price {max_price}")
    excluded = [vocabulary.tag(tag, f"{key}.exclude_tags[{i}]")
                for i, tag in enumerate(r.strings(data, f"{key}.exclude_tags", "exclude_tags"))]
    required = [vocabulary.tag(tag, f"{key}.require_tags[{i}]")
                for i, tag in enumerate(r.strings(data, f"{key}.require_tags", "require_tags"))]
    both = set(excluded) & set(required)
    if both:
        raise r.fail(f"{key}.require_tags", f"{sorted(both)[0]!r} is also excluded")
    return Rules(max_price, min_price, frozenset(excluded), frozenset(required))


def _default_reason(label: str) -> str:
    """"Small space" → "small space"; "IKEA-free" and "TV wall" keep their capitals."""
    if len(label) > 1 and label[0].isupper() and not label[1].isupper():
        return label[0].lower() + label[1:]
    return label


def _option(r: _Reader, vocabulary: _Vocabulary, data: Any, key: str) -> Option:
    data = r.mapping(data, key)
    r.known_keys(data, key, OPTION_KEYS)
    option_id = r.identifier(data, f"{key}.id", "id")
    label = r.text(data, f"{key}.label", "label")
    if len(label) > MAX_LABEL:
        raise r.fail(f"{key}.label", f"{label!r} is {len(label)} characters; button titles are at most {MAX_LABEL}")
    synonyms = tuple(r.strings(data, f"{key}.synonyms", "synonyms"))
    reason = r.text(data, f"{key}.reason", "reason") if data.get("reason") is not None else _default_reason(label)
    weights = data.get("weights")
    tag_weights: Dict[str, int] = {}
    product_weights: Dict[str, int] = {}
    if weights is not None:
        weights = r.mapping(weights, f"{key}.weights")
        r.known_keys(weights, f"{key}.weights", WEIGHT_KEYS)
        tag_weights = _weights(r, vocabulary, weights, f"{key}.weights", "tags", vocabulary.tag)
        product_weights = _weights(r, vocabulary, weights, f"{key}.weights", "products", vocabulary.sku)
    next_id = data.get("next")
    if next_id is not None and not isinstance(next_id, str):
        raise r.fail(f"{key}.next", f"must be a question id or {END!r}, not {next_id!r}")
    rules = _rules(r, vocabulary, data.get("rules"), f"{key}.rules")
    return Option(option_id, label, synonyms, reason, tag_weights, product_weights, next_id, rules)


def _question(r: _Reader, vocabulary: _Vocabulary, data: Any, index: int, following: str) -> Question:
    key = f"questions[{index}]"
    data = r.mapping(data, key)
    r.known_keys(data, key, QUESTION_KEYS)
    question_id = r.identifier(data, f"{key}.id", "id")
    if question_id == END:
        raise r.fail(f"{key}.id", f"{END!r} is reserved for the end of the quiz")
    text = r.text(data, f"{key}.text", "text")
    kind = data.get("kind", "single")
    if kind not in KINDS:
        raise r.fail(f"{key}.kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    raw_options = data.get("options")
    if not isinstance(raw_options, list) or len(raw_options) < 2:
        raise r.fail(f"{key}.options", "must be a list of at least 2 options")
    options: List[Option] = []
    seen_phrases: Dict[str, str] = {}
    match_keys: List[Tuple[str, str]] = []
    for position, raw in enumerate(raw_options):
        option_key = f"{key}.options[{position}]"
        option = _option(r, vocabulary, raw, option_key)
        if any(existing.id == option.id for existing in options):
            raise r.fail(f"{option_key}.id", f"duplicate option id {option.id!r} in this question")
        for phrase_key, phrase in [("id", option.id), ("label", option.label)] + [
                (f"synonyms[{i}]", synonym) for i, synonym in enumerate(option.synonyms)]:
            normalized = normalize(phrase)
            if not normalized:
                continue
            owner = seen_phrases.setdefault(normalized, option.id)
            if owner != option.id:
                raise r.fail(f"{option_key}.{phrase_key}", f"{phrase!r} already picks option {owner!r}; "
                             "free text would be ambiguous")
            if (normalized, option.id) not in match_keys:
                match_keys.append((normalized, option.id))
        options.append(option)
    next_id = data.get("next", following)
    if not isinstance(next_id, str):
        raise r.fail(f"{key}.next", f"must be a question id or {END!r}, not {next_id!r}")
    return Question(
        id=question_id, text=text, kind=kind, options=tuple(options), next=next_id, index=index,
        option_by_id={option.id: option for option in options}, match_keys=tuple(match_keys),
        is_budget=any(option.rules.has_price for option in options), next_given="next" in data,
    )


def _check_graph(r: _Reader, questions: Tuple[Question, ...], start: str) -> None:
    by_id = {question.id: question for question in questions}

    def edges(question: Question) -> List[Tuple[str, str]]:
        """(place in the file, target) for every way out of the question."""
        key = f"questions[{question.index}]"
        out = [(f"{key}.options[{i}].next", option.next) for i, option in enumerate(question.options)
               if option.next is not None]
        # Options without their own next, and a skipped question, go to the default.
        implicit = "" if question.next_given else " (by default, the question after it in the file)"
        out.append((f"{key}.next{implicit}", question.next))
        return out

    for question in questions:
        for place, target in edges(question):
            if target != END and target not in by_id:
                raise r.fail(place, f"{target!r} is not a question id or {END!r}"
                             + _did_you_mean(target, list(by_id)))
    if start not in by_id:
        raise r.fail("start", f"{start!r} is not a question id" + _did_you_mean(start, list(by_id)))

    # Depth-first from the start: a path back to a question on the current path is a cycle.
    state: Dict[str, int] = {}  # 1 on the current path, 2 done
    trail: List[str] = []

    def visit(question_id: str) -> None:
        state[question_id] = 1
        trail.append(question_id)
        for place, target in edges(by_id[question_id]):
            if target == END:
                continue
            if state.get(target) == 1:
                loop = trail[trail.index(target):] + [target]
                raise r.fail(place, f"{target!r} makes a cycle ({' → '.join(loop)})")
            if target not in state:
                visit(target)
        trail.pop()
        state[question_id] = 2

    visit(start)
    for question in questions:
        if question.id not in state:
            raise r.fail(f"questions[{question.index}]",
                         f"question {question.id!r} cannot be reached from the start question {start!r}")


def parse_quiz(data: Mapping[str, Any], path: Path, catalog: CatalogVocabulary) -> Quiz:
    r = _Reader(path)
    r.known_keys(data, "", QUIZ_KEYS)
    quiz_id = r.identifier(data, "id", "id")
    title = r.text(data, "title", "title")
    intro = r.text(data, "intro", "intro")
    known_tags = frozenset(r.strings(data, "known_tags", "known_tags"))
    vocabulary = _Vocabulary(r, catalog, known_tags)

    results = data.get("results", DEFAULT_RESULTS)
    if isinstance(results, bool) or not isinstance(results, int) or not 1 <= results <= MAX_RESULTS:
        raise r.fail("results", f"must be a whole number from 1 to {MAX_RESULTS}, not {results!r}")

    email_capture = None
    if data.get("email_capture") is not None:
        block = r.mapping(data["email_capture"], "email_capture")
        r.known_keys(block, "email_capture", EMAIL_KEYS)
        email_capture = EmailCapture(r.text(block, "email_capture.prompt", "prompt"),
                                     r.text(block, "email_capture.consent", "consent"))

    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise r.fail("questions", "is required and must be a non-empty list")
    ids = [q.get("id") if isinstance(q, dict) else None for q in raw_questions]
    questions: List[Question] = []
    for index, raw in enumerate(raw_questions):
        following = ids[index + 1] if index + 1 < len(ids) and isinstance(ids[index + 1], str) else END
        question = _question(r, vocabulary, raw, index, following)
        if any(existing.id == question.id for existing in questions):
            raise r.fail(f"questions[{index}].id", f"duplicate question id {question.id!r}")
        questions.append(question)

    start = data.get("start", questions[0].id)
    if not isinstance(start, str):
        raise r.fail("start", f"must be a question id, not {start!r}")
    frozen = tuple(questions)
    _check_graph(r, frozen, start)
    return Quiz(
        id=quiz_id, title=title, intro=intro, start=start, results=results, questions=frozen,
        email_capture=email_capture, known_tags=known_tags, source=path,
        question_by_id={question.id: question for question in frozen},
    )


def load_quiz(path: Path, catalog: CatalogVocabulary) -> Quiz:
    return parse_quiz(read_yaml_mapping(path), path, catalog)


def load_quizzes(directory: Path, catalog: CatalogVocabulary) -> Dict[str, Quiz]:
    """Every data/quizzes/*.yml (and *.yaml), by quiz id; two files with one id are an error."""
    quizzes: Dict[str, Quiz] = {}
    for path in sorted(list(directory.glob("*.yml")) + list(directory.glob("*.yaml"))):
        quiz = load_quiz(path, catalog)
        if quiz.id in quizzes:
            raise ConfigError(path, "id", f"quiz id {quiz.id!r} is also used by {quizzes[quiz.id].source}")
        quizzes[quiz.id] = quiz
    return quizzes
