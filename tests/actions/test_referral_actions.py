"""The referral actions with real trackers against the seeded store: the advocate's link and status, a
friend's code from Telegram's deep link or typed in chat."""
from __future__ import annotations

from typing import Dict, List, Optional

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.referrals import ActionClaimReferral, ActionReferralLink, ActionReferralStatus
from bot.models import Customer, FriendOffer, Referral, ReferralCode
from bot.settings import get_settings
from tests.actions.conftest import make_tracker, only_topic_events


async def _run(action, sender: str, text: str, intent: str, channel: str = "rest",
               entities: Optional[Dict[str, str]] = None) -> List[Dict]:
    dispatcher = CollectingDispatcher()
    assert only_topic_events(await action.run(dispatcher, make_tracker(sender, text, intent, channel, entities=entities), {}))
    return dispatcher.messages


async def _alice_code(database) -> str:
    await _run(ActionReferralLink(), "alice", "my referral link", "get_referral_link")
    with database.session() as session:
        return session.execute(
            select(ReferralCode.code).join(Customer, Customer.id == ReferralCode.customer_id)
            .where(Customer.first_name == "Alice")
        ).scalar_one()


async def test_a_member_gets_one_personal_link_with_a_share_text(demo_store) -> None:
    [reply] = await _run(ActionReferralLink(), "alice", "I want to refer a friend", "get_referral_link")
    code = await _alice_code(demo_store)
    link = f"{get_settings().public_base_url}/r/{code}"
    assert reply["text"].splitlines()[:2] == ["Here's your personal referral link, Alice:", link]
    assert ("Friends who use it get 10% off their first order, and you get 500 points when their first order of "
            "$30 or more is paid.") in reply["text"]
    assert f"“I love Oak & Ember — here's 10% off your first order with my link: {link}”" in reply["text"]
    [elsewhere] = await _run(ActionReferralLink(), "alice", "my referral link", "get_referral_link", channel="telegram")
    assert "can't show your referral link" in elsewhere["text"]  # a Telegram chat nobody linked is a guest
    [same] = await _run(ActionReferralLink(), "alice", "send me my invite link", "get_referral_link")
    assert same["text"] == reply["text"]  # the same code every time


async def test_a_guest_is_told_how_to_link_or_join(demo_store) -> None:
    [reply] = await _run(ActionReferralLink(), "guest-5", "refer a friend", "get_referral_link")
    assert "can't show your referral link" in reply["text"] and "Join free" in reply["text"]


async def test_status_before_and_after_a_friend_joins(demo_store) -> None:
    [before] = await _run(ActionReferralStatus(), "alice", "referral status", "referral_status")
    assert before["text"].startswith("You haven't shared a referral link yet.")
    code = await _alice_code(demo_store)
    [empty] = await _run(ActionReferralStatus(), "alice", "referral status", "referral_status")
    assert empty["text"].startswith("Nobody has used your referral link yet.")
    await _run(ActionClaimReferral(), "900100", f'/claim_referral{{"referral_code": "{code}"}}', "claim_referral",
               channel="telegram", entities={"referral_code": code})
    [after] = await _run(ActionReferralStatus(), "alice", "how are my referrals doing", "referral_status")
    assert "• 1 friend joined" in after["text"] and "• 1 waiting for a first order" in after["text"]


async def test_a_friend_from_a_telegram_deep_link_gets_their_offer_once(demo_store) -> None:
    code = await _alice_code(demo_store)
    [welcome] = await _run(ActionClaimReferral(), "900200", f'/claim_referral{{"referral_code": "{code}"}}',
                           "claim_referral", channel="telegram", entities={"referral_code": code})
    with demo_store.session() as session:
        offer = session.execute(select(FriendOffer)).scalar_one()
        referral = session.execute(select(Referral)).scalar_one()
    assert welcome["text"].startswith("Welcome to Oak & Ember! Alice invited you, so here's 10% off your first order")
    assert offer.code in welcome["text"]
    assert (referral.friend_channel, referral.friend_sender_id, referral.source, referral.status) == (
        "telegram", "900200", "telegram", "joined")
    [again] = await _run(ActionClaimReferral(), "900200", f"my friend's code is {code.lower()}", "claim_referral",
                         channel="telegram")
    assert again["text"].startswith("You've already accepted Alice's invitation") and offer.code in again["text"]
    with demo_store.session() as session:
        assert len(session.execute(select(FriendOffer)).all()) == 1
        assert len(session.execute(select(Referral)).all()) == 1


async def test_own_code_existing_customer_and_unknown_code(demo_store) -> None:
    code = await _alice_code(demo_store)
    [own] = await _run(ActionClaimReferral(), "alice", f"my code is {code}", "claim_referral")
    assert own["text"].startswith("That's your own referral code")
    [bob] = await _run(ActionClaimReferral(), "bob", f"my friend gave me code {code}", "claim_referral")
    assert bob["text"].startswith("Referral offers are for a first order")
    [unknown] = await _run(ActionClaimReferral(), "guest-8", "referral code ZZZZ2ZZZZZ", "claim_referral")
    assert unknown["text"].startswith("I couldn't find that referral code.")
    [no_code] = await _run(ActionClaimReferral(), "guest-8", "my friend referred me", "claim_referral")
    assert no_code["text"].startswith("Great — send me your friend's referral code")
    with demo_store.session() as session:
        assert session.execute(select(FriendOffer)).first() is None


async def test_a_friend_asking_again_after_using_their_code_is_not_told_it_is_still_valid(demo_store) -> None:
    from bot import clock
    from bot.advocacy.referrals import attribute_order
    from bot.identity import create_customer, link_identity
    from bot.loyalty.orders import record_paid_order
    from bot.loyalty.program import get_program
    from decimal import Decimal

    code = await _alice_code(demo_store)
    await _run(ActionClaimReferral(), "900300", f"my friend's code is {code}", "claim_referral", channel="telegram")
    with demo_store.session(write=True) as session:
        offer = session.execute(select(FriendOffer)).scalar_one()
        friend = create_customer(session, "noor@example.com", "Noor")
        link_identity(session, friend.id, "telegram", "900300")
        order = record_paid_order(session, get_program(), friend.id, "N-1", Decimal("60.00"), clock.now()).order
        outcome = attribute_order(session, get_program(), order, discount_codes=[offer.code], now=clock.now())
        assert outcome is not None and outcome.status == "rewarded"
    [again] = await _run(ActionClaimReferral(), "900300", f"my friend's code is {code}", "claim_referral",
                         channel="telegram")
    assert "has been used on your first order" in again["text"] and "still" not in again["text"]
