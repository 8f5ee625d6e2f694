"""Questions are not commitments (issue 14 item 3): every action that writes, with real trackers against the
seeded store. Three questions about it get the explanation and the offer and write nothing; the offer's
button, and a clear request, still act."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.linking import ActionLinkAccount
from actions.referrals import ActionClaimReferral, ActionReferralLink
from actions.reviews import ActionStartReview
from actions.rewards import ActionOfferReward, ActionRedeemReward
from actions.social import ActionClaimSocialFollow
from bot import clock
from bot.identity import customer_for_sender
from bot.identity.linking import issue_link_code
from bot.loyalty.ledger import balance
from bot.models import Customer, FriendOffer, Referral, ReferralCode, RewardCode, SocialFollowClaim
from tests.actions.conftest import make_tracker

ALICE = 1  # the first demo customer (data/demo/customers.yml)


async def _run(action: Any, sender: str, text: str, intent: str, channel: str = "rest",
               entities: Optional[Dict[str, str]] = None,
               slots: Optional[Dict[str, Any]] = None) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The action's messages and the slots its events set."""
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(sender, text, intent, channel, entities=entities, slots=slots)
    events = await action.run(dispatcher, tracker, {})
    return dispatcher.messages, {event["name"]: event["value"] for event in events if event.get("event") == "slot"}


def _buttons(messages: List[Dict[str, Any]]) -> Dict[str, str]:
    return {button["title"]: button["payload"] for message in messages for button in message.get("buttons") or []}


def _count(database, model) -> int:
    with database.session() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


# ---------------------------------------------------------------- follow claims

@pytest.mark.parametrize(("text", "network"), [
    ("what about for following u on insta?", "instagram"),
    ("do i get points for following you on tiktok", "tiktok"),
    ("is there anything for following u guys on fb?", "facebook"),
])
async def test_a_question_about_follow_points_explains_and_offers_without_a_claim(demo_store, text, network) -> None:
    said, _ = await _run(ActionClaimSocialFollow(), "alice", text, "claim_social_follow",
                         entities={"social_network": network})
    [message] = said
    assert "earns 50 points" in message["text"] and "Thanks for following" not in message["text"]
    assert _count(demo_store, SocialFollowClaim) == 0
    offer = _buttons(said)
    name = {"instagram": "Instagram", "tiktok": "TikTok", "facebook": "Facebook"}[network]
    payload = offer[f"I follow on {name}"]
    # the offer's button is the claim itself
    tapped, _ = await _run(ActionClaimSocialFollow(), "alice", payload, "claim_social_follow",
                           entities={"social_network": network})
    assert tapped[0]["text"].startswith(f"Thanks for following us on {name}!")
    assert _count(demo_store, SocialFollowClaim) == 1


async def test_saying_you_followed_still_files_the_claim(demo_store) -> None:
    said, _ = await _run(ActionClaimSocialFollow(), "alice", "i followed you on insta, do i get points?",
                         "claim_social_follow", entities={"social_network": "instagram"})
    assert said[0]["text"].startswith("Thanks for following us on Instagram!")
    assert _count(demo_store, SocialFollowClaim) == 1


# ---------------------------------------------------------------- reviews

@pytest.mark.parametrize("text", ["can i leave a review?", "how do reviews work", "what do i get for writing a review"])
async def test_a_question_about_reviews_explains_and_keeps_the_form_closed(demo_store, text) -> None:
    said, slots = await _run(ActionStartReview(), "alice", text, "leave_review")
    assert slots == {"review_started": False}  # the rules open review_form only on true
    assert "100 points" in said[0]["text"] and "200 with a photo" in said[0]["text"]
    assert _buttons(said) == {"Write a review": "/leave_review"}


@pytest.mark.parametrize("text", ["/leave_review", "i want to leave a review", "write a review for the pebble lamp"])
async def test_a_review_request_or_the_offer_button_starts_the_form(demo_store, text) -> None:
    said, slots = await _run(ActionStartReview(), "alice", text, "leave_review")
    assert slots["review_started"] is True
    assert not any("200 with a photo" in message.get("text", "") for message in said)


# ---------------------------------------------------------------- redemptions

@pytest.mark.parametrize("text", ["can i get free shipping with my points?", "how do i redeem my points",
                                  "what can i spend my points on?"])
async def test_a_question_about_redeeming_spends_nothing(demo_store, text) -> None:
    said, slots = await _run(ActionOfferReward(), "alice", text, "redeem_reward")
    assert said and _count(demo_store, RewardCode) == 0
    with demo_store.session() as session:
        assert balance(session, ALICE) == 1598
    if slots.get("reward_offered"):  # a named reward: the answer, then a yes/no before anything is spent
        assert said[0]["text"].startswith("Yes, you can — free shipping costs 400 points.")
        assert _buttons(said) == {"Yes, redeem": "/affirm", "No, keep my points": "/deny"}
    else:
        assert "pick one and I'll confirm before spending anything" in said[0]["text"]


async def test_only_the_yes_after_the_offer_redeems(demo_store) -> None:
    _, slots = await _run(ActionOfferReward(), "alice", "can i get free shipping with my points?", "redeem_reward")
    said, _ = await _run(ActionRedeemReward(), "alice", "yes", "affirm", slots=slots)
    assert said[0]["text"].startswith("Done! Here's your code for free shipping:")
    assert _count(demo_store, RewardCode) == 1


# ---------------------------------------------------------------- referral links

@pytest.mark.parametrize("text", ["can I refer my friends", "how does referring a friend work?",
                                  "is there a referral program"])
async def test_a_question_about_referring_explains_without_making_a_link(demo_store, text) -> None:
    said, _ = await _run(ActionReferralLink(), "alice", text, "get_referral_link")
    assert "Friends who use it get 10% off their first order" in said[0]["text"]
    assert "/r/" not in said[0]["text"]
    assert _count(demo_store, ReferralCode) == 0
    tapped, _ = await _run(ActionReferralLink(), "alice", _buttons(said)["Get my link"], "get_referral_link")
    assert tapped[0]["text"].startswith("Here's your personal referral link, Alice:")
    assert _count(demo_store, ReferralCode) == 1


# ---------------------------------------------------------------- a friend's code

@pytest.mark.parametrize("text", ["can I refer my friends", "how do friend codes work?", "what about a code from a friend?"])
async def test_a_guest_asking_about_referrals_is_not_asked_for_a_friends_code(demo_store, text) -> None:
    said, _ = await _run(ActionClaimReferral(), "guest-41", text, "claim_referral")
    assert "send me your friend's referral code" not in said[0]["text"]
    assert "Friends who use it get 10% off" in said[0]["text"]
    assert "Get my link" in _buttons(said)
    assert _count(demo_store, Referral) == 0 and _count(demo_store, FriendOffer) == 0


async def _alice_code(database) -> str:
    await _run(ActionReferralLink(), "alice", "my referral link", "get_referral_link")
    with database.session() as session:
        return session.execute(select(ReferralCode.code).join(Customer, Customer.id == ReferralCode.customer_id)
                               .where(Customer.first_name == "Alice")).scalar_one()


async def test_a_code_in_a_question_is_applied_only_from_the_button(demo_store) -> None:
    code = await _alice_code(demo_store)
    said, _ = await _run(ActionClaimReferral(), "guest-42", f"can i use code {code.lower()}?", "claim_referral")
    assert _count(demo_store, FriendOffer) == 0
    payload = _buttons(said)[f"Use code {code}"]
    tapped, _ = await _run(ActionClaimReferral(), "guest-42", payload, "claim_referral")
    assert "Alice invited you" in tapped[0]["text"]
    assert _count(demo_store, FriendOffer) == 1


async def test_a_typed_code_is_claimed_at_once(demo_store) -> None:
    code = await _alice_code(demo_store)
    said, _ = await _run(ActionClaimReferral(), "guest-43", f"my friend gave me this code {code}", "claim_referral")
    assert "Alice invited you" in said[0]["text"]


# ---------------------------------------------------------------- linking the chat

def _link_code(database) -> str:
    with database.session(write=True) as session:
        customer = session.execute(select(Customer).where(Customer.email == "bob.okafor@example.com")).scalar_one()
        return issue_link_code(session, customer.id, clock.now()).code


def _linked(database, sender: str) -> bool:
    with database.session() as session:
        return customer_for_sender(session, "telegram", sender) is not None


@pytest.mark.parametrize("question", ["can i link with {code}?", "what happens if i link this chat with {code}",
                                      "is {code} the code i send you?"])
async def test_a_question_with_a_link_code_links_only_from_the_button(demo_store, question) -> None:
    code = _link_code(demo_store)
    said, _ = await _run(ActionLinkAccount(), "7101", question.format(code=code.lower()), "link_account", "telegram")
    assert "Linking connects this chat" in said[0]["text"]
    assert not _linked(demo_store, "7101")
    tapped, _ = await _run(ActionLinkAccount(), "7101", _buttons(said)[f"Yes, link {code}"], "link_account", "telegram")
    assert tapped[0]["text"].startswith("Done, Bob — this chat is now linked")
    assert _linked(demo_store, "7101")


async def test_a_question_about_linking_without_a_code_says_how(demo_store) -> None:
    said, _ = await _run(ActionLinkAccount(), "7102", "how do i link my account", "link_account", "telegram")
    assert "one-time code" in said[0]["text"]
    assert not _linked(demo_store, "7102")


async def test_a_sent_link_code_links_at_once(demo_store) -> None:
    code = _link_code(demo_store)
    said, _ = await _run(ActionLinkAccount(), "7103", f"my code is {code}", "link_account", "telegram")
    assert said[0]["text"].startswith("Done, Bob")
