"""action_about_brand with real trackers: the story from data/shop.yml, a shop without one, a broken one."""
from __future__ import annotations

import os
from pathlib import Path

from rasa_sdk.executor import CollectingDispatcher

from actions.brand import POINTS_BUTTON, QUIZ_BUTTON, ActionAboutBrand
from actions.common import STORE_APOLOGY
from bot.settings import PROJECT_ROOT, reset_settings
from tests.actions.conftest import make_tracker

SHOP = (PROJECT_ROOT / "data" / "shop.yml").read_text()
WITHOUT_BRAND = SHOP.split("\nbrand:", 1)[0] + "\n"


async def _run(text: str = "tell me about your brand", channel: str = "rest") -> list:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker("alice", text, "about_brand", channel=channel)
    assert await ActionAboutBrand().run(dispatcher, tracker, {}) == []
    return dispatcher.messages


def _use_shop(tmp_path: Path, monkeypatch, text: str) -> Path:
    path = tmp_path / "shop.yml"
    path.write_text(text)
    monkeypatch.setenv("SHOP_FILE", str(path))
    reset_settings()
    return path


async def test_the_story_mission_and_values_in_one_message(environment) -> None:
    [message] = await _run()
    story, mission, values = message["text"].split("\n\n")
    assert story.startswith("Oak & Ember started in 2014") and "\n" not in story
    assert mission.startswith("Our mission: To make honest, solid-wood furniture")
    lines = values.splitlines()
    assert lines[0] == "What we stand for:"
    assert lines[1] == "• Made to last: solid hardwood, real joinery and a 10-year frame warranty on everything we build."
    assert len(lines) == 5 and all(line.startswith("• ") for line in lines[1:])
    assert message["buttons"] == [QUIZ_BUTTON, POINTS_BUTTON]
    assert [button["payload"] for button in message["buttons"]] == ["/start_quiz", "/check_points"]


async def test_an_edit_to_the_shop_file_shows_on_the_next_turn(environment, tmp_path, monkeypatch) -> None:
    path = _use_shop(tmp_path, monkeypatch, WITHOUT_BRAND + 'brand:\n  story: "Two friends, one lathe."\n'
                     '  mission: "Chairs for life."\n  values: ["Slow: we take our time."]\n')
    [message] = await _run("who are you guys", channel="telegram")
    assert message["text"] == "Two friends, one lathe.\n\nOur mission: Chairs for life.\n\nWhat we stand for:\n• Slow: we take our time."
    path.write_text(WITHOUT_BRAND + 'brand:\n  story: "Three friends now."\n  mission: "Chairs."\n  values: ["Fast."]\n')
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1_000_000_000))
    [again] = await _run()
    assert again["text"].startswith("Three friends now.")


async def test_a_shop_without_a_brand_still_gets_an_answer(environment, tmp_path, monkeypatch) -> None:
    _use_shop(tmp_path, monkeypatch, WITHOUT_BRAND)
    [message] = await _run()
    assert message["text"] == (
        "We're Oak & Ember. You'll find more about us at https://oak-and-ember.example. "
        "I can help you choose something for your home or check your rewards points."
    )
    assert message["buttons"] == [QUIZ_BUTTON, POINTS_BUTTON]


async def test_a_broken_brand_section_gets_the_apology_naming_file_and_place(
    environment, tmp_path, monkeypatch, capsys
) -> None:
    path = _use_shop(tmp_path, monkeypatch, WITHOUT_BRAND + "brand:\n  story: s\n  mission: m\n  values: just one\n")
    [message] = await _run()
    assert message == {**message, "text": STORE_APOLOGY}
    assert not message.get("buttons")
    logged = capsys.readouterr().err
    assert '"event": "config.invalid"' in logged
    assert f"{path}: brand.values: must be a list" in logged
