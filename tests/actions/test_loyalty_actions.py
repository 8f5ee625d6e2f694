from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.common import STORE_APOLOGY
from actions.loyalty import ActionCheckPoints, ActionCheckTier, ActionHowToEarn
from bot import db as db_module
from bot.settings import PROJECT_ROOT, reset_settings
from tests.actions.conftest import make_tracker, only_topic_events


async def _run(action, tracker) -> list:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    assert only_topic_events(events)
    return dispatcher.messages


async def test_points_for_a_linked_shopper_come_from_the_store(demo_store) -> None:
    [message] = await _run(ActionCheckPoints(), make_tracker("alice", "how many points do I have?", "check_points"))
    text = message["text"]
    assert "Alice, you have 1,598 points and you're a Silver member." in text
    assert ("You can redeem now: Free shipping (400), $5 off (500), $10 off (1,000), 10% off your next order (1,200), "
            "$15 off (1,500).") in text
    assert "Next reward: $20 off at 2,000 points — 402 to go (about $65 of shopping)." in text
    assert "Spend $217.50 more within 12 months to reach Gold (1.5× points)." in text
    assert [b["payload"] for b in message["buttons"]] == ["/redeem_reward", "/check_tier", "/how_to_earn"]
    assert "expire" not in text  # Alice earned 35 days ago: nothing expires soon


async def test_points_in_rasa_shell_use_the_rest_identity(demo_store) -> None:
    [message] = await _run(ActionCheckPoints(), make_tracker("bob", "points?", "check_points", channel="cmdline"))
    assert message["text"].startswith("Bob, you have 545 points and you're a Bronze member.")
    assert "You can redeem now: Free shipping (400), $5 off (500)." in message["text"]


async def test_top_tier_shopper_with_every_reward_in_reach(demo_store) -> None:
    [message] = await _run(ActionCheckPoints(), make_tracker("chloe", "balance", "check_points"))
    assert "Chloe, you have 14,530 points and you're a Platinum member." in message["text"]
    assert "enough for any reward we offer — up to a free Pebble table lamp (6,000 points)" in message["text"]
    assert "You're in our top tier, Platinum, earning 2× points." in message["text"]


async def test_guest_gets_a_way_to_link_or_join_and_no_number(demo_store) -> None:
    [message] = await _run(ActionCheckPoints(), make_tracker("stranger-42", "how many points", "check_points"))
    text = message["text"]
    assert "can't see an Oak & Ember rewards account linked to this chat" in text
    assert "Get a link code on your account page (https://oak-and-ember.example/account)" in text
    assert "https://oak-and-ember.example/account/register" in text
    assert "100 points as a welcome bonus" in text
    assert not any(ch.isdigit() for ch in text.replace("100 points", "").replace("oak-and-ember", ""))
    assert [b["payload"] for b in message["buttons"]] == ["/how_to_earn"]


async def test_no_redeem_button_when_nothing_is_affordable(demo_store) -> None:
    [message] = await _run(ActionCheckPoints(), make_tracker("dev", "points", "check_points"))
    assert message["text"].startswith("Dev, you have 100 points")
    assert "/redeem_reward" not in [b["payload"] for b in message["buttons"]]


async def test_same_sender_id_on_another_channel_is_not_the_customer(demo_store) -> None:
    [message] = await _run(ActionCheckPoints(), make_tracker("alice", "points", "check_points", channel="telegram"))
    assert "1,598" not in message["text"] and "linked to this chat" in message["text"]


async def test_tier_explains_perks_and_the_way_up(demo_store) -> None:
    [message] = await _run(ActionCheckTier(), make_tracker("alice", "what tier am i", "check_tier"))
    text = message["text"]
    assert text.startswith("Alice, you're a Silver member, with $532.50 of qualifying spend in the last 12 months.")
    assert "• 6.25 points per $1 spent (1.25× points)\n• a birthday bonus every year\n• early access to sales" in text
    assert "Spend $217.50 more within 12 months to reach Gold" in text
    assert "Gold adds: 7.5 points per $1 spent (1.5× points); free shipping on every order." in text


async def test_tier_for_a_guest_shows_the_ladder(demo_store) -> None:
    [message] = await _run(ActionCheckTier(), make_tracker("nobody", "am i gold", "check_tier"))
    assert "• Gold: from $750 — 1.5× points" in message["text"]
    assert "linked to this chat" in message["text"]


async def test_how_to_earn_lists_the_configured_rules(demo_store) -> None:
    [message] = await _run(ActionHowToEarn(), make_tracker("alice", "how do i earn points", "how_to_earn"))
    text = message["text"]
    assert "• 5 points for every $1 you spend (more in higher tiers: Silver 1.25×, Gold 1.5×, Platinum 2×)" in text
    assert "• 500 points on your birthday, once a year" in text
    assert "• 100 points for a product review, 200 with a photo, 300 with a video (after moderation, whatever your rating)" in text
    assert "friend you refer" not in text  # referral rewards are not paid yet (advocacy issue)
    assert "Rewards start at 400 points (Free shipping)." in text


async def test_how_to_earn_follows_the_config_file(demo_store, tmp_path, monkeypatch) -> None:
    program = tmp_path / "program.yml"
    source = (PROJECT_ROOT / "data" / "program.yml").read_text()
    program.write_text(source.replace("birthday: 500", "birthday: 0").replace("points_per_currency_unit: 5", "points_per_currency_unit: 10"))
    monkeypatch.setenv("PROGRAM_FILE", str(program))
    reset_settings()
    [message] = await _run(ActionHowToEarn(), make_tracker("alice", "how do i earn points", "how_to_earn"))
    assert "10 points for every $1" in message["text"]
    assert "birthday" not in message["text"]


@pytest.mark.parametrize("action", [ActionCheckPoints(), ActionCheckTier()])
async def test_unreachable_store_gets_an_apology_and_is_logged(environment, monkeypatch, capsys, action) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    reset_settings()
    db_module.reset_database()
    [message] = await _run(action, make_tracker("alice", "points", "check_points"))
    assert message["text"] == STORE_APOLOGY
    logged = capsys.readouterr().err
    assert '"event": "store.unavailable"' in logged and "OperationalError" in logged


async def test_broken_program_file_gets_an_apology(environment, tmp_path, monkeypatch, capsys) -> None:
    broken = tmp_path / "program.yml"
    broken.write_text("currency: [\n")
    monkeypatch.setenv("PROGRAM_FILE", str(broken))
    reset_settings()
    [message] = await _run(ActionHowToEarn(), make_tracker("alice", "how to earn", "how_to_earn"))
    assert message["text"] == STORE_APOLOGY
    assert "config.invalid" in capsys.readouterr().err


async def test_an_unexpected_error_still_gets_an_answer(demo_store, capsys) -> None:
    from actions.common import StoreAction

    class ActionThatBreaks(StoreAction):
        def name(self) -> str:
            return "action_that_breaks"

        async def respond(self, dispatcher, tracker, domain):
            raise KeyError("a bug")

    [message] = await _run(ActionThatBreaks(), make_tracker("alice", "points", "check_points"))
    assert message["text"] == STORE_APOLOGY
    assert '"event": "action.failed"' in capsys.readouterr().err
