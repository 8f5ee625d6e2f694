"""The merchant-editable FAQ (data/faq/) and the brand section of data/shop.yml.

Merchants edit these files by hand, so the checks here catch what a hand edit breaks: a topic without
an answer (or an answer nobody can reach), too few questions to learn a topic from, the same question
under two intents (the model cannot learn both), answers too long for a chat bubble, and a brand
section the assistant cannot show.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Set

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.config_files import ConfigError
from bot.settings import PROJECT_ROOT
from bot.shop import Brand, Shop, load_shop

DATA = PROJECT_ROOT / "data"
NLU_FILES = sorted((DATA / "nlu").glob("*.yml")) + sorted((DATA / "faq").glob("*.yml"))
MIN_EXAMPLES = 8
MIN_TOPICS = 12
MAX_ANSWER_CHARS = 600
MAX_BUTTON_TITLE = 20  # Instagram quick replies


def _training_data(files: Iterable[Path]) -> TrainingData:
    return TrainingData().merge(*[load_data(str(path)) for path in files])


@pytest.fixture(scope="module")
def nlu() -> TrainingData:
    return _training_data(NLU_FILES)


def _normal(text: str) -> str:
    """Example text as the model sees it, near enough: case, punctuation and spacing don't count."""
    return " ".join(re.sub(r"[^\w\s&$%'-]", " ", text.lower()).split())


def examples_by_intent(data: TrainingData) -> Dict[str, List[str]]:
    """intent (faq/<topic> for retrieval intents) → example texts."""
    found: Dict[str, List[str]] = defaultdict(list)
    for message in data.intent_examples:
        found[message.get_full_intent()].append(message.get("text"))
    return dict(found)


def faq_problems(examples: Dict[str, List[str]], responses: Dict[str, list]) -> List[str]:
    """What is wrong with the FAQ's topics and answers; empty when nothing is."""
    topics = {intent.split("/", 1)[1] for intent in examples if intent.startswith("faq/")}
    answered = {name.split("/", 1)[1] for name in responses if name.startswith("utter_faq/")}
    problems = [f"faq/{topic} has no answer utter_faq/{topic}" for topic in sorted(topics - answered)]
    problems += [f"utter_faq/{topic} has no questions faq/{topic}" for topic in sorted(answered - topics)]
    problems += [
        f"faq/{topic} has {len(examples[f'faq/{topic}'])} examples, fewer than {MIN_EXAMPLES}"
        for topic in sorted(topics) if len(examples[f"faq/{topic}"]) < MIN_EXAMPLES
    ]
    if len(topics) < MIN_TOPICS:
        problems.append(f"only {len(topics)} FAQ topics, fewer than {MIN_TOPICS}")
    return problems


def duplicated_examples(examples: Dict[str, List[str]]) -> List[str]:
    """Example texts that appear under more than one intent."""
    owners: Dict[str, Set[str]] = defaultdict(set)
    for intent, texts in examples.items():
        for text in texts:
            owners[_normal(text)].add(intent)
    return sorted(f"{text!r} in {sorted(intents)}" for text, intents in owners.items() if len(intents) > 1)


def answer_problems(responses: Dict[str, list]) -> List[str]:
    problems = []
    for name, variants in responses.items():
        if not variants:
            problems.append(f"{name} has no text")
        for variant in variants:
            text = (variant.get("text") or "").strip()
            if not text:
                problems.append(f"{name} has an empty text")
            elif len(text) > MAX_ANSWER_CHARS:
                problems.append(f"{name} is {len(text)} characters, more than {MAX_ANSWER_CHARS}")
            for button in variant.get("buttons") or []:
                title, payload = button.get("title", ""), button.get("payload", "")
                if not title or len(title) > MAX_BUTTON_TITLE:
                    problems.append(f"{name}: button title {title!r} must be 1 to {MAX_BUTTON_TITLE} characters")
                if not payload.startswith("/"):
                    problems.append(f"{name}: button payload {payload!r} must be an intent like /human_handoff")
    return problems


# --- the project's data --------------------------------------------------------------------------


def test_every_topic_has_its_answer_and_enough_questions(nlu: TrainingData) -> None:
    assert faq_problems(examples_by_intent(nlu), nlu.responses) == []


def test_the_faq_covers_the_topics_shoppers_ask_about(nlu: TrainingData) -> None:
    topics = {intent.split("/", 1)[1] for intent in examples_by_intent(nlu) if intent.startswith("faq/")}
    assert {"shipping_times", "shipping_costs", "returns", "refunds", "payment_options", "order_changes",
            "sizing", "warranty", "sustainability"} <= topics


def test_no_example_belongs_to_two_intents(nlu: TrainingData) -> None:
    assert duplicated_examples(examples_by_intent(nlu)) == []


def test_answers_fit_a_chat_bubble(nlu: TrainingData) -> None:
    faq_answers = {name: variants for name, variants in nlu.responses.items() if name.startswith("utter_faq/")}
    assert faq_answers and answer_problems(faq_answers) == []


def test_answers_agree_with_the_shop_file(nlu: TrainingData) -> None:
    shop = load_shop(DATA / "shop.yml")
    texts = " ".join(variant["text"] for variants in nlu.responses.values() for variant in variants)
    assert shop.support_hours in texts
    host = shop.store_url.split("//", 1)[1].rstrip("/")
    assert {found.split("/", 1)[0] for found in re.findall(r"[\w-]+\.example[\w/-]*", texts)} == {host}


def test_about_brand_has_its_examples(nlu: TrainingData) -> None:
    assert len(examples_by_intent(nlu).get("about_brand", [])) >= 12


def test_the_rules_and_the_pipeline_use_the_faq() -> None:
    rules = yaml.safe_load((DATA / "rules" / "faq.yml").read_text())["rules"]
    steps = {tuple(tuple(step.items())[0] for step in rule["steps"]) for rule in rules}
    assert (("intent", "faq"), ("action", "action_answer_faq")) in steps
    assert (("intent", "about_brand"), ("action", "action_about_brand")) in steps
    pipeline = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())["pipeline"]
    names = [component["name"] for component in pipeline]
    selector = next(component for component in pipeline if component["name"] == "ResponseSelector")
    assert selector["retrieval_intent"] == "faq"
    assert names.index("bot.intent_classifier.ShopperIntentClassifier") < names.index("ResponseSelector") < names.index("FallbackClassifier")


def test_the_faq_files_tell_the_merchant_how_to_edit_them() -> None:
    for path in sorted((DATA / "faq").glob("*.yml")):
        header = path.read_text().split("version:", 1)[0]
        assert "How to edit" in header and "make run" in header, path


# --- the checks themselves catch broken data ------------------------------------------------------


def test_the_checks_catch_a_topic_without_an_answer_and_thin_topics() -> None:
    examples = {f"faq/t{i}": [f"question {i} {n}" for n in range(MIN_EXAMPLES)] for i in range(MIN_TOPICS)}
    responses = {f"utter_faq/t{i}": [{"text": "answer"}] for i in range(MIN_TOPICS)}
    assert faq_problems(examples, responses) == []
    examples["faq/t0"] = examples["faq/t0"][:3]
    del responses["utter_faq/t1"]
    responses["utter_faq/orphan"] = [{"text": "nobody asks"}]
    assert faq_problems(examples, responses) == [
        "faq/t1 has no answer utter_faq/t1",
        "utter_faq/orphan has no questions faq/orphan",
        f"faq/t0 has 3 examples, fewer than {MIN_EXAMPLES}",
    ]
    assert faq_problems({"faq/a": ["q"] * MIN_EXAMPLES}, {"utter_faq/a": [{"text": "x"}]}) == [
        f"only 1 FAQ topics, fewer than {MIN_TOPICS}"
    ]


def test_the_checks_catch_a_question_under_two_intents() -> None:
    assert duplicated_examples({"faq/returns": ["Can I return it?"], "redeem_reward": ["can i  return it"]}) == [
        "'can i return it' in ['faq/returns', 'redeem_reward']"
    ]
    assert duplicated_examples({"faq/returns": ["can I return it", "can I return it?"]}) == []


def test_the_checks_catch_long_answers_and_bad_buttons() -> None:
    responses = {
        "utter_faq/long": [{"text": "x" * (MAX_ANSWER_CHARS + 1)}],
        "utter_faq/button": [{"text": "ok", "buttons": [{"title": "Talk to a real human person now", "payload": "human"}]}],
    }
    assert answer_problems(responses) == [
        f"utter_faq/long is {MAX_ANSWER_CHARS + 1} characters, more than {MAX_ANSWER_CHARS}",
        "utter_faq/button: button title 'Talk to a real human person now' must be 1 to 20 characters",
        "utter_faq/button: button payload 'human' must be an intent like /human_handoff",
    ]


def test_rasa_reads_a_faq_file_the_way_the_checks_expect(tmp_path: Path) -> None:
    (tmp_path / "q.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: faq/gifts\n  examples: |\n    - do you sell gift cards\n'
        "- intent: greet\n  examples: |\n    - do you sell gift cards?\n"
    )
    (tmp_path / "a.yml").write_text('version: "3.1"\nresponses:\n  utter_faq/gifts:\n    - text: "Yes."\n')
    data = _training_data([tmp_path / "q.yml", tmp_path / "a.yml"])
    assert examples_by_intent(data) == {"faq/gifts": ["do you sell gift cards"], "greet": ["do you sell gift cards?"]}
    assert data.responses == {"utter_faq/gifts": [{"text": "Yes."}]}
    assert duplicated_examples(examples_by_intent(data)) == ["'do you sell gift cards' in ['faq/gifts', 'greet']"]


# --- the brand section of shop.yml ------------------------------------------------------------------

SHOP_WITHOUT_BRAND = """\
name: Test Shop
store_url: https://shop.example
signup_url: https://shop.example/join
support:
  hours: "weekdays"
  first_reply: "soon"
"""

BRAND = """\
brand:
  story: "We began in a shed."
  mission: "Good chairs."
  values:
    - "Made to last: solid wood."
    - "Fair: honest prices."
"""


def _shop(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shop.yml"
    path.write_text(text)
    return path


def test_the_demo_shop_has_a_brand() -> None:
    brand = load_shop(DATA / "shop.yml").brand
    assert brand is not None and brand.story and brand.mission
    assert 3 <= len(brand.values) <= 5
    assert all(": " in value for value in brand.values)


def test_a_brand_is_read_with_its_values_in_order(tmp_path: Path) -> None:
    shop = load_shop(_shop(tmp_path, SHOP_WITHOUT_BRAND + BRAND))
    assert shop.brand == Brand("We began in a shed.", "Good chairs.", ("Made to last: solid wood.", "Fair: honest prices."))


def test_a_shop_without_a_brand_loads(tmp_path: Path) -> None:
    assert load_shop(_shop(tmp_path, SHOP_WITHOUT_BRAND)).brand is None
    assert load_shop(_shop(tmp_path, SHOP_WITHOUT_BRAND + "brand:\n")).brand is None


def test_shop_stays_constructible_without_a_brand() -> None:
    shop = Shop("S", "https://s.example", "https://s.example/join", "weekdays", "soon")
    assert shop.brand is None and shop.account_url == ""


@pytest.mark.parametrize(
    "brand, place",
    [
        ("brand: we are nice\n", "brand"),
        ("brand:\n  mission: m\n  values: [a]\n", "brand.story"),
        ("brand:\n  story: '  '\n  mission: m\n  values: [a]\n", "brand.story"),
        ("brand:\n  story: s\n  values: [a]\n", "brand.mission"),
        ("brand:\n  story: s\n  mission: m\n", "brand.values"),
        ("brand:\n  story: s\n  mission: m\n  values: one value\n", "brand.values"),
        ("brand:\n  story: s\n  mission: m\n  values: []\n", "brand.values"),
        ("brand:\n  story: s\n  mission: m\n  values: [a, 5]\n", "brand.values[1]"),
        ("brand:\n  story: s\n  mission: m\n  values: [" + ", ".join("v" * 9) + "]\n", "brand.values"),
        ("brand:\n  story: s\n  mission: m\n  values: [a]\n  vision: v\n", "brand.vision"),
    ],
)
def test_a_broken_brand_names_the_file_and_the_place(tmp_path: Path, brand: str, place: str) -> None:
    path = _shop(tmp_path, SHOP_WITHOUT_BRAND + brand)
    with pytest.raises(ConfigError) as caught:
        load_shop(path)
    assert (caught.value.path, caught.value.key) == (path, place)
    assert str(path) in str(caught.value)
