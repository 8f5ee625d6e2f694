"""Rasa's REST channel with input guards.

Stock `rasa.core.channels.rest.RestInput` answers 500 or nothing to non-UTF-8 or non-JSON bodies,
passes any size of message to the NLU pipeline, and lets the client choose `input_channel` and
`metadata` — so a caller could pose as another channel. This one keeps the same URL and reply
format (/webhooks/rest/webhook) and fixes those: every request gets a reply or a clear 4xx.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Union

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.log import get_logger
from bot.settings import get_settings
from bot.shared.text import EMPTY_MESSAGE_REPLY, clean_chat_text, too_long_reply

log = get_logger(__name__)

MAX_SENDER_CHARS = 128


@dataclass(frozen=True)
class Rejection:
    status: int
    error: str


@dataclass(frozen=True)
class Accepted:
    sender: str
    text: str
    reply: Optional[str] = None  # answered here without the model (empty or oversized message)


def parse_request(body: bytes, max_body_bytes: int, max_message_chars: int) -> Union[Accepted, Rejection]:
    """Validate a REST webhook body: JSON object with a `sender` and a `message`."""
    if len(body) > max_body_bytes:
        return Rejection(413, f"request body too large: the limit is {max_body_bytes} bytes")
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return Rejection(400, "request body must be UTF-8 encoded JSON")
    except (ValueError, RecursionError):
        return Rejection(400, "request body must be a JSON object with 'sender' and 'message'")
    if not isinstance(payload, dict):
        return Rejection(400, "request body must be a JSON object with 'sender' and 'message'")
    sender = payload.get("sender")
    if not isinstance(sender, str) or not clean_chat_text(sender):
        return Rejection(400, "'sender' is required and must be a non-empty string")
    sender = clean_chat_text(sender)
    if len(sender) > MAX_SENDER_CHARS or any(ch.isspace() for ch in sender):
        return Rejection(400, f"'sender' must be at most {MAX_SENDER_CHARS} characters with no spaces")
    message = payload.get("message")
    if not isinstance(message, str):
        return Rejection(400, "'message' is required and must be a string")
    text = clean_chat_text(message)
    if not text:
        return Accepted(sender, "", reply=EMPTY_MESSAGE_REPLY + ' Try "how many points do I have?"')
    too_long = too_long_reply(len(text), max_message_chars)
    if too_long is not None:
        return Accepted(sender, "", reply=too_long)
    return Accepted(sender, text)


class GuardedRestInput(RestInput):
    """REST channel at /webhooks/rest/webhook with validation and an optional bearer token."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("guarded_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            settings = get_settings()
            refusal = check_caller(request.ip, request.headers.get("Authorization", ""), settings.rest_channel_token)
            if refusal is not None:
                log.info("rest.request.refused", status=refusal.status)
                return response.json({"error": refusal.error}, status=refusal.status)
            parsed = parse_request(request.body or b"", settings.max_body_bytes, settings.max_message_chars)
            if isinstance(parsed, Rejection):
                log.info("rest.request.rejected", status=parsed.status, error=parsed.error)
                return response.json({"error": parsed.error}, status=parsed.status)
            if parsed.reply is not None:
                return response.json([{"recipient_id": parsed.sender, "text": parsed.reply}])
            collector = CollectingOutputChannel()
            try:
                # input_channel is fixed and client metadata dropped: neither is signed.
                await on_new_message(
                    UserMessage(parsed.text, collector, parsed.sender, input_channel=self.name(), metadata=None)
                )
            except Exception:  # the conversation must answer even when a turn fails
                log.exception("rest.message.failed", sender_chars=len(parsed.sender))
                return response.json(
                    [{"recipient_id": parsed.sender, "text": "Sorry, something went wrong on my side. Please try again in a moment."}],
                    status=503,
                )
            messages: List[Dict[str, Any]] = collector.messages
            return response.json(messages)

        return webhook


def check_caller(client_ip: str, authorization: str, token: Optional[str]) -> Optional[Rejection]:
    """Who may use the REST channel. Its `sender` is not signed, so it serves a trusted caller only:
    the store's own backend with REST_CHANNEL_TOKEN, or, with no token set, this machine."""
    if token:
        expected = f"Bearer {token}".encode("utf-8")
        if not hmac.compare_digest(authorization.encode("utf-8", "surrogateescape"), expected):
            return Rejection(401, "missing or wrong bearer token")
        return None
    try:
        local = ipaddress.ip_address(client_ip.split("%", 1)[0]).is_loopback
    except ValueError:
        local = False
    if not local:
        return Rejection(403, "the REST channel only answers this machine unless REST_CHANNEL_TOKEN is set")
    return None
