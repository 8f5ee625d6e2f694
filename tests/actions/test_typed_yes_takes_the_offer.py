"""A typed yes takes the offer of the answer just before it (actions/offers.py), with real trackers against
the seeded store: the question's answer and its buttons, then "yes" as the NLU reads it (affirm), through
action_what_next (the rule for a yes nothing asked for) and the action it hands the yes to."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Action
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.referrals import ActionReferralLink
from actions.replies import ActionWhatNext
from actions.social import ActionClaimSocialFollow
from bot.models import SocialFollowClaim
from tests.actions.conftest import make_tracker


class Chat:
    """One shopper's messages and the answers' events (with their buttons), as the action server sees them."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.events: List[Dict[str, Any]] = []

    async def say(self, text: str, intent: str, action: Action,
                  entities: Optional[Dict[str, str]] = None) -> Tuple[str, List[Dict[str, Any]]]:
        """What the shopper was shown (texts and button titles) and the action's events; a FollowupAction is
        run as Rasa runs it, on the same tracker."""
        tracker = make_tracker(self.sender, text, intent, history=self.events, entities=entities)
        dispatcher = CollectingDispatcher()
        events = await action.run(dispatcher, tracker, {})
        followups = [event["name"] for event in events if event.get("event") == "followup"]
        if followups:
            [name] = followups
            follow_action = {a.name(): a for a in (ActionClaimSocialFollow(), ActionReferralLink())}[name]
            events = events + await follow_action.run(dispatcher, tracker, {})
        self.events = list(tracker.events) + [
            {"event": "bot", "text": m.get("text"), "data": {"buttons": m.get("buttons") or []}}
            for m in dispatcher.messages
        ]
        shown = [m.get("text") or m.get("response") or "" for m in dispatcher.messages]
        shown += [b["title"] for m in dispatcher.messages for b in m.get("buttons") or []]
        return "\n".join(shown), events


def _claims(database) -> list:
    with database.session() as session:
        return [(c.network, c.status) for c in session.execute(select(SocialFollowClaim)).scalars()]


async def test_yes_to_the_follow_offer_files_the_claim_for_the_network_asked_about(demo_store) -> None:
    chat = Chat("alice")
    asked, _ = await chat.say("what about for following u on insta?", "claim_social_follow",
                              ActionClaimSocialFollow(), {"social_network": "insta"})
    assert "I follow on Instagram" in asked and _claims(demo_store) == []
    taken, events = await chat.say("yes", "affirm", ActionWhatNext())
    assert {"event": "followup", "timestamp": None, "name": "action_claim_social_follow"} in events
    assert taken.startswith("Thanks for following us on Instagram!")
    assert _claims(demo_store) == [("instagram", "pending")]
    stray, events = await chat.say("yes", "affirm", ActionWhatNext())  # the claim's answer offered nothing
    assert stray == "utter_what_next" and _claims(demo_store) == [("instagram", "pending")]


async def test_yes_after_an_offer_of_every_network_files_nothing(demo_store) -> None:
    chat = Chat("alice")
    asked, _ = await chat.say("do you give points for following you?", "claim_social_follow", ActionClaimSocialFollow())
    assert "I follow on Instagram" in asked and "I follow on TikTok" in asked
    answer, events = await chat.say("yes", "affirm", ActionWhatNext())
    assert answer == "utter_what_next" and _claims(demo_store) == []  # which network is still open


async def test_yes_only_takes_the_offer_just_made(demo_store) -> None:
    chat = Chat("alice")
    await chat.say("what about for following u on insta?", "claim_social_follow", ActionClaimSocialFollow(),
                   {"social_network": "instagram"})
    await chat.say("no", "deny", ActionWhatNext())
    late, _ = await chat.say("yes", "affirm", ActionWhatNext())
    assert late == "utter_what_next" and _claims(demo_store) == []


async def test_a_guest_saying_sure_to_the_referral_offer_is_told_how_to_get_a_link(demo_store) -> None:
    chat = Chat("guest-1")
    asked, _ = await chat.say("can I refer my friends", "get_referral_link", ActionReferralLink())
    assert "Get my link" in asked
    taken, events = await chat.say("sure", "affirm", ActionWhatNext())
    assert {"event": "followup", "timestamp": None, "name": "action_referral_link"} in events
    assert "can't show your referral link" in taken


async def test_a_member_saying_yes_to_the_referral_offer_gets_the_link(demo_store) -> None:
    chat = Chat("alice")
    await chat.say("how does referring work", "get_referral_link", ActionReferralLink())
    taken, _ = await chat.say("yes please", "affirm", ActionWhatNext())
    assert taken.startswith("Here's your personal referral link, Alice:"), taken
