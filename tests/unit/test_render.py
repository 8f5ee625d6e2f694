import pytest

from channels.render import numbered_options, split_text, utf8_length


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
