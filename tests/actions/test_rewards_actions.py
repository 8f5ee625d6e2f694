"""Redeeming rewards through the actions, on real trackers against a seeded SQLite store."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.rewards import (
    ActionCancelRedemption,
    ActionOfferReward,
    ActionRedeemReward,
    redemption_key,
    resolve_reward,
)
from bot.loyalty.ledger import balance, verify_balances
from bot.loyalty.program import get_program
from bot.loyalty.rewards import redeem
from bot.models import LedgerEntry, RewardCode
from tests.actions.conftest import make_tracker

ALICE, BOB, CHLOE, DEV = 1, 2, 3, 4  # demo customers, in data/demo/customers.yml order
CODE = re.compile(r"\bRW-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


async def _run(action, tracker) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The action's messages and the slots its events set."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    slots = {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
    return dispatcher.messages, slots


async def _offer(sender: str, text: str, reward: str = None) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    entities = {"reward": reward} if reward else None
    return await _run(ActionOfferReward(), make_tracker(sender, text, "redeem_reward", entities=entities))


def _confirmation(sender: str, slots: Dict[str, Any], text: str = "yes", intent: str = "affirm"):
    return make_tracker(sender, text, intent, slots={"reward_offered": True, **slots})


def _points(store, customer_id: int) -> int:
    with store.session() as session:
        return balance(session, customer_id)


def _codes(store, customer_id: int) -> List[RewardCode]:
    with store.session() as session:
        return list(session.execute(select(RewardCode).where(RewardCode.customer_id == customer_id)).scalars())


async def test_named_reward_goes_straight_to_confirmation_and_spends_nothing(demo_store) -> None:
    [message], slots = await _offer("alice", "can I get the free shipping reward?", "free-shipping")
    assert message["text"].startswith("Yes, you can — free shipping costs 400 points. Redeem 400 points for free "
                                      "shipping? You'll have 1,198 points left.")
    assert "valid for 6 months" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/affirm", "/deny"]
    assert message["buttons"][0]["title"] == "Yes, redeem"
    assert slots["offered_reward"] == "free-shipping" and slots["reward_offered"] is True
    assert len(slots["redemption_nonce"]) >= 16
    assert _points(demo_store, ALICE) == 1598 and _codes(demo_store, ALICE) == []


@pytest.mark.parametrize("text", ["can I get the free shipping reward?", "i want free delivery with my points",
                                  "use my points for free shipping pls"])
async def test_a_reward_named_in_the_words_is_offered_when_the_model_found_no_entity(demo_store, text) -> None:
    [message], slots = await _offer("alice", text)
    assert "Redeem 400 points for free shipping?" in message["text"]
    assert slots["offered_reward"] == "free-shipping"
    assert _points(demo_store, ALICE) == 1598 and _codes(demo_store, ALICE) == []


async def test_words_naming_no_single_reward_list_the_choices(demo_store) -> None:
    [message], slots = await _offer("alice", "what can I get with 1200 points?")
    assert "pick one" in message["text"] and slots.get("offered_reward") is None


async def test_confirmed_redemption_spends_exactly_the_cost_and_gives_a_usable_code(demo_store) -> None:
    _, offered = await _offer("alice", "i'd like $5 off", "five-off")
    [message], slots = await _run(ActionRedeemReward(), _confirmation("alice", offered))
    text = message["text"]
    [code] = _codes(demo_store, ALICE)
    assert text.startswith("Done! Here's your code for $5 off:\n" + code.code + "\n")
    assert CODE.search(text).group(0) == code.code
    assert "Enter it at checkout in the discount code box." in text
    assert re.search(r"It's valid until [A-Z][a-z]+ \d{1,2}, \d{4}\.", text)
    assert "You now have 1,098 points." in text
    assert slots == {"offered_reward": None, "redemption_nonce": None, "reward_offered": False}
    assert _points(demo_store, ALICE) == 1598 - 500
    assert (code.reward_id, code.points_spent, code.status, code.kind) == ("five-off", 500, "issued", "amount_off")
    with demo_store.session() as session:
        assert verify_balances(session) == []
        entry = session.get(LedgerEntry, code.ledger_entry_id)
        assert (entry.points, entry.kind, entry.source) == (-500, "redeem", "redemption")


async def test_a_double_tapped_confirmation_redeems_once_and_repeats_the_code(demo_store) -> None:
    _, offered = await _offer("alice", "free shipping please", "free-shipping")
    tracker = _confirmation("alice", offered, "/affirm")
    [first], _ = await _run(ActionRedeemReward(), tracker)
    [second], _ = await _run(ActionRedeemReward(), tracker)
    [code] = _codes(demo_store, ALICE)
    assert CODE.search(first["text"]).group(0) == code.code == CODE.search(second["text"]).group(0)
    assert second["text"].startswith("You've already redeemed this")
    assert _points(demo_store, ALICE) == 1598 - 400
    with demo_store.session() as session:
        assert verify_balances(session) == []


async def test_each_offer_is_its_own_redemption(demo_store) -> None:
    for _ in range(2):
        _, offered = await _offer("alice", "free shipping", "free-shipping")
        await _run(ActionRedeemReward(), _confirmation("alice", offered))
    assert len({code.code for code in _codes(demo_store, ALICE)}) == 2
    assert _points(demo_store, ALICE) == 1598 - 800


async def test_the_key_is_bound_to_the_conversation_and_the_offer() -> None:
    key = redemption_key("rest", "alice", "nonce-1", "five-off")
    assert key == redemption_key("rest", "alice", "nonce-1", "five-off") and len(key) < 200
    assert key != redemption_key("rest", "alice", "nonce-2", "five-off")
    assert key != redemption_key("rest", "bob", "nonce-1", "five-off")
    assert len(redemption_key("rest", "x" * 5000, "n", "five-off")) < 200


async def test_the_balance_is_checked_again_when_the_shopper_confirms(demo_store) -> None:
    _, offered = await _offer("bob", "$5 off", "five-off")  # 545 points: affordable when offered
    with demo_store.session(write=True) as session:
        redeem(session, get_program(), BOB, "free-shipping", idempotency_key="elsewhere")  # 145 left
    [message], _ = await _run(ActionRedeemReward(), _confirmation("bob", offered))
    assert message["text"].startswith("$5 off needs 500 points and you have 145 now — 355 more to go")
    assert "nothing was spent" in message["text"]
    assert _points(demo_store, BOB) == 145 and len(_codes(demo_store, BOB)) == 1


async def test_only_the_offered_reward_can_be_confirmed(demo_store) -> None:
    # The confirmation redeems the slot the offer set; a made-up reward id is refused, not guessed.
    [message], _ = await _run(
        ActionRedeemReward(), _confirmation("alice", {"offered_reward": "free-car", "redemption_nonce": "n1"})
    )
    assert "isn't offered any more" in message["text"]
    [message], _ = await _run(ActionRedeemReward(), make_tracker("alice", "yes", "affirm"))
    assert message["text"].startswith("There's no reward waiting for your yes.")
    assert _points(demo_store, ALICE) == 1598 and _codes(demo_store, ALICE) == []


async def test_redeem_without_a_reward_lists_the_affordable_ones_as_buttons(demo_store) -> None:
    [message], slots = await _offer("alice", "I want to redeem my points")
    assert message["text"].startswith("With your 1,598 points you can get any of these")
    assert [b["payload"] for b in message["buttons"]] == [
        '/redeem_reward{"reward":"free-shipping"}',
        '/redeem_reward{"reward":"five-off"}',
        '/redeem_reward{"reward":"ten-off"}',
        '/redeem_reward{"reward":"ten-percent-off"}',
        '/redeem_reward{"reward":"fifteen-off"}',
    ]
    assert message["buttons"][3]["title"] == "10% off your next order (1,200 pts)"
    assert slots == {"offered_reward": None, "redemption_nonce": None, "reward_offered": False}


async def test_a_reward_out_of_reach_says_how_far_and_lists_the_rest(demo_store) -> None:
    [message], slots = await _offer("alice", "can i get $20 off", "twenty-off")
    assert message["text"].startswith(
        "$20 off needs 2,000 points and you have 1,598 — 402 more to go (about $65 of shopping).\n"
    )
    assert len(message["buttons"]) == 5 and slots["reward_offered"] is False


async def test_unknown_reward_lists_the_affordable_ones(demo_store) -> None:
    [message], slots = await _offer("bob", "can i get a free yacht", "free yacht")
    assert message["text"].startswith('I couldn\'t find a reward called "free yacht".\nWith your 545 points')
    assert [b["payload"] for b in message["buttons"]] == [
        '/redeem_reward{"reward":"free-shipping"}', '/redeem_reward{"reward":"five-off"}'
    ]
    assert slots["reward_offered"] is False


async def test_nothing_affordable_says_how_far_the_cheapest_is(demo_store) -> None:
    [message], slots = await _offer("dev", "redeem")
    assert message["text"] == (
        "Our cheapest reward, free shipping, needs 400 points and you have 100 — 300 more to go "
        "(about $60 of shopping)."
    )
    assert "/how_to_earn" in [b["payload"] for b in message["buttons"]]
    assert slots["reward_offered"] is False


async def test_guest_gets_the_linking_text_and_no_offer(demo_store) -> None:
    [message], slots = await _offer("guest-99", "free shipping please", "free-shipping")
    assert "linked to this chat" in message["text"] and "/account/register" in message["text"]
    assert slots["reward_offered"] is False and slots["offered_reward"] is None
    [message], _ = await _run(
        ActionRedeemReward(), _confirmation("guest-99", {"offered_reward": "free-shipping", "redemption_nonce": "n"})
    )
    assert "linked to this chat" in message["text"]
    assert not CODE.search(message["text"])


async def test_declining_keeps_the_points(demo_store) -> None:
    _, offered = await _offer("alice", "$10 off", "ten-off")
    [message], slots = await _run(ActionCancelRedemption(), _confirmation("alice", offered, "no", "deny"))
    assert message["text"] == "No problem, your points are still there — you have 1,598."
    assert slots["reward_offered"] is False and slots["offered_reward"] is None
    assert _points(demo_store, ALICE) == 1598 and _codes(demo_store, ALICE) == []
    with demo_store.session() as session:
        assert session.execute(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.customer_id == ALICE, LedgerEntry.source == "redemption")).scalar_one() == 0


async def test_percent_off_code_states_its_minimum_order(demo_store) -> None:
    _, offered = await _offer("chloe", "10% off please", "ten-percent-off")
    [message], _ = await _run(ActionRedeemReward(), _confirmation("chloe", offered))
    assert message["text"].startswith("Done! Here's your code for 10% off:")
    assert re.search(r"It's valid until \w+ \d+, \d{4}, on orders of \$50 or more\.", message["text"])
    assert "You now have 13,330 points." in message["text"]


async def test_free_product_code_says_how_to_get_the_product(demo_store) -> None:
    [offer], offered = await _offer("chloe", "can I get the free lamp", "free-lamp")
    assert "Redeem 6,000 points for a free Pebble table lamp? You'll have 8,530 points left." in offer["text"]
    [message], _ = await _run(ActionRedeemReward(), _confirmation("chloe", offered))
    assert message["text"].startswith("Done! Here's your code for a free Pebble table lamp:")
    assert "Add the Pebble table lamp to your basket, then enter it at checkout in the discount code box." in message["text"]
    assert "You now have 8,530 points." in message["text"]


@pytest.mark.parametrize(
    "words, reward_id",
    [
        ("free-shipping", "free-shipping"),
        ("Free shipping", "free-shipping"),
        ("free delivery", "free-shipping"),
        ("$5 off", "five-off"),
        ("five dollars off", "five-off"),
        ("10 bucks off", "ten-off"),
        ("$15", "fifteen-off"),
        ("twenty dollar voucher", "twenty-off"),
        ("10% off", "ten-percent-off"),
        ("ten percent", "ten-percent-off"),
        ("the pebble lamp", "free-lamp"),
        ("A free Pebble table lamp", "free-lamp"),
        ("free yacht", None),
        ("$7 off", None),
        ("", None),
    ],
)
def test_reward_names_resolve_against_the_program(words, reward_id) -> None:
    from bot.loyalty.program import load_program
    from bot.settings import PROJECT_ROOT

    found = resolve_reward(load_program(PROJECT_ROOT / "data" / "program.yml"), words)
    assert (found.id if found else None) == reward_id
