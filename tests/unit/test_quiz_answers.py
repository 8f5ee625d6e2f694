"""Typed quiz answers read as options (bot.quiz.answers) and what a reply asks of the quiz (bot.quiz.runs):
the way shoppers actually type — typos, other forms of a word, "the first one", "six of us", "under four
hundred bucks", "idk", "never mind" — against the shipped demo quiz, plus the shared helpers they use."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bot.quiz.answers import (
    ambiguous_options, clear_options, leftover_text, match_coverage, match_option, match_options, names_an_amount,
)
from bot.quiz.definition import CatalogVocabulary, load_quiz
from bot.quiz.runs import FINISH, RESTART, SKIP, STOP, Reply, asks_for_search, control_of
from bot.shared.amounts import parse_budget, spelled_numbers
from bot.shared.text import stem
from tests.unit.test_quiz_engine import DEMO_CATALOG, DEMO_QUIZ, _catalog_file, quiz_of


@pytest.fixture(scope="module")
def demo_quiz():
    return load_quiz(DEMO_QUIZ, CatalogVocabulary.of(_catalog_file(DEMO_CATALOG)))


@pytest.mark.parametrize("question, text, expected", [
    # the words people use for the room
    ("room", "its for my living room", "living"),
    ("room", "the lounge", "living"),
    ("room", "home ofice", "office"),
    ("room", "i work from home", "office"),
    ("room", "working from home mostly", "office"),  # another form of the synonym's words
    ("room", "dinning room", "dining"),
    ("room", "kitchen pls", "dining"),
    ("room", "bedroom", None),
    # natural answers that looped before
    ("work-style", "i stand most of the day", "standing"),
    ("work-style", "I STAND", "standing"),
    ("work-style", "i sit all day", "seated"),
    ("work-style", "both", "standing"),  # sitting and standing: a sit-stand desk
    ("work-style", "a bit of both tbh", "standing"),
    ("work-style", "on my laptop sometimes", "corner"),
    ("living-space", "pretty small tbh", "small"),
    ("living-space", "we have loads of room", "roomy"),
    # positions
    ("room", "the first one", "living"),
    ("room", "option 3", "dining"),
    ("room", "the last one", "dining"),
    ("room", "2", "office"),  # a bare digit where the options are not numbers
    ("room", "second one please", "office"),
    ("room", "option 7", None),
    # counts
    ("dining-size", "usually six of us", "many"),
    ("dining-size", "just the 2 of us", "few"),
    ("dining-size", "we are five", "many"),  # between the ranges: the larger (five need a table for six)
    ("dining-size", "3", "few"),
    ("dining-size", "about 10 people", "many"),
    ("dining-size", "2", "few"),  # a digit here is a count, never a position
    # budgets
    ("budget", "under 400 bucks", "under-400"),
    ("budget", "under four hundred", "under-400"),
    ("budget", "nothing over 400", "under-400"),
    ("budget", "around 300", "under-400"),
    ("budget", "a grand", "under-1000"),
    ("budget", "400ish", "under-400"),
    ("budget", "whatever", "any"),
    ("budget", "money no object", "any"),
    ("budget", "cheap", "under-150"),
    ("budget", "the first one", "under-150"),
    ("budget", "idk", None),
])
def test_typed_answers_pick_the_option_a_person_would(demo_quiz, question, text, expected) -> None:
    assert match_option(demo_quiz.question(question), text) == expected


@pytest.mark.parametrize("text, expected", [
    ("oak n linen", ("oak", "soft")),
    ("first and third", ("oak", "ash")),
    ("i love dark wood but no leather", ("walnut", "no-leather")),
    ("wallnut and linnen", ("walnut", "soft")),
    ("both", ()),  # both of what? nothing to pick
])
def test_a_multi_choice_answer_picks_every_option_it_names(demo_quiz, text, expected) -> None:
    assert match_options(demo_quiz.question("materials"), text) == expected


def test_two_options_at_a_single_choice_question_are_asked_about_not_guessed(demo_quiz) -> None:
    room = demo_quiz.question("room")
    assert match_options(room, "both living and dining") == ()
    assert ambiguous_options(room, "both living and dining") == ("living", "dining")
    assert ambiguous_options(room, "living room") == ()
    assert ambiguous_options(demo_quiz.question("materials"), "oak and walnut") == ()  # multi: both are kept


def test_coverage_leaves_filler_aside(demo_quiz) -> None:
    assert match_coverage(demo_quiz.question("work-style"), "i stand most of the day") >= 0.5
    assert match_coverage(demo_quiz.question("work-style"), "i sit all day") >= 0.5
    assert match_coverage(demo_quiz.question("dining-size"), "how many points do I have?") < 0.5
    assert match_coverage(demo_quiz.question("budget"), "under four hundred bucks") == 1.0
    assert match_coverage(demo_quiz.question("room"), "the first one") == 1.0


@pytest.mark.parametrize("question, text, expected", [
    ("budget", "under 400 bucks", ("under-400",)),
    ("budget", "cheap stuff", ("under-150",)),
    ("budget", "2 people", ()),  # a number that is not money
    ("budget", "oak", ()),
    ("dining-size", "usually six of us", ("many",)),
    ("living-space", "living", ()),  # no typo tolerance ahead of time: "living" is not "roomy"
    ("living-space", "small", ("small",)),
    ("work-style", "how many points do i have", ()),
    ("dining-size", "the last one", ()),  # a position points at the question on screen; "one" is no count
    ("budget", "the first one", ()),
])
def test_an_answer_to_a_question_not_yet_asked_must_be_clear(demo_quiz, question, text, expected) -> None:
    assert clear_options(demo_quiz.question(question), text) == expected


def test_the_rest_of_a_message_after_its_answer(demo_quiz) -> None:
    assert leftover_text(demo_quiz.question("room"), "Dining room, usually six of us") == "usually six of us"
    assert leftover_text(demo_quiz.question("room"), "living room") == ""


@pytest.mark.parametrize("text, expected", [
    ("under 400 bucks", True), ("$250", True), ("1.5k", True), ("four hundred max", True),
    ("2 people", False), ("option 3", False), ("oak", False),
])
def test_an_amount_is_told_from_a_number(text, expected) -> None:
    assert names_an_amount(text) is expected


def test_the_generic_quiz_still_reads_its_answers() -> None:
    quiz = quiz_of()
    assert match_option(quiz.question("what"), "the third one") == "light"
    assert match_option(quiz.question("size"), "sooo small flat") == "small"
    assert match_options(quiz.question("material"), "number 1 and 2") == ("oak", "walnut")


@pytest.mark.parametrize("text, expected", [
    ("stop", STOP), ("never mind", STOP), ("nevermind", STOP), ("nvm", STOP), ("quit the quiz", STOP),
    ("cancel", STOP), ("cancle", STOP), ("nevermnd", STOP), ("ok can we stop now", STOP), ("forget it", STOP),
    ("Stop!", STOP), ("idk", SKIP), ("whatever", SKIP), ("dunno tbh", SKIP), ("no preference", SKIP),
    ("can i skip this one", SKIP), ("start over", RESTART), ("lets start again", RESTART), ("done", FINISH),
    ("thats it", FINISH), ("donee", FINISH), ("ok", FINISH), ("oak", None), ("i stand most of the day", None),
    ("please stop sending me emails about my order and tell me where it is", None),  # long: not a quiz control
])
def test_control_words_as_shoppers_type_them(text, expected) -> None:
    assert control_of(Reply(text)) == expected


def test_a_sure_control_intent_counts_and_a_vague_one_does_not() -> None:
    assert control_of(Reply("let's call it a day", "stop_quiz", 0.9)) == STOP
    assert control_of(Reply("let's call it a day", "stop_quiz", 0.3)) is None
    assert control_of(Reply("let's call it a day", "stop_quiz", 0.9), exact_only=True) is None


@pytest.mark.parametrize("text, intent, expected", [
    ("show me floor lamps", "product_search", True),
    ("do you have oak desks?", "product_search", True),
    ("can you find me a sofa under 1000", "product_search", True),
    ("under 400", "product_search", False),  # an answer, whatever the NLU thinks
    ("oak desks", "product_search", False),
    ("show me my points", "check_points", False),
])
def test_only_a_search_asked_for_in_so_many_words_is_a_search(text, intent, expected) -> None:
    assert asks_for_search(Reply(text, intent, 0.95)) is expected


@pytest.mark.parametrize("text, expected", [
    ("under four hundred bucks", "under 400 bucks"), ("a grand", "1000"), ("about a thousand dollars", "about 1000 dollars"),
    ("six of us", "6 of us"), ("two hundred and fifty", "250"), ("twenty-five", "25"), ("oak and walnut", "oak and walnut"),
    ("a hundred and twenty", "120"), ("one and a half k", "1 and a half k"),
])
def test_numbers_written_as_words(text, expected) -> None:
    assert spelled_numbers(text) == expected


def test_negated_ceilings_are_ceilings() -> None:
    assert parse_budget("nothing over 400") is not None and parse_budget("nothing over 400").high == Decimal(400)
    assert parse_budget("not more than $300").high == Decimal(300)
    assert parse_budget("over 500").low == Decimal(500)


@pytest.mark.parametrize("word, expected", [
    ("standing", "stand"), ("sitting", "sit"), ("seated", "seat"), ("lamps", "lamp"), ("lighting", "light"),
    ("working", "work"), ("need", "need"), ("bed", "bed"), ("stopped", "stop"), ("falling", "fall"),
])
def test_stems(word, expected) -> None:
    assert stem(word) == expected
