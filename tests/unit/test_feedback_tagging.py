"""The tags of a shopper's "why" (bot/feedback/tagging.py): sentiment and topics of realistic comments,
with negation ("not late", "never arrived", "nobody answered") read the way a shopper means it."""
from __future__ import annotations

import pytest

from bot.feedback.tagging import SENTIMENTS, TOPICS, FeedbackTags, tag_feedback


@pytest.mark.parametrize("comment, sentiment, topics", [
    # Plain praise and plain complaints.
    ("Great quality, fast delivery, would recommend!", "positive", {"quality", "shipping"}),
    ("The dinner set is gorgeous and it came really well packed", "positive", {"product", "packaging"}),
    ("Your customer service team was so helpful when I had to exchange the size", "positive",
     {"support", "sizing", "returns"}),
    ("Would not recommend. Poor quality and way too expensive.", "negative", {"quality", "price"}),
    ("the website kept crashing at checkout", "negative", {"website"}),
    ("Checkout kept failing and I couldn't use my reward code", "negative", {"website", "rewards"}),
    ("paid with paypal and was charged twice", "negative", {"payment"}),
    ("The box was crushed and the bubble wrap was missing", "negative", {"packaging", "quality"}),
    ("The table started wobbling after a week, it didn't last", "negative", {"quality", "product"}),
    ("the price is a bit high for what it is", "negative", {"price"}),
    # Negation: what did not happen is the complaint.
    ("It never arrived and nobody answered my emails.", "negative", {"shipping", "support"}),
    ("I haven't received my parcel yet", "negative", {"shipping"}),
    ("No one replied to my complaint", "negative", {"support"}),
    ("Didn't fit, it runs small", "negative", {"sizing"}),
    ("The page wouldn't load", "negative", {"website"}),
    ("Not as described, the colour is completely different from the photo", "negative", {"product"}),
    # Negated complaints are not complaints.
    ("The delivery wasn't late and the lamp is lovely", "positive", {"shipping", "product"}),
    ("Not bad at all, arrived quickly and well packed", "positive", {"shipping", "packaging"}),
    ("No problems, everything as described", "positive", {"product"}),
    ("Nothing was broken, no damage at all", "positive", {"quality"}),
    # After "but" the shopper's point weighs more.
    ("Lovely lamp but it arrived broken", "negative", {"shipping", "quality", "product"}),
    ("Delivery was slow but the chair is beautiful", "positive", {"shipping", "product"}),
    # Saying what happened is not an opinion; mild words alone are not praise.
    ("It arrived on Monday.", "neutral", {"shipping"}),
    ("It's fine I guess", "neutral", set()),
    ("I ordered last week and got my points", "neutral", {"rewards"}),
])
def test_realistic_comments_get_their_sentiment_and_topics(comment: str, sentiment: str, topics: set) -> None:
    tags = tag_feedback(comment)
    assert tags.sentiment == sentiment, (comment, tags)
    assert set(tags.topics) == topics, (comment, tags)


def test_not_late_is_no_shipping_complaint_but_late_is() -> None:
    not_late = tag_feedback("Not late at all.")
    assert not_late.sentiment != "negative" and "shipping" not in not_late.topics
    late = tag_feedback("It was late again")
    assert late.sentiment == "negative" and late.topics == ["shipping"]


@pytest.mark.parametrize("praise, negated", [
    ("great", "not great"),
    ("I would recommend it", "I would never recommend it"),
    ("it was easy to assemble", "it wasn't easy to assemble"),
])
def test_negation_turns_praise_into_a_complaint(praise: str, negated: str) -> None:
    assert tag_feedback(praise).sentiment == "positive"
    assert tag_feedback(negated).sentiment == "negative"


def test_the_same_word_in_any_form_counts_through_its_lemma() -> None:
    for comment in ("It never arrives on time", "It never arrived", "it's never arriving"):
        tags = tag_feedback(comment)
        assert tags.sentiment == "negative" and "shipping" in tags.topics, comment


def test_like_as_a_verb_is_praise_but_a_request_or_a_comparison_is_not() -> None:
    assert tag_feedback("I like it a lot").sentiment == "positive"
    assert tag_feedback("I would like a refund please").sentiment == "neutral"
    assert tag_feedback("it looks like the photo").sentiment == "neutral"


def test_topics_are_the_fixed_names_in_their_order_and_empty_text_is_neutral() -> None:
    tags = tag_feedback("Refund took weeks, support never answered, and the sofa was the wrong size")
    assert set(tags.topics) <= set(TOPICS)
    assert tags.topics == [topic for topic in TOPICS if topic in tags.topics]
    assert {"returns", "support", "sizing"} <= set(tags.topics) and tags.sentiment == "negative"
    assert tag_feedback("") == FeedbackTags("neutral", [], 0.0)
    assert tag_feedback("   ").topics == []
    assert set(SENTIMENTS) == {"positive", "neutral", "negative"}
    assert len(TOPICS) == len(set(TOPICS)) and {"shipping", "quality", "price", "support", "sizing", "packaging",
                                                "product", "website"} <= set(TOPICS)
