"""action_claim_social_follow with real trackers against the seeded store: a claim per network, waiting
for the team's check."""
from __future__ import annotations

from typing import Dict, List, Optional

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.social import ActionClaimSocialFollow
from bot.models import LedgerEntry, SocialFollowClaim
from tests.actions.conftest import make_tracker


async def _claim(sender: str, text: str, network: Optional[str] = None) -> List[Dict]:
    dispatcher = CollectingDispatcher()
    entities = {"social_network": network} if network else None
    tracker = make_tracker(sender, text, "claim_social_follow", entities=entities)
    assert await ActionClaimSocialFollow().run(dispatcher, tracker, {}) == []
    return dispatcher.messages


def _claims(database) -> list:
    with database.session() as session:
        return [(c.network, c.handle, c.status) for c in session.execute(select(SocialFollowClaim)).scalars()]


async def test_a_follow_claim_waits_for_the_team_and_is_made_once_per_network(demo_store) -> None:
    [reply] = await _claim("alice", "I followed you on IG as @alice.makes", "IG")
    assert reply["text"] == ("Thanks for following us on Instagram! Our team will check and add 50 points once "
                             "it's confirmed.")
    [again] = await _claim("alice", "I follow you on instagram", "instagram")
    assert again["text"] == "We're still checking your Instagram follow — the 50 points will follow once it's confirmed."
    assert _claims(demo_store) == [("instagram", "alice.makes", "pending")]
    with demo_store.session() as session:  # nothing is paid before the check
        assert session.execute(select(LedgerEntry).where(LedgerEntry.source == "social_follow",
                                                          LedgerEntry.reason.like("%instagram%"),
                                                          LedgerEntry.idempotency_key.like("social:%"))).first() is None


async def test_without_a_network_the_shopper_picks_one_from_buttons(demo_store) -> None:
    [reply] = await _claim("bob", "I followed you, can I get my points")
    assert reply["text"] == "We give follow points for Instagram, TikTok, Facebook — which one do you follow us on?"
    assert [button["payload"] for button in reply["buttons"]] == [
        '/claim_social_follow{"social_network": "instagram"}', '/claim_social_follow{"social_network": "tiktok"}',
        '/claim_social_follow{"social_network": "facebook"}',
    ]
    [picked] = await _claim("bob", '/claim_social_follow{"social_network": "tiktok"}', "tiktok")
    assert picked["text"].startswith("Thanks for following us on TikTok!")
    assert "as @yourname" in picked["text"]  # no handle given: the shopper is told how to add one
    assert _claims(demo_store) == [("tiktok", None, "pending")]


async def test_a_network_outside_the_program_is_not_claimed(demo_store) -> None:
    [reply] = await _claim("bob", "I followed you on myspace", "myspace")
    assert reply["text"].startswith("We give follow points for Instagram")
    assert _claims(demo_store) == []


async def test_a_guest_is_told_how_to_link_or_join(demo_store) -> None:
    [reply] = await _claim("stranger-9", "I followed you on Instagram", "instagram")
    assert "link code" in reply["text"] and "Join free" in reply["text"]
    assert _claims(demo_store) == []
