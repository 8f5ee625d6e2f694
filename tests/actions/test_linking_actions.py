"""action_link_account with real trackers against the seeded store: one shopper across channels."""
from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.linking import ActionLinkAccount
from actions.loyalty import ActionCheckPoints
from bot import clock
from bot.identity.linking import MAX_WRONG_CODES, issue_link_code
from bot.models import Customer
from tests.actions.conftest import make_tracker, only_topic_events


async def _run(action, tracker) -> list:
    dispatcher = CollectingDispatcher()
    assert only_topic_events(await action.run(dispatcher, tracker, {}))
    return dispatcher.messages


def _code_for(database, email: str) -> str:
    with database.session(write=True) as session:
        customer = session.execute(select(Customer).where(Customer.email == email)).scalar_one()
        return issue_link_code(session, customer.id, clock.now()).code


async def test_a_code_links_a_telegram_chat_to_alice_who_then_sees_one_balance(demo_store) -> None:
    code = _code_for(demo_store, "alice.moreau@example.com")
    tracker = make_tracker("7001", f"my code is {code.lower()}", "link_account", channel="telegram")
    [linked] = await _run(ActionLinkAccount(), tracker)
    assert linked["text"] == "Done, Alice — this chat is now linked to your Oak & Ember account. You have 1,598 points."
    assert [b["payload"] for b in linked["buttons"]] == ["/check_points", "/check_tier"]

    [points] = await _run(ActionCheckPoints(), make_tracker("7001", "points?", "check_points", channel="telegram"))
    assert points["text"].startswith("Alice, you have 1,598 points")
    [again] = await _run(ActionLinkAccount(), make_tracker("7001", code, "link_account", channel="telegram"))
    assert again["text"] == "This chat is already linked to your account, Alice. You have 1,598 points."
    [used] = await _run(ActionLinkAccount(), make_tracker("ig-55", code, "link_account", channel="instagram"))
    assert used["text"].startswith("That code has already been used.")


async def test_the_deep_link_entity_is_used_when_nlu_passes_it(demo_store) -> None:
    code = _code_for(demo_store, "bob.okafor@example.com").replace("-", "")
    tracker = make_tracker("7002", "/link_account", "link_account", channel="telegram", entities={"link_token": code})
    [linked] = await _run(ActionLinkAccount(), tracker)
    assert linked["text"].startswith("Done, Bob — this chat is now linked")


async def test_without_a_code_the_shopper_learns_where_to_get_one(demo_store) -> None:
    [message] = await _run(ActionLinkAccount(), make_tracker("7003", "link my account", "link_account", channel="telegram"))
    assert message["text"] == (
        "To link this chat to your Oak & Ember account, open your account page (https://oak-and-ember.example/account), "
        "choose \"Link a chat\" to get a one-time code, and send me the code here. A code works once and for 15 minutes."
    )
    [linked] = await _run(ActionLinkAccount(), make_tracker("alice", "link my account", "link_account"))
    assert linked["text"] == "This chat is already linked to your account, Alice."


async def test_wrong_codes_are_refused_then_paused(demo_store) -> None:
    for _ in range(MAX_WRONG_CODES):
        [wrong] = await _run(ActionLinkAccount(), make_tracker("7004", "code AAAA-2AAA", "link_account", channel="telegram"))
        assert wrong["text"].startswith("That code doesn't match any link code.")
    code = _code_for(demo_store, "chloe.tan@example.com")
    [paused] = await _run(ActionLinkAccount(), make_tracker("7004", code, "link_account", channel="telegram"))
    assert paused["text"].startswith("That's too many wrong codes from this chat, so I've paused linking.")
    assert "15 minutes" in paused["text"]
    [points] = await _run(ActionCheckPoints(), make_tracker("7004", "points?", "check_points", channel="telegram"))
    assert "can't see an Oak & Ember rewards account linked to this chat" in points["text"]
