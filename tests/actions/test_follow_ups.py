"""Follow-ups read against what was just discussed, through the actions with real trackers against the seeded
store: each turn runs the action the rules would pick for the NLU's intent (the intents below are what the
trained model gives these messages); a follow-up is handed to action_follow_up, as Rasa runs a
FollowupAction, and messages that are not follow-ups get the action's own answer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Action
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.faq import ActionAnswerFaq
from actions.follow_ups import ActionFollowUp
from actions.handoff import ActionRequestHandoff
from actions.history import ActionPointsHistory
from actions.linking import ActionLinkAccount
from actions.loyalty import ActionCheckPoints, ActionCheckTier, ActionHowToEarn
from actions.referrals import ActionClaimReferral, ActionReferralLink
from actions.replies import ActionGoodbye, ActionHelp, ActionNotUnderstood, ActionOutOfScope, ActionWhatNext, ActionYouAreWelcome
from actions.rewards import ActionOfferReward
from actions.search import ActionSearchProducts
from actions.thread import read_words
from bot import clock
from bot.handoff import close_handoff
from bot.models import Customer, ReferralCode
from tests.actions.conftest import make_tracker


@dataclass
class Reply:
    text: str  # every message's text and button titles, one per line
    handed_over: bool  # the action handed the message to action_follow_up
    slots: Dict[str, Any]  # the slots the turn set


class Chat:
    """One shopper's conversation through the actions: each action gets the conversation so far (the
    messages and the slot events of earlier answers) plus the new message, as the action server does."""

    def __init__(self, sender: str, channel: str = "rest") -> None:
        self.sender, self.channel = sender, channel
        self.events: List[Dict[str, Any]] = []
        self.slots: Dict[str, Any] = {}

    async def say(self, text: str, intent: str, action: Action, entities: Optional[Dict[str, str]] = None) -> Reply:
        tracker = make_tracker(self.sender, text, intent, self.channel, history=self.events, entities=entities,
                               slots=self.slots)
        dispatcher = CollectingDispatcher()
        events = await action.run(dispatcher, tracker, {})
        handed_over = any(event.get("event") == "followup" for event in events)
        if handed_over:
            assert events == [{"event": "followup", "timestamp": None, "name": "action_follow_up"}]
            assert dispatcher.messages == []  # the action said nothing of its own
            events = await ActionFollowUp().run(dispatcher, tracker, {})
        slots = {event["name"]: event["value"] for event in events if event.get("event") == "slot"}
        self.slots.update(slots)
        said = [
            {"event": "bot", "text": message.get("text"), "data": {"buttons": message.get("buttons") or []}}
            for message in dispatcher.messages
        ]
        self.events = list(tracker.events) + list(events) + said
        lines = []
        for message in dispatcher.messages:
            lines.append(message.get("text") or message.get("response") or "")
            lines.extend(button["title"] for button in message.get("buttons") or [])
            lines.extend(element["title"] for element in message.get("elements") or [])
        return Reply("\n".join(lines), handed_over, slots)


def _alice_referral_code(database) -> str:
    with database.session() as session:
        return session.execute(
            select(ReferralCode.code).join(Customer, Customer.id == ReferralCode.customer_id)
            .where(Customer.first_name == "Alice")
        ).scalar_one()


# ------------------------------------------------------------------------------------------------ search


async def _searched(sender: str, text: str) -> Chat:
    chat = Chat(sender)
    shown = await chat.say(text, "product_search", ActionSearchProducts())
    assert shown.slots["topic"] == "search" and shown.slots["topic_ref"]
    return chat


async def test_cheaper_after_a_search_is_read_against_the_products_shown(demo_store) -> None:
    chat = await _searched("s1", "show me floor lamps")
    # The model reads "cheaper?" as a new product search (0.92), which alone names nothing to search for.
    cheaper = await chat.say("cheaper?", "product_search", ActionSearchProducts())
    assert cheaper.handed_over
    assert cheaper.text.startswith("That's the cheapest floor lamp I have — cheaper lamps in stock:")
    assert "Paper globe pendant" in cheaper.text and "Ember floor lamp" not in cheaper.text
    assert "couldn't tell what you're looking for" not in cheaper.text
    chat = await _searched("s2", "walnut chairs")
    typo = await chat.say("anything cheeper??", "product_search", ActionSearchProducts())
    assert typo.handed_over and typo.text.startswith("Nothing cheaper in walnut — cheaper chairs in stock:")
    assert "Terrace folding chair" in typo.text
    lowest = await chat.say("even cheaper", "product_search", ActionSearchProducts())
    assert lowest.handed_over and "already the cheapest chair I have in stock" in lowest.text


async def test_bigger_and_smaller_move_through_the_sizes(demo_store) -> None:
    chat = await _searched("s3", "standing desk")
    # The model reads "got a biger one" as a goodbye.
    bigger = await chat.say("got a biger one", "goodbye", ActionGoodbye())
    assert bigger.handed_over and "Rise standing desk — 160 × 80 cm" in bigger.text
    smaller = await chat.say("hmm smaller?", "product_search", ActionSearchProducts())
    assert smaller.handed_over and "Rise standing desk — 120 × 70 cm" in smaller.text
    chat = await _searched("s4", "sofas")
    none = await chat.say("any smaller", "product_search", ActionSearchProducts())
    assert none.handed_over and "anything smaller than the Cove velvet loveseat" in none.text


async def test_another_colour_lists_the_other_colours_of_what_was_shown(demo_store) -> None:
    chat = await _searched("s5", "pebble table lamp")
    other = await chat.say("do u have it in another colr", "product_search", ActionSearchProducts())
    assert other.handed_over and other.text.startswith("Other colours:")
    assert "Pebble table lamp — Moss" in other.text and "Charcoal" not in other.text  # charcoal is sold out


async def test_the_second_one_is_the_second_product_shown(demo_store) -> None:
    chat = await _searched("s6", "chairs")
    # The model reads "the second one" as a "no" (deny 0.34).
    second = await chat.say("the second one", "deny", ActionWhatNext())
    assert second.handed_over
    assert second.text.startswith("The Walnut spindle chair, $229. A classic spindle-back chair")
    assert second.slots["topic_ref"] == ["OE-CH-005", "OE-CH-003", "OE-OC-001"]  # the list stands
    last = await chat.say("n the last one?", "nlu_fallback", ActionNotUnderstood())
    assert last.handed_over and last.text.startswith("The Task office chair")


async def test_no_i_meant_the_lamp_corrects_the_search(demo_store) -> None:
    chat = await _searched("s7", "oak side table")
    corrected = await chat.say("no, I meant the lamp", "product_search", ActionSearchProducts())
    assert corrected.handed_over and "Paper globe pendant" in corrected.text and "side table" not in corrected.text
    chat = await _searched("s8", "brass")
    among = await chat.say("no i meant the pendant", "product_search", ActionSearchProducts())
    assert among.handed_over and among.text.startswith("The Arc brass pendant, $259.")


async def test_after_a_search_new_requests_are_not_hijacked(demo_store) -> None:
    chat = await _searched("s9", "sofas")
    points = await chat.say("how many points do i have", "check_points", ActionCheckPoints())
    assert not points.handed_over
    chat = await _searched("s10", "sofas")
    thanks = await chat.say("no thanks", "deny", ActionWhatNext())
    assert not thanks.handed_over and thanks.text == "utter_what_next"
    chat = await _searched("s11", "sofas")
    new = await chat.say("do you have oak desks under 400", "product_search", ActionSearchProducts())
    assert not new.handed_over and "Rise standing desk" in new.text


# ------------------------------------------------------------------------------------------------ handoff


async def _handed_off(sender: str) -> Chat:
    chat = Chat(sender)
    done = await chat.say("yes", "affirm", ActionRequestHandoff())
    request_id = done.slots["topic_ref"]
    assert f"request #{request_id}" in done.text and done.slots == {"topic": "handoff", "topic_ref": request_id}
    return chat


async def test_how_long_after_a_handoff_is_the_teams_reply_time_not_delivery(demo_store) -> None:
    chat = await _handed_off("guest-h1")
    # The model reads it as the delivery-times FAQ (0.99): the handoff just made is what it is about.
    reply = await chat.say("how long will it take", "faq", ActionAnswerFaq())
    assert reply.handed_over
    assert "request #1 is open" in reply.text and "within one business day" in reply.text
    assert "Monday to Friday" in reply.text and "deliver" not in reply.text.lower()
    again = await chat.say("hw long till some1 answers??", "nlu_fallback", ActionNotUnderstood())
    assert again.handed_over and "within one business day" in again.text  # the topic stays open


async def test_any_update_on_my_request_is_its_status_not_the_points_history(demo_store) -> None:
    chat = await _handed_off("guest-h2")
    reply = await chat.say("any update on my request?", "points_history", ActionPointsHistory())
    assert reply.handed_over
    assert "request #1 is open" in reply.text and "still waiting for a person" in reply.text
    assert "history" not in reply.text.lower()
    with demo_store.session(write=True) as session:
        close_handoff(session, 1, "team@oak-and-ember.example", clock.now())
    closed = await chat.say("any news??", "nlu_fallback", ActionNotUnderstood())
    assert closed.handed_over and "request #1 was closed" in closed.text


async def test_after_a_handoff_other_questions_are_not_hijacked(demo_store) -> None:
    chat = await _handed_off("guest-h3")
    delivery = await chat.say("how long does delivery take to canada", "faq", ActionAnswerFaq())
    assert not delivery.handed_over  # names its own subject
    chat = await _handed_off("guest-h4")
    points = await chat.say("how many points do i have", "check_points", ActionCheckPoints())
    assert not points.handed_over and "can't see" in points.text
    # The topic is open for the next message only: two turns later "how long" is not about the handoff.
    later = await chat.say("how long will it take", "faq", ActionAnswerFaq())
    assert not later.handed_over


async def test_with_nothing_discussed_a_follow_up_phrase_is_an_ordinary_message(demo_store) -> None:
    chat = Chat("guest-h5")
    reply = await chat.say("how long will it take", "faq", ActionAnswerFaq())
    assert not reply.handed_over and reply.text == "utter_not_understood"  # no selector output in this tracker


# ------------------------------------------------------------------------------------------------ tier


async def test_what_perks_do_i_get_after_a_tier_answer_lists_that_tiers_perks(demo_store) -> None:
    chat = Chat("alice")
    tier = await chat.say("what tier am i", "check_tier", ActionCheckTier())
    assert "Alice, you're a Silver member" in tier.text and tier.slots == {"topic": "tier", "topic_ref": "Silver"}
    perks = await chat.say("what perks do I get", "check_tier", ActionCheckTier())
    assert perks.handed_over
    assert perks.text.startswith("Your Silver perks:") and "early access to sales" in perks.text
    gold = await chat.say("and gold?", "product_search", ActionHowToEarn())
    assert gold.handed_over
    assert gold.text.startswith("Gold perks:") and "free shipping on every order" in gold.text
    assert "Gold starts at $750" in gold.text


async def test_perks_with_typos_and_what_do_i_get_which_the_model_reads_as_help(demo_store) -> None:
    chat = Chat("alice")
    await chat.say("am i silver or wat", "check_tier", ActionCheckTier())
    reply = await chat.say("wat do i get", "help", ActionHelp())
    assert reply.handed_over and "Your Silver perks:" in reply.text
    chat = Chat("alice")
    await chat.say("my tier", "check_tier", ActionCheckTier())
    typo = await chat.say("n the benifits??", "faq", ActionAnswerFaq())
    assert typo.handed_over and "Your Silver perks:" in typo.text


async def test_after_a_tier_answer_a_points_question_is_not_hijacked(demo_store) -> None:
    chat = Chat("alice")
    await chat.say("what tier am i", "check_tier", ActionCheckTier())
    points = await chat.say("how many points do I have", "check_points", ActionCheckPoints())
    assert not points.handed_over and "Alice, you have" in points.text


# ------------------------------------------------------------------------------------------------ guest


async def test_how_do_i_link_it_after_the_guest_answer_says_how_to_link_this_chat(demo_store) -> None:
    chat = Chat("guest-g1")
    guest = await chat.say("how many points do i have", "check_points", ActionCheckPoints())
    assert "can't see" in guest.text and guest.slots == {"topic": "guest", "topic_ref": None}
    link = await chat.say("ok how do i link it", "faq", ActionAnswerFaq())
    assert link.handed_over and "Link a chat" in link.text and "one-time code" in link.text
    join = await chat.say("nah not a member how do i join", "link_account", ActionLinkAccount())
    assert join.handed_over and "Join free at https://oak-and-ember.example/account/register" in join.text
    assert "100 points as a welcome bonus" in join.text


async def test_a_guest_sending_a_code_after_the_guest_answer_is_linking_not_a_follow_up(demo_store) -> None:
    chat = Chat("guest-g2")
    await chat.say("my tier?", "check_tier", ActionCheckTier())
    code = await chat.say("my code is K7PM-Q2ZX", "link_account", ActionLinkAccount())
    assert not code.handed_over and "doesn't match any link code" in code.text


# ------------------------------------------------------------------------------------------------ referral claim


async def test_so_what_discount_do_i_get_after_claiming_a_friends_code_is_the_friends_offer(demo_store) -> None:
    await Chat("alice").say("my referral link", "get_referral_link", ActionReferralLink())
    code = _alice_referral_code(demo_store)
    chat = Chat("guest-r1")
    claimed = await chat.say(f"my friend gave me code {code.lower()}", "claim_referral", ActionClaimReferral())
    assert "Alice invited you" in claimed.text and claimed.slots["topic"] == "referral_claim"
    offer = await chat.say("so what discount do I get", "redeem_reward", ActionOfferReward())
    assert offer.handed_over
    assert (f"With Alice's invitation you get 10% off your first order. Your code is {claimed.slots['topic_ref']}: "
            "enter it at checkout") in offer.text
    slang = await chat.say("how do i use it lol", "faq", ActionAnswerFaq())
    assert slang.handed_over and claimed.slots["topic_ref"] in slang.text


async def test_after_a_claim_a_request_for_ones_own_link_is_not_hijacked(demo_store) -> None:
    await Chat("alice").say("my referral link", "get_referral_link", ActionReferralLink())
    chat = Chat("guest-r2")
    await chat.say(f"code {_alice_referral_code(demo_store)}", "claim_referral", ActionClaimReferral())
    own = await chat.say("can i get my own referral link", "get_referral_link", ActionReferralLink())
    assert not own.handed_over and "can't show your referral link" in own.text


# ------------------------------------------------------------------------------------------------ shortfall


async def test_cheapest_reward_and_how_long_after_a_shortfall(demo_store) -> None:
    chat = Chat("dev")  # 100 points
    short = await chat.say("can i get the $10 off", "redeem_reward", ActionOfferReward(), entities={"reward": "ten-off"})
    assert "$10 off needs 1,000 points and you have 100" in short.text
    assert short.slots["topic"] == "shortfall" and short.slots["topic_ref"] == "ten-off"
    until = await chat.say("how long till I can get it", "faq", ActionAnswerFaq())
    assert until.handed_over
    assert "$10 off needs 1,000 points and you have 100 — 900 more to go (about $180 of shopping)" in until.text
    cheapest = await chat.say("what's the cheapest reward", "redeem_reward", ActionOfferReward())
    assert cheapest.handed_over
    assert ("Our cheapest reward is free shipping: it needs 400 points and you have 100 — 300 more to go "
            "(about $60 of shopping)") in cheapest.text


async def test_after_a_points_answer_how_long_till_i_get_it_is_about_the_next_reward(demo_store) -> None:
    chat = Chat("alice")
    points = await chat.say("points?", "check_points", ActionCheckPoints())
    assert points.slots["topic"] == "shortfall"
    until = await chat.say("how many more do i need", "check_points", ActionCheckPoints())
    assert until.handed_over and "more to go" in until.text


async def test_after_a_shortfall_a_yes_or_a_new_topic_is_not_hijacked(demo_store) -> None:
    chat = Chat("dev")
    await chat.say("redeem $10 off", "redeem_reward", ActionOfferReward(), entities={"reward": "ten-off"})
    stray = await chat.say("ok", "affirm", ActionWhatNext())
    assert not stray.handed_over and stray.text == "utter_what_next"
    thanks = await chat.say("thx", "thank_you", ActionYouAreWelcome())
    assert not thanks.handed_over and thanks.text == "utter_you_are_welcome"
    chat = Chat("dev")
    await chat.say("redeem $10 off", "redeem_reward", ActionOfferReward(), entities={"reward": "ten-off"})
    weather = await chat.say("what's the weather in paris", "out_of_scope", ActionOutOfScope())
    assert not weather.handed_over and weather.text == "utter_out_of_scope"


# ------------------------------------------------------------------------------------------------ reading words


@pytest.mark.parametrize("typed, read", [
    ("cheeper??", "cheaper"),
    ("do u hav it in anothr colr", "do you hav it in another colour"),
    ("wat r the perkz", "what are the perks"),
    ("any updte on my reqest", "any update on my request"),
])
def test_chat_spellings_and_typos_are_read_as_the_cue_words(typed: str, read: str) -> None:
    assert read_words(typed) == read


def test_every_topic_with_cues_has_an_answer() -> None:
    from actions.follow_ups import FOLLOW_UPS
    from actions.thread import CUES

    assert set(FOLLOW_UPS) == set(CUES)
