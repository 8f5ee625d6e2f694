"""The quiz by typing (issue 14 item 5), with real trackers against the seeded store: every question says how
to answer; natural answers, positions, counts and budgets pick options; a multi-choice question ends when
the next message is no option of it (which is then answered for what it is); a budget typed mid-quiz is
kept, never searched; only a search asked for in so many words leaves the question; and an exit a shopper
would guess confirms that the quiz stopped."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from actions.quiz import QUIZ_STOPPED
from tests.actions.test_quiz_actions import QuizChat, elements, heads, runs, tap_through, texts


def questions(said: List[Dict[str, Any]]) -> List[str]:
    return [line for line in heads(said) if line.startswith("(")]


async def test_every_question_says_how_to_answer_it(demo_store) -> None:
    chat = QuizChat("how-to")
    said = chat.remember(await chat.start())
    assert "\"stop\"" in texts(said)[0]  # the intro names the way out
    prompts = [texts(said)[-1]]
    for title in ("Living room", "Small space", "Oak", "Done", "Better lighting", "Done"):
        said = chat.remember(await chat.tap(title))
        prompts.append(texts(said)[-1])
    single, size, materials, picked, extras, picked_extras, budget = prompts
    assert single.endswith("Tap one or type it in your own words.") and size.endswith("in your own words.")
    assert materials.splitlines()[1] == "Tap or type one or more, then \"done\" (or \"skip\")."
    assert "So far: Oak." in picked and "say \"done\" to move on" in picked
    assert "then \"done\"" in extras and "So far: Better lighting." in picked_extras
    assert budget.splitlines()[1] == "Tap one or type an amount, like \"under 400\"."


async def test_a_multi_choice_question_ends_when_the_next_message_answers_the_next_question(demo_store) -> None:
    """The loop seen: picks, then "Pick more, or tap Done" for several turns. Now the next answer moves on."""
    chat = QuizChat("no-done-loop")
    chat.remember(await chat.start())
    await tap_through(chat, "Living room", "Small space")
    said = chat.remember(await chat.say("oak n linen"))
    assert "So far: Oak and Linen & fabric." in texts(said)[-1]
    said = chat.remember(await chat.say("i need somewhere for all my books", "product_search", 0.9))
    assert texts(said)[0] == "Got it: Oak and Linen & fabric."
    assert questions(said) == ["(4/5) Anything else the room needs? Pick any."] and "So far: Storage." in texts(said)[-1]
    said = chat.remember(await chat.say("under 400 bucks", "product_search", 0.97))
    assert texts(said)[0] == "Got it: Storage."
    assert "Here are my top 3 picks for you:" in texts(said) and len(elements(said)) == 3
    [run] = runs(demo_store)
    assert run.answers == {"room": ["living"], "living-space": ["small"], "materials": ["oak", "soft"],
                           "extras": ["storage"], "budget": ["under-400"]}


async def test_after_picks_an_ok_or_an_unclear_word_just_moves_on(demo_store) -> None:
    chat = QuizChat("ok-moves-on")
    chat.remember(await chat.start())
    await tap_through(chat, "Dining room", "6 or more", "Walnut")
    said = chat.remember(await chat.say("cool"))
    assert questions(said) == ["(4/5) Anything else the room needs? Pick any."]
    await chat.say("lamps")
    said = chat.remember(await chat.say("hmm yeah thats fine i guess"))
    assert questions(said) == ["(5/5) What would you like to spend on a piece?"]
    [run] = runs(demo_store)
    assert run.answers["materials"] == ["walnut"] and run.answers["extras"] == ["light"]


async def test_another_request_after_picks_finishes_the_question_and_goes_to_the_conversation(demo_store) -> None:
    chat = QuizChat("picks-then-points")
    chat.remember(await chat.start())
    await tap_through(chat, "Home office", "Seated all day", "Ash")
    said = await chat.say("wait how many points do i have", "check_points", 0.97)
    assert chat.rejected and said == []  # the points rule answers; the form then asks the next question
    [run] = runs(demo_store)
    assert run.answers["materials"] == ["ash"] and run.current_question == "extras"


async def test_a_natural_answer_picks_its_option_instead_of_looping(demo_store) -> None:
    chat = QuizChat("stand")
    chat.remember(await chat.start())
    said = chat.remember(await chat.say("its for my home ofice"))
    assert questions(said) == ["(2/5) How do you like to work?"]
    said = chat.remember(await chat.say("i stand most of the day", "product_search", 0.86))
    assert questions(said) == ["(3/5) Which materials do you love? Pick any."]
    [run] = runs(demo_store)
    assert run.answers["work-style"] == ["standing"]


async def test_a_budget_typed_mid_quiz_is_kept_for_the_budget_question_not_searched(demo_store) -> None:
    chat = QuizChat("budget-early")
    chat.remember(await chat.start())
    await tap_through(chat, "Living room")
    said = chat.remember(await chat.say("under 400", "product_search", 0.98))
    assert not chat.rejected and not elements(said)  # no catalog search
    assert texts(said)[0] == "Got it: Up to $400 (for \"What would you like to spend on a piece?\")."
    assert questions(said) == ["(2/4) How much room is there?"]  # the budget question will not come again
    said = chat.remember(await chat.say("pretty small tbh"))
    assert questions(said) == ["(3/4) Which materials do you love? Pick any."]
    await chat.say("whatever")
    said = chat.remember(await chat.say("idk"))
    assert texts(said)[0] == "Here are my top 3 picks for you:"
    [run] = runs(demo_store)
    assert run.answers == {"room": ["living"], "budget": ["under-400"], "living-space": ["small"], "materials": [],
                           "extras": []}


async def test_an_amount_given_with_another_answer_is_kept_too(demo_store) -> None:
    chat = QuizChat("oak-and-budget")
    chat.remember(await chat.start())
    await tap_through(chat, "Home office", "Standing desk")
    said = chat.remember(await chat.say("oak, nothing over four hundred"))
    assert "Got it: Up to $400" in texts(said)[0] and "So far: Oak." in texts(said)[-1]
    said = chat.remember(await chat.say("done"))
    said = chat.remember(await chat.say("just the desk", "product_search", 0.7))
    assert questions(said) == ["(4/4) Anything else the room needs? Pick any."]  # the budget is not asked again
    said = chat.remember(await chat.say("thats it"))
    assert texts(said)[0] == "Here are my top 3 picks for you:"
    [run] = runs(demo_store)
    assert run.answers["budget"] == ["under-400"] and run.results[0]["sku"] == "OE-DK-001"


async def test_two_answers_in_one_message(demo_store) -> None:
    chat = QuizChat("two-at-once")
    chat.remember(await chat.start())
    said = chat.remember(await chat.say("dining room, usually six of us"))
    assert texts(said)[0] == "Got it: 6 or more (for \"How many do you usually seat?\")."
    assert questions(said) == ["(3/5) Which materials do you love? Pick any."]
    [run] = runs(demo_store)
    assert run.answers == {"room": ["dining"], "dining-size": ["many"]}


async def test_only_a_search_asked_for_in_so_many_words_leaves_the_question(demo_store) -> None:
    chat = QuizChat("search-asked")
    chat.remember(await chat.start())
    await tap_through(chat, "Living room", "Plenty of room")
    said = chat.remember(await chat.say("sofas", "product_search", 0.96))
    assert not chat.rejected and "I haven't searched the shop" in texts(said)[0]
    said = await chat.say("actually can you show me floor lamps", "product_search", 0.95)
    assert chat.rejected and said == []  # the search rule answers it; the form asks again after
    [run] = runs(demo_store)
    assert run.current_question == "materials" and run.status == "in_progress"


@pytest.mark.parametrize("words", ["stop", "never mind", "quit the quiz", "cancel", "nevermnd", "ok can we stop now",
                                   "forget it"])
async def test_an_exit_a_shopper_would_guess_confirms_the_quiz_stopped(demo_store, words) -> None:
    chat = QuizChat("exit")
    chat.remember(await chat.start())
    await tap_through(chat, "Home office")
    said = await chat.say(words)
    assert texts(said) == [QUIZ_STOPPED]
    assert said[0]["buttons"] == [{"title": "Continue quiz", "payload": "/start_quiz"}]
    assert chat.slots == {"quiz_run_id": None, "quiz_step": None}
    [run] = runs(demo_store)
    assert run.status == "in_progress" and run.answers == {"room": ["office"]}  # resumable later


async def test_an_exit_in_the_middle_of_picks_stops_too(demo_store) -> None:
    chat = QuizChat("exit-picks")
    chat.remember(await chat.start())
    await tap_through(chat, "Living room", "Small space", "Walnut")
    said = await chat.say("cancel the quiz")
    assert texts(said) == [QUIZ_STOPPED]


@pytest.mark.parametrize("words", ["idk", "whatever", "dunno tbh", "no preference", "not sure"])
async def test_i_dont_know_skips_the_question(demo_store, words) -> None:
    chat = QuizChat("idk")
    chat.remember(await chat.start())
    said = chat.remember(await chat.say(words))
    assert texts(said)[0] == "Okay, skipping that one." and questions(said) == ["(2/5) How much room is there?"]


@pytest.mark.parametrize("opening, answers, notes", [
    ("can u help me pick a standing desk under 400", {"room": ["office"], "work-style": ["standing"],
                                                      "budget": ["under-400"]},
     ["Got it: Home office.", "Got it: Standing desk (for \"How do you like to work?\").",
      "Got it: Up to $400 (for \"What would you like to spend on a piece?\")."]),
    ("help me choose smth for my living room", {"room": ["living"]}, ["Got it: Living room."]),
    ("help me choose a table for dinner parties", {"room": ["dining"], "dining-size": ["many"]},
     ["Got it: Dining room.", "Got it: 6 or more (for \"How many do you usually seat?\")."]),
    ("which one suits me?", {}, []),
])
async def test_the_request_that_starts_the_quiz_answers_what_it_can(demo_store, opening, answers, notes) -> None:
    chat = QuizChat("opening")
    said = await chat.start(opening, "start_quiz")
    assert texts(said)[1:-1] == (["\n".join(notes)] if notes else [])
    [run] = runs(demo_store)
    assert run.answers == answers


async def test_positions_and_both(demo_store) -> None:
    chat = QuizChat("positions")
    chat.remember(await chat.start())
    said = chat.remember(await chat.say("both living and dining"))
    assert texts(said)[0] == "Just one for this question — which is it: Living room or Dining room?"
    said = chat.remember(await chat.say("the 2nd one"))
    assert questions(said) == ["(2/5) How do you like to work?"]
    said = chat.remember(await chat.say("both"))  # sitting and standing: a sit-stand desk
    said = chat.remember(await chat.say("first and third"))
    assert "So far: Oak and Ash." in texts(said)[-1]
    [run] = runs(demo_store)
    assert run.answers == {"room": ["office"], "work-style": ["standing"]}


async def test_an_answer_the_nlu_takes_for_the_quiz_request_is_a_miss_not_a_repeat(demo_store) -> None:
    chat = QuizChat("bedroom")
    chat.remember(await chat.start())
    said = chat.remember(await chat.say("bedroom", "start_quiz", 0.9))
    assert texts(said)[0].startswith("Sorry, I didn't catch that")
    said = chat.remember(await chat.say("help me choose", "start_quiz", 0.99))
    assert texts(said)[0] == "We're in the middle of the quiz — here's where we were:"
