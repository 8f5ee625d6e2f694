"""The quiz engine (bot/quiz): definitions validated on load, branching, scoring, exclusions, reasons,
the closest alternatives, free-text answers, and the shipped demo quiz against the demo catalog."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from bench import quiz as bench_quiz
from bot.config_files import ConfigError
from bot.quiz import (
    AnswerError, CatalogVocabulary, ProductIndex, ProductRecord, load_quiz, load_quizzes, match_option, match_options,
    parse_quiz, recommend, walk,
)
from bot.settings import PROJECT_ROOT
from bot.shared.amounts import parse_budget

QUIZ_DIR = PROJECT_ROOT / "data" / "quizzes"
DEMO_QUIZ = QUIZ_DIR / "room-makeover.yml"
# The demo shop's catalog (data/catalog.yml; it was data/demo/catalog.yml before variants came in).
DEMO_CATALOG = next((path for path in (PROJECT_ROOT / "data" / "catalog.yml", PROJECT_ROOT / "data" / "demo" / "catalog.yml")
                     if path.exists()), PROJECT_ROOT / "data" / "catalog.yml")
SOURCE = Path("data/quizzes/test.yml")


def product(sku: str, price: float, tags: set, in_stock: bool = True) -> ProductRecord:
    return ProductRecord(sku, sku.title(), Decimal(str(price)), frozenset(tags), in_stock, f"https://shop/{sku}")


CATALOG = [
    product("CH-1", 120, {"chair", "oak"}),
    product("CH-2", 300, {"chair", "walnut"}),
    product("CH-3", 250, {"chair", "leather", "oak"}),
    product("SO-1", 900, {"sofa", "linen"}),
    product("DK-1", 150, {"desk", "small-space", "oak"}),
    product("LP-1", 60, {"lamp"}),
    product("LP-2", 40, {"lamp", "oak"}, in_stock=False),
]
VOCABULARY = CatalogVocabulary.of(CATALOG)


def base() -> Dict[str, Any]:
    """what → (seat → size →) material → budget; work → material; light → end."""
    return {
        "id": "test", "title": "Test quiz", "intro": "A few questions.",
        "questions": [
            {"id": "what", "text": "What do you need?", "kind": "single", "next": "material", "options": [
                {"id": "seat", "label": "Seating", "synonyms": ["somewhere to sit"],
                 "weights": {"tags": {"chair": 3, "sofa": 3}}, "rules": {"require_tags": ["chair", "sofa"]},
                 "next": "size"},
                {"id": "work", "label": "Work", "weights": {"tags": {"desk": 5}, "products": {"DK-1": 2}}},
                {"id": "light", "label": "Light", "weights": {"tags": {"lamp": 5}}, "next": "end"},
            ]},
            {"id": "size", "text": "How much space?", "options": [
                {"id": "small", "label": "Small space", "synonyms": ["small flat", "studio"],
                 "weights": {"tags": {"small-space": 6, "sofa": -5}}},
                {"id": "big", "label": "Big room", "weights": {"tags": {"sofa": 4}}},
            ]},
            {"id": "material", "text": "Materials?", "kind": "multi", "options": [
                {"id": "oak", "label": "Oak", "weights": {"tags": {"oak": 4}}},
                {"id": "walnut", "label": "Walnut", "synonyms": ["dark wood"], "weights": {"tags": {"walnut": 4}}},
                {"id": "no-leather", "label": "No leather", "synonyms": ["vegan"],
                 "rules": {"exclude_tags": ["leather"]}},
            ]},
            {"id": "budget", "text": "Budget?", "options": [
                {"id": "low", "label": "Under $150", "reason": "under $150", "rules": {"max_price": 150}},
                {"id": "mid", "label": "Up to $400", "reason": "up to $400", "rules": {"max_price": 400}},
                {"id": "high", "label": "$400 and up", "rules": {"min_price": 400}},
                {"id": "any", "label": "No limit", "synonyms": ["no budget"]},
            ]},
        ],
    }


def quiz_of(data: Dict[str, Any] = None, vocabulary: CatalogVocabulary = VOCABULARY):
    return parse_quiz(data or base(), SOURCE, vocabulary)


def skus(result) -> List[str]:
    return [r.product.sku for r in result.recommendations]


# ---------------------------------------------------------------------------------------------
# Branching and answers


def test_the_path_follows_each_option_branch_and_the_question_defaults() -> None:
    quiz = quiz_of()
    assert quiz.start == "what" and quiz.results == 3
    assert walk(quiz, {}).next_question == "what"
    assert walk(quiz, {"what": "seat"}).next_question == "size"
    assert walk(quiz, {"what": "work"}).next_question == "material"  # the question's own next
    assert walk(quiz, {"what": "seat", "size": "big"}).next_question == "material"  # following question
    path = walk(quiz, {"what": "light"})
    assert path.complete and path.asked == ("what",)
    full = walk(quiz, {"what": "seat", "size": "small", "material": ["oak"], "budget": "any"})
    assert full.complete and full.asked == ("what", "size", "material", "budget")


def test_a_skipped_question_takes_the_default_and_off_path_answers_are_ignored() -> None:
    quiz = quiz_of()
    path = walk(quiz, {"what": (), "material": [], "budget": "low", "size": "small"})
    assert path.asked == ("what", "material", "budget") and path.complete
    assert path.answers["what"] == () and path.ignored == ("size",)


def test_multi_choice_answers_are_kept_in_option_order_and_the_first_branching_option_decides() -> None:
    data = base()
    data["questions"][2]["options"][1]["next"] = "end"  # walnut ends the quiz
    quiz = quiz_of(data)
    path = walk(quiz, {"what": "work", "material": ["no-leather", "walnut", "oak"]})
    assert path.answers["material"] == ("oak", "walnut", "no-leather") and path.complete


@pytest.mark.parametrize("answers, question, problem", [
    ({"colour": "red"}, "colour", "is not a question"),
    ({"what": "sleep"}, "what", "has no option 'sleep'"),
    ({"what": ["seat", "work"]}, "what", "takes one option"),
    ({"material": ["oak", "oak"]}, "material", "chosen twice"),
])
def test_invalid_answers_are_refused(answers, question, problem) -> None:
    with pytest.raises(AnswerError) as error:
        walk(quiz_of(), answers)
    assert error.value.question_id == question and problem in str(error.value)


# ---------------------------------------------------------------------------------------------
# Scoring, exclusions, ranking, reasons


def test_scores_sum_tag_weights_per_matching_tag_and_product_weights() -> None:
    quiz = quiz_of()
    result = recommend(quiz, {"what": "seat", "size": "small", "material": ["oak"], "budget": "any"}, CATALOG)
    # chair 3 + oak 4 = 7 (CH-1, CH-3), chair 3 (CH-2); the sofa scores 3 - 5 < 1; desks and lamps are not seating
    assert [(r.product.sku, r.score) for r in result.recommendations] == [("CH-1", 7), ("CH-3", 7), ("CH-2", 3)]
    work = recommend(quiz, {"what": "work", "material": ["oak"], "budget": "any"}, CATALOG, limit=1)
    assert [(r.product.sku, r.score) for r in work.recommendations] == [("DK-1", 5 + 2 + 4)]
    assert result.relaxed == () and result.note is None and result.considered == 6


def test_a_budget_excludes_products_outside_it() -> None:
    quiz = quiz_of()
    low = recommend(quiz, {"what": "seat", "size": "big", "material": ["oak"], "budget": "low"}, CATALOG)
    assert skus(low) == ["CH-1"]
    high = recommend(quiz, {"what": "seat", "size": "big", "material": [], "budget": "high"}, CATALOG)
    assert skus(high) == ["SO-1"]


def test_excluded_tags_are_never_recommended() -> None:
    quiz = quiz_of()
    result = recommend(quiz, {"what": "seat", "size": "big", "material": ["oak", "no-leather"], "budget": "any"},
                       CATALOG, limit=10)
    assert "CH-3" not in skus(result) and skus(result) == ["CH-1", "SO-1", "CH-2"]  # 7, 7 (dearer), 3


def test_required_tags_of_options_chosen_together_are_alternatives() -> None:
    data = base()
    data["questions"][2]["options"][0]["rules"] = {"require_tags": ["oak"]}
    data["questions"][2]["options"][1]["rules"] = {"require_tags": ["walnut"]}
    quiz = quiz_of(data)
    oak = recommend(quiz, {"what": "seat", "size": "big", "material": ["oak"], "budget": "any"}, CATALOG, limit=10)
    assert sorted(skus(oak)) == ["CH-1", "CH-3"]  # seating and oak: both requirements
    both = recommend(quiz, {"what": "seat", "size": "big", "material": ["oak", "walnut"], "budget": "any"},
                     CATALOG, limit=10)
    assert sorted(skus(both)) == ["CH-1", "CH-2", "CH-3"]


def test_out_of_stock_products_are_never_recommended_even_when_relaxing() -> None:
    data = base()
    data["questions"][0]["options"][2]["weights"]["products"] = {"LP-2": 10}
    quiz = quiz_of(data)
    result = recommend(quiz, {"what": "light"}, CATALOG, limit=10)
    assert skus(result) == ["LP-1"]
    index = ProductIndex(CATALOG)
    assert len(index) == 6 and index.out_of_stock == 1 and "LP-2" not in index.position
    only_sold_out = recommend(quiz, {"what": "light"}, [CATALOG[-1]], limit=10, relax_excluded=True)
    assert only_sold_out.recommendations == () and only_sold_out.note is None


def test_ties_are_broken_by_price_then_sku() -> None:
    catalog = [product("B-2", 100, {"chair"}), product("A-9", 100, {"chair"}), product("C-1", 80, {"chair"}),
               product("D-1", 100, {"chair", "oak"})]
    quiz = quiz_of()
    answers = {"what": "seat", "size": "big", "material": [], "budget": "any"}
    assert skus(recommend(quiz, answers, catalog, limit=4)) == ["C-1", "A-9", "B-2", "D-1"]
    answers["material"] = ["oak"]
    assert skus(recommend(quiz, answers, list(reversed(catalog)), limit=4)) == ["D-1", "C-1", "A-9", "B-2"]


def test_reasons_quote_the_matched_answers_strongest_first_then_the_budget() -> None:
    quiz = quiz_of()
    result = recommend(quiz, {"what": "work", "material": ["oak", "no-leather"], "budget": "low"}, CATALOG)
    desk = result.recommendations[0]
    assert desk.product.sku == "DK-1"
    assert desk.reasons == ("work", "oak", "under $150")  # 7 > 4, then the budget before "no leather"
    assert desk.reason == "because you said: work, oak, under $150"
    seat = recommend(quiz, {"what": "seat", "size": "small", "material": ["oak"], "budget": "any"}, CATALOG)
    assert seat.recommendations[0].reason == "because you said: oak, seating"  # small space did not count for it


def test_no_match_relaxes_the_budget_and_says_so() -> None:
    quiz = quiz_of()
    # seating, small space (sofas −5) and "$400 and up": no chair is that dear, the sofa scores below 1
    result = recommend(quiz, {"what": "seat", "size": "small", "material": [], "budget": "high"}, CATALOG)
    assert skus(result) == ["CH-1", "CH-3", "CH-2"]
    assert result.relaxed == ("budget",)
    assert result.note == ("Nothing matched all your answers, so here are the closest: "
                           "outside your budget ($400 and up).")


def test_a_little_over_budget_comes_before_ignoring_it() -> None:
    quiz = quiz_of()
    catalog = [product("CH-1", 170, {"chair"}), product("CH-9", 900, {"chair", "oak"})]
    result = recommend(quiz, {"what": "seat", "size": "big", "material": ["oak"], "budget": "low"}, catalog)
    assert skus(result) == ["CH-1"] and "a little outside your budget (under $150)" in result.note


def test_no_match_relaxes_the_required_kind_then_weaker_matches() -> None:
    quiz = quiz_of()
    desks = [product("DK-1", 150, {"desk", "small-space", "oak"}), product("LP-1", 60, {"lamp"})]
    result = recommend(quiz, {"what": "seat", "size": "small", "material": [], "budget": "any"}, desks)
    assert skus(result) == ["DK-1"] and result.relaxed == ("required",) and "not only seating" in result.note
    sofas = [product("SO-1", 900, {"sofa"})]
    weaker = recommend(quiz, {"what": "work", "material": ["oak"], "budget": "any"}, sofas)
    assert skus(weaker) == ["SO-1"] and weaker.relaxed == ("preferences",)
    assert weaker.recommendations[0].reason == "the closest match to your answers"


def test_what_the_shopper_ruled_out_is_relaxed_only_on_request() -> None:
    quiz = quiz_of()
    leather = [product("CH-3", 250, {"chair", "leather", "oak"})]
    answers = {"what": "seat", "size": "big", "material": ["no-leather"], "budget": "any"}
    result = recommend(quiz, answers, leather)
    assert result.recommendations == () and result.relaxed == () and result.note is None
    asked = recommend(quiz, answers, leather, relax_excluded=True)
    assert skus(asked) == ["CH-3"] and asked.relaxed == ("excluded",)
    assert "including what you ruled out (no leather)" in asked.note


def test_answers_with_only_rules_rank_every_fitting_product_cheapest_first() -> None:
    quiz = quiz_of()
    result = recommend(quiz, {"what": (), "material": ["no-leather"], "budget": "mid"}, CATALOG, limit=10)
    assert skus(result) == ["LP-1", "CH-1", "DK-1", "CH-2"]
    assert result.recommendations[0].reason == "because you said: up to $400, no leather"


# ---------------------------------------------------------------------------------------------
# Free text


@pytest.mark.parametrize("question, text, expected", [
    ("what", "Seating", "seat"),
    ("what", "seat", "seat"),  # the option id
    ("what", "somewhere to sit please", "seat"),  # a synonym inside a sentence
    ("what", "seatng", "seat"),  # a typo
    ("what", "a bed", None),
    ("what", "seating or work", None),  # two options at a single-choice question
    ("size", "something for a small flat", "small"),
    ("size", "smal spce", "small"),
    ("size", "BIG ROOM!", "big"),
    ("material", "dark wood", "walnut"),
    ("material", "wallnut", "walnut"),
    ("material", "no lether", "no-leather"),  # the longer phrase wins over "leather" typos
    ("budget", "under 100", "low"),
    ("budget", "Under $150", "low"),
    ("budget", "$250", "mid"),
    ("budget", "100-300", "mid"),
    ("budget", "between $150 and $350", "mid"),
    ("budget", "over 500", "high"),
    ("budget", "500+", "high"),
    ("budget", "$1,200", "any"),
    ("budget", "no budget", "any"),
    ("budget", "", None),
])
def test_typed_answers_pick_an_option(question, text, expected) -> None:
    assert match_option(quiz_of().question(question), text) == expected


def test_typed_answers_at_a_multi_choice_question_pick_every_named_option() -> None:
    material = quiz_of().question("material")
    assert match_options(material, "oak and walnut, no leather") == ("oak", "walnut", "no-leather")
    assert match_options(material, "vegan, wallnut") == ("walnut", "no-leather")
    assert match_options(material, "glass") == ()
    assert match_option(material, "oak and walnut") is None  # more than one: use match_options


@pytest.mark.parametrize("text, low, high", [
    ("under 100", None, 100), ("below $99.50", None, Decimal("99.50")), ("$250", None, 250),
    ("100-300", 100, 300), ("300 to 100", 100, 300), ("£1.5k", None, 1500), ("at least 400", 400, None),
    ("$2,000 or more", 2000, None), ("200–400", 200, 400),
])
def test_budgets_are_read_from_text(text, low, high) -> None:
    budget = parse_budget(text)
    assert (budget.low, budget.high) == (low, high)
    assert parse_budget("no idea") is None


# ---------------------------------------------------------------------------------------------
# Validation


def _set(path: str, value: Any):
    """A change to base(): set a dotted/indexed path such as questions.1.options.0.label."""
    def change(data: Dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return change


_DELETE = object()


@pytest.mark.parametrize("change, place, problem", [
    (_set("questions.2.options.1.weights.tags", {"walnutt": 3}), "questions[2].options[1].weights.tags.walnutt",
     "unknown tag (not in the catalog or known_tags); did you mean 'walnut'?"),
    (_set("questions.0.options.1.weights.products", {"DK-9": 2}), "questions[0].options[1].weights.products.DK-9",
     "unknown SKU"),
    (_set("questions.0.options.1.weights.tags.desk", 11), "questions[0].options[1].weights.tags.desk",
     "must be from -10 to 10, not 11"),
    (_set("questions.0.options.1.weights.products", {"DK-1": -12}), "questions[0].options[1].weights.products.DK-1",
     "must be from -10 to 10"),
    (_set("questions.0.options.1.weights.tags.desk", "high"), "questions[0].options[1].weights.tags.desk",
     "whole number"),
    (_set("questions.2.options.2.rules.exclude_tags", ["lether"]), "questions[2].options[2].rules.exclude_tags[0]",
     "unknown tag"),
    (_set("questions.0.options.0.rules.require_tags", ["chair", "bed"]), "questions[0].options[0].rules.require_tags[1]",
     "unknown tag"),
    (_set("questions.3.options.0.rules", {"max_price": 100, "min_price": 200}), "questions[3].options[0].rules.min_price",
     "above max_price"),
    (_set("questions.3.options.0.rules.max_price", "cheap"), "questions[3].options[0].rules.max_price", "must be a number"),
    (_set("questions.3.options.0.rules.budget", 5), "questions[3].options[0].rules.budget", "is not a known setting"),
    (_set("questions.1.options.0.next", "colour"), "questions[1].options[0].next",
     "'colour' is not a question id or 'end'"),
    (_set("questions.0.next", "matrial"), "questions[0].next", "did you mean 'material'?"),
    (_set("start", "intro"), "start", "'intro' is not a question id"),
    (_set("questions.2.next", "size"), "questions[2].next", "'size' makes a cycle (size → material → size)"),
    (_set("questions.3.next", "what"), "questions[3].next",
     "'what' makes a cycle (what → size → material → budget → what)"),
    (_set("questions.1.options.1.next", "size"), "questions[1].options[1].next", "'size' makes a cycle (size → size)"),
    (_set("questions.0.options.0.next", "material"), "questions[1]", "question 'size' cannot be reached"),
    (_set("questions.2.id", "what"), "questions[2].id", "duplicate question id 'what'"),
    (_set("questions.2.options.1.id", "oak"), "questions[2].options[1].id", "duplicate option id 'oak'"),
    (_set("questions.2.options.1.label", "Walnut from sustainably managed forests"), "questions[2].options[1].label",
     "is 39 characters; button titles are at most 20"),
    (_set("questions.2.options.0.synonyms", ["dark wood"]), "questions[2].options[1].synonyms[0]",
     "'dark wood' already picks option 'oak'"),
    (_set("questions.1.text", _DELETE), "questions[1].text", "is required"),
    (_set("questions.1.options.0.label", _DELETE), "questions[1].options[0].label", "is required"),
    (_set("questions.1.options", [{"id": "x", "label": "X"}]), "questions[1].options", "at least 2 options"),
    (_set("questions.1.kind", "ranking"), "questions[1].kind", "must be one of single, multi"),
    (_set("questions.1.options.0.weight", {}), "questions[1].options[0].weight", "is not a known setting"),
    (_set("questions.1.options.0.weights.colours", {}), "questions[1].options[0].weights.colours",
     "is not a known setting"),
    (_set("questions.1.id", "Size Question"), "questions[1].id", "lower-case letters"),
    (_set("questions.1.id", "end"), "questions[1].id", "reserved"),
    (_set("questions", []), "questions", "non-empty list"),
    (_set("title", _DELETE), "title", "is required"),
    (_set("results", 0), "results", "from 1 to 10"),
    (_set("email_capture", {"prompt": "Email you?"}), "email_capture.consent", "is required"),
    (_set("quiz_points", 25), "quiz_points", "is not a known setting"),
])
def test_invalid_definitions_name_the_file_and_place(change, place, problem) -> None:
    data = base()
    change(data)
    with pytest.raises(ConfigError) as error:
        parse_quiz(data, SOURCE, VOCABULARY)
    assert error.value.path == SOURCE and error.value.key == place
    assert problem in error.value.problem
    assert str(error.value).startswith(f"data/quizzes/test.yml: {place}: ")


def test_a_question_with_no_next_of_its_own_is_checked_along_its_default() -> None:
    data = base()
    data["questions"][1]["options"][0]["next"] = "what"
    with pytest.raises(ConfigError) as error:
        parse_quiz(data, SOURCE, VOCABULARY)
    assert error.value.key == "questions[1].options[0].next" and "(what → size → what)" in error.value.problem


def test_known_tags_allow_tags_no_product_carries_yet() -> None:
    data = base()
    data["questions"][2]["options"][2]["rules"]["exclude_tags"] = ["velvet"]
    with pytest.raises(ConfigError):
        parse_quiz(data, SOURCE, VOCABULARY)
    data["known_tags"] = ["velvet"]
    assert parse_quiz(data, SOURCE, VOCABULARY).known_tags == frozenset({"velvet"})


def test_quiz_files_are_read_with_their_path_and_ids_are_unique(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(yaml.safe_dump(base()))
    (tmp_path / "b.yml").write_text(yaml.safe_dump(base()))
    with pytest.raises(ConfigError) as error:
        load_quizzes(tmp_path, VOCABULARY)
    assert error.value.path == tmp_path / "b.yml" and error.value.key == "id" and "also used by" in error.value.problem
    (tmp_path / "b.yml").write_text("questions: [")
    with pytest.raises(ConfigError) as error:
        load_quizzes(tmp_path, VOCABULARY)
    assert error.value.path == tmp_path / "b.yml" and "not valid YAML" in error.value.problem
    (tmp_path / "b.yml").unlink()
    assert list(load_quizzes(tmp_path, VOCABULARY)) == ["test"]


# ---------------------------------------------------------------------------------------------
# The shipped demo quiz


def _catalog_file(path: Path) -> List[ProductRecord]:
    """One record per product, read straight from the YAML (no database): a product with variants
    costs its cheapest in-stock variant and is in stock while any variant is."""
    records = []
    for item in yaml.safe_load(path.read_text())["products"]:
        variants = item.get("variants") or []
        in_stock = item.get("in_stock", True)
        price = item.get("price")
        if variants:
            available = [v for v in variants if v.get("in_stock", True)]
            in_stock = in_stock and bool(available)
            price = min(v.get("price", price) for v in (available or variants))
        records.append(ProductRecord(item["sku"], item["title"], Decimal(str(price)), frozenset(item.get("tags") or ()),
                                     in_stock))
    return records


@pytest.fixture(scope="module")
def demo_catalog() -> List[ProductRecord]:
    return _catalog_file(DEMO_CATALOG)


def _all_answer_sets(quiz):
    """Every path through the quiz with one option per question (each option of each question once)."""
    def paths(question_id, answers):
        if question_id == "end":
            yield dict(answers)
            return
        question = quiz.question(question_id)
        for option in question.options:
            chosen = [option.id] if question.multi else option.id
            yield from paths(question.next_after((option.id,)), {**answers, question_id: chosen})
    return list(paths(quiz.start, {}))


def test_the_demo_quiz_loads_against_the_demo_catalog(demo_catalog) -> None:
    quiz = load_quiz(DEMO_QUIZ, CatalogVocabulary.of(demo_catalog))
    assert quiz.id == "room-makeover" and len(quiz.questions) == 7 and quiz.results == 3
    assert {q.kind for q in quiz.questions} == {"single", "multi"}
    assert quiz.email_capture is not None and "unsubscribe" in quiz.email_capture.consent
    assert quiz.known_tags == frozenset({"leather"})
    assert any(o.rules.max_price for o in quiz.question("budget").options)
    assert any(o.rules.exclude_tags == {"leather"} for o in quiz.question("materials").options)
    assert any(o.product_weights for q in quiz.questions for o in q.options)
    assert list(load_quizzes(QUIZ_DIR, CatalogVocabulary.of(demo_catalog))) == ["room-makeover"]


def test_every_path_of_the_demo_quiz_asks_five_questions_and_recommends_in_stock_products(demo_catalog) -> None:
    quiz = load_quiz(DEMO_QUIZ, CatalogVocabulary.of(demo_catalog))
    index = ProductIndex(demo_catalog)
    in_stock = {p.sku for p in demo_catalog if p.in_stock}
    answer_sets = _all_answer_sets(quiz)
    assert len(answer_sets) == (2 + 3 + 2) * 5 * 4 * 5  # living, office, dining branches; materials, extras, budget
    for answers in answer_sets:
        result = recommend(quiz, answers, index)
        assert result.path.complete and len(result.path.asked) == 5
        assert set(skus(result)) <= in_stock and result.recommendations, answers
        assert all(r.reason for r in result.recommendations)


def test_the_demo_quiz_recommends_what_a_shopper_would_expect(demo_catalog) -> None:
    quiz = load_quiz(DEMO_QUIZ, CatalogVocabulary.of(demo_catalog))
    office = recommend(quiz, {"room": "office", "work-style": "standing", "materials": ["oak"], "extras": ["nothing"],
                              "budget": "under-400"}, demo_catalog)
    assert office.recommendations[0].product.title == "Rise standing desk"
    assert office.recommendations[0].reason == "because you said: a standing desk, a home office, up to $400"
    small = recommend(quiz, {"room": "living", "living-space": "small", "materials": ["oak", "no-leather"],
                             "extras": [], "budget": "under-400"}, demo_catalog)
    assert [r.product.sku for r in small.recommendations][:2] == ["OE-CH-001", "OE-TB-001"]
    assert small.recommendations[0].reason == "because you said: small space, living room, up to $400"
    assert small.recommendations[1].reason == "because you said: small space, oak, up to $400"
    assert match_option(quiz.question("living-space"), "something for a small flat") == "small"
    assert match_option(quiz.question("budget"), "under 100") == "under-150"
    assert match_options(quiz.question("materials"), "oak, no leather") == ("oak", "no-leather")


# ---------------------------------------------------------------------------------------------
# The benchmark's code paths, small (no timing is asserted: the figures depend on the machine)


def test_the_quiz_benchmark_runs_and_writes_its_report(tmp_path: Path) -> None:
    first = bench_quiz.generate_catalog(300, ["OE-DK-001"], ["leather", "velvet-free"])
    assert first == bench_quiz.generate_catalog(300, ["OE-DK-001"], ["leather", "velvet-free"])  # seeded
    assert first[0].sku == "OE-DK-001" and any("velvet-free" in p.tags for p in first)
    assert len({p.sku for p in first}) == 300 and any(not p.in_stock for p in first)
    report = bench_quiz.run(products=400, recommendations=60, index_builds=2, matches=40,
                            json_path=tmp_path / "quiz.json", searches=50, search_index_builds=2)
    saved = json.loads((tmp_path / "quiz.json").read_text())
    assert saved["results"]["recommend"]["count"] == 60 and saved["results"]["match"]["count"] == 40
    assert saved["dataset"]["products"] == 400 and saved["targets"][0]["result"] in ("PASS", "MISS")
    text = bench_quiz.format_report(report)
    assert "recommend" in text and "p99" in text and "search_index" in text and "not understood" in text


def test_the_quiz_benchmark_times_catalog_search(tmp_path: Path) -> None:
    records = bench_quiz.generate_catalog(300)
    items = bench_quiz.catalog_items(records)
    assert items == bench_quiz.catalog_items(records)  # seeded
    assert [item.sku for item in items] == [record.sku for record in records]
    several = [item for item in items if len(item.variants) > 1]
    assert several and all(2 <= len(item.variants) <= 4 for item in several)
    assert {name for item in several for variant in item.variants for name, _ in variant.options} == {
        "Colour", "Finish", "Size"}
    assert any(item.in_stock and not all(variant.in_stock for variant in item.variants) for item in several)
    assert all(not item.in_stock for item, record in zip(items, records) if not record.in_stock)

    report = bench_quiz.run(products=300, recommendations=20, index_builds=1, matches=10,
                            json_path=tmp_path / "quiz.json", searches=50, search_index_builds=2)
    saved = json.loads((tmp_path / "quiz.json").read_text())
    found, built = saved["results"]["search"], saved["results"]["search_index"]
    assert found["count"] == 50 and built["count"] == 2
    assert found["exact"] + found["relaxed"] + found["empty"] + found["not_understood"] == 50
    assert sum(row["count"] for row in found["by_kind"].values()) == 50
    assert sum(found["relaxed_by"].values()) == found["relaxed"] and found["exact"] > 0
    assert 0 < found["with_preferences"] < 50 and 0 <= found["other_variant_matches"] <= found["matches"]
    for stats in (found, built):
        assert 0 <= stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
        assert stats["per_second"] > 0
    dataset = saved["dataset"]["search"]
    assert dataset["items"] == 300 and 0 < dataset["in_stock"] <= 300 < dataset["variants"]
    assert [row["target"] for row in saved["targets"]] == ["recommend p99 ≤ 20 ms", "search p99 ≤ 20 ms"]
    assert saved["targets"][1]["value"] == found["p99_ms"] and saved["targets"][1]["result"] in ("PASS", "MISS")
    assert report["results"]["search"]["count"] == 50

    # The command line: --searches and --search-index-builds, the report printed, --check on the targets.
    json_path = tmp_path / "cli.json"
    code = bench_quiz.main(["--products", "300", "--recommendations", "10", "--index-builds", "1", "--matches", "5",
                            "--searches", "20", "--search-index-builds", "1", "--json", str(json_path)])
    assert code == 0 and json.loads(json_path.read_text())["results"]["search"]["count"] == 20
    with pytest.raises(SystemExit):
        bench_quiz.main(["--searches", "0"])
