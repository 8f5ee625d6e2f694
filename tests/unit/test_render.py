import pytest

from channels.render import CardButton, ProductCard, card_button, cards_as_text, numbered_options, product_cards, split_text, utf8_length


def test_short_text_is_one_part() -> None:
    assert split_text("  hello  ", 10) == ["hello"]
    assert split_text("   ", 10) == []


def test_long_text_splits_on_paragraphs_then_sentences_then_words() -> None:
    text = "First paragraph here.\n\nSecond one is a bit longer. It has two sentences."
    assert split_text(text, 40) == ["First paragraph here.", "Second one is a bit longer.", "It has two sentences."]
    words = "word " * 30
    parts = split_text(words, 22)
    assert all(len(part) <= 22 for part in parts)
    assert " ".join(parts).split() == words.split()


def test_byte_limits_never_split_a_character() -> None:
    text = "ü" * 700  # 1400 bytes in UTF-8
    parts = split_text(text, 1000, measure=utf8_length)
    assert [utf8_length(p) for p in parts] == [1000, 400]
    assert "".join(parts) == text


def test_unbreakable_text_is_cut_at_the_limit() -> None:
    assert split_text("x" * 10, 4) == ["xxxx", "xxxx", "xx"]


def test_bad_limit() -> None:
    with pytest.raises(ValueError):
        split_text("x", 0)


def test_numbered_options() -> None:
    buttons = [{"title": "My points", "payload": "/check_points"}, {"title": "My tier", "payload": "/check_tier"}]
    assert numbered_options("Pick one:", buttons) == "Pick one:\n1. My points\n2. My tier"
    assert numbered_options("Plain", []) == "Plain"


LAMP = {
    "title": "Pebble  table lamp",
    "subtitle": "$89 · warm oak",
    "image_url": "https://oak-and-ember.example/images/oe-lt-002.jpg",
    "buttons": [
        {"title": "View", "url": "https://oak-and-ember.example/products/pebble", "type": "web_url"},
        {"title": "Redeem", "payload": '/redeem_reward{"reward": "free-lamp"}'},
        {"title": "", "payload": "/nothing"},
        {"title": "Broken link", "url": "javascript:alert(1)"},
    ],
}


def test_product_cards_keep_what_every_channel_can_show_and_drop_the_rest() -> None:
    [card] = product_cards([LAMP, "junk", {"title": "   "}, {"subtitle": "no title"}])
    assert card == ProductCard(
        title="Pebble table lamp",
        subtitle="$89 · warm oak",
        image_url="https://oak-and-ember.example/images/oe-lt-002.jpg",
        buttons=(
            CardButton(title="View", url="https://oak-and-ember.example/products/pebble"),
            CardButton(title="Redeem", payload='/redeem_reward{"reward": "free-lamp"}'),
        ),
    )
    assert [b.title for b in card.links] == ["View"] and [b.title for b in card.actions] == ["Redeem"]
    assert product_cards(LAMP) == [card], "one element on its own is one card"
    assert product_cards(None) == [] and product_cards("text") == []
    assert product_cards([{"title": "No picture", "image_url": "ftp://x/y.jpg"}])[0].image_url is None


def test_cards_read_as_text_with_their_first_link() -> None:
    assert cards_as_text([LAMP, {"title": "Linden chair"}]) == (
        "• Pebble table lamp — $89 · warm oak https://oak-and-ember.example/products/pebble\n• Linden chair"
    )
    assert cards_as_text([]) == ""


def test_a_button_is_a_link_or_a_payload_never_both() -> None:
    assert card_button({"title": "Go", "url": "https://x.example", "payload": "/p"}) == CardButton("Go", payload="/p")
    assert card_button({"title": "Go", "url": "https://x.example", "payload": "/p", "type": "web_url"}) == CardButton("Go", url="https://x.example")
    assert card_button({"title": "Go"}) is None and card_button("Go") is None
