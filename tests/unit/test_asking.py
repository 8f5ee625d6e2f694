"""is_question: a question about an action vs a request for it, in shoppers' own words."""
import pytest

from actions.asking import is_question

QUESTIONS = [
    # the cases seen (issue 14)
    "what about for following u on insta?",
    "can I refer my friends",
    "can i leave a review?",
    # social follows
    "do i get points for following you on tiktok",
    "how many points do u give for following on instagram",
    "is there anything for following u guys on fb?",
    "if i follow you on insta do i get points",
    "any points for following?",
    # reviews
    "how do reviews work",
    "what do i get for writing a review",
    "can i review something i bought ages ago?",
    "i wanna know if reviews earn points",
    # referrals
    "is there a referral program",
    "how does referring a friend work?",
    "do you give anything for inviting friends",
    "can my sister use my code?",
    # redemptions
    "how do i redeem my points",
    "can i get the free shipping reward?",
    "what can i spend my points on?",
    "is it possible to use points on sale items",
    # handoffs
    "is there a real person i can talk to?",
    "can i speak to someone",
    "how do i reach a human",
    # linking
    "how do i link my account",
    "why should i link my account?",
    "what happens if i link this chat",
    "can you tell me how linking works",
]

REQUESTS = [
    "I followed you on insta",
    "I followed you on Instagram, can I get my points?",
    "im following u on tiktok now as @ann.home",
    "just followed u on fb",
    "i followed you on insta, do i get points?",
    "redeem my $10",
    "redeem my $10?",
    "use my points for free shipping",
    "i want to leave a review",
    "leave a review",
    "write a review for the pebble lamp",
    "I'd like to write a review",
    "i want to refer a friend",
    "send me my referral link",
    "my referral link pls",
    "can i have my referral link",
    "my friend gave me a code",
    "my friend's code is K7QM2XDA9P",
    "K7QM2XDA9P",
    "link my account",
    "my code is K7PM-Q2ZX",
    "can you link my account please",
    "connect me to a human",
    "i need to talk to someone",
    "I want a human",
    "talk to a person",
    "/claim_social_follow{\"social_network\": \"instagram\"}",
    "/leave_review",
    "",
]


@pytest.mark.parametrize("text", QUESTIONS)
def test_questions_about_an_action_are_questions(text):
    assert is_question(text), text


@pytest.mark.parametrize("text", REQUESTS)
def test_requests_and_statements_are_not_questions(text):
    assert not is_question(text), text


def test_curly_apostrophes_and_capitals_read_the_same():
    assert is_question("WHAT ABOUT following you on Insta?")
    assert not is_question("I’ve followed you on Insta")
    assert not is_question("I’d like to leave a review")
