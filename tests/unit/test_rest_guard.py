import json

import pytest

from bot.shared.text import clean_chat_text
from channels.rest import Accepted, Rejection, check_caller, parse_request

LIMITS = dict(max_body_bytes=64 * 1024, max_message_chars=2000)


def _body(**payload) -> bytes:
    return json.dumps(payload).encode()


def test_a_normal_message_is_accepted() -> None:
    assert parse_request(_body(sender="alice", message="how many points?"), **LIMITS) == Accepted("alice", "how many points?")


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"\xff\xfe\x00garbage", 400, "UTF-8"),
        (b"not json", 400, "JSON object"),
        (b"[1, 2]", 400, "JSON object"),
        (_body(message="hi"), 400, "'sender' is required"),
        (_body(sender="", message="hi"), 400, "'sender' is required"),
        (_body(sender="a b", message="hi"), 400, "no spaces"),
        (_body(sender="x" * 129, message="hi"), 400, "at most 128"),
        (_body(sender="alice"), 400, "'message' is required"),
        (_body(sender="alice", message=42), 400, "must be a string"),
        (b"{" + b" " * (64 * 1024) + b"}", 413, "too large"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(body, status, words) -> None:
    result = parse_request(body, **LIMITS)
    assert isinstance(result, Rejection) and result.status == status and words in result.error


@pytest.mark.parametrize("message", ["", "   \n\t  ", "\x00\x01\x7f", "\u200b\u200e"])
def test_empty_messages_are_answered_without_the_model(message) -> None:
    result = parse_request(_body(sender="alice", message=message), **LIMITS)
    assert isinstance(result, Accepted) and result.text == "" and "empty message" in result.reply


def test_oversized_messages_are_answered_with_the_limit() -> None:
    result = parse_request(_body(sender="alice", message="a" * 10_000), **LIMITS)
    assert isinstance(result, Accepted) and "10,000 characters" in result.reply and "2,000" in result.reply


def test_control_characters_are_removed_and_text_kept() -> None:
    assert clean_chat_text("  points\x00?\x1b[31m\u202e  ") == "points?[31m"
    assert clean_chat_text("e\u0301moji 🎉\nline") == "émoji 🎉\nline"


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    result = parse_request(b"[" * 60_000, **LIMITS)  # under the size limit, past the parser's recursion limit
    assert isinstance(result, Rejection) and result.status == 400


@pytest.mark.parametrize(
    "ip, header, token, status",
    [
        ("127.0.0.1", "", None, None),
        ("::1", "", None, None),
        ("127.0.0.2", "", None, None),
        ("203.0.113.5", "", None, 403),
        ("10.1.2.3", "Bearer anything", None, 403),
        ("not-an-ip", "", None, 403),
        ("203.0.113.5", "Bearer s3cret", "s3cret", None),
        ("127.0.0.1", "", "s3cret", 401),
        ("127.0.0.1", "Bearer s3cre", "s3cret", 401),
        ("203.0.113.5", "bearer s3cret", "s3cret", 401),
    ],
)
def test_only_trusted_callers_use_the_rest_channel(ip, header, token, status) -> None:
    refusal = check_caller(ip, header, token)
    assert (refusal.status if refusal else None) == status
