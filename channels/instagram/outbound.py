"""Replies to Instagram through the Graph API: text split at 1000 UTF-8 bytes, quick replies or numbered
choices, generic templates for product cards, retries on 429/5xx, and holding what falls outside the
24-hour window."""
from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Sequence, Text

import aiohttp
from rasa.core.channels.channel import OutputChannel

from bot.log import get_logger
from channels.instagram.config import InstagramConfig
from channels.instagram.state import InstagramState, Outgoing
from channels.render import ProductCard, cards_as_text, numbered_options, product_cards, split_text, utf8_length

log = get_logger(__name__)
Sleep = Callable[[float], Awaitable[Any]]
TEXT_MAX_BYTES = 1000
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000
TEMPLATE_ELEMENTS_MAX = 10
TEMPLATE_TEXT_MAX = 80
TEMPLATE_BUTTONS_MAX = 3
SEND_TIMEOUT_SECONDS = 15
# Graph API retries: attempts in all, exponential backoff (base, cap) and the longest Retry-After honoured.
SEND_ATTEMPTS = 3
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0
# Meta's "This message is sent outside of allowed window" (Messenger Platform error codes: code 10 with
# one of these subcodes).
OUTSIDE_WINDOW_CODE = 10
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278, 2534022})
CHOICE_HINT = "Reply with the number of your choice."


class SendOutcome(enum.Enum):
    SENT = "sent"
    OUTSIDE_WINDOW = "outside_window"  # Meta refused: the 24-hour window is closed; hold the message
    # Meta did not take it and surely did not deliver it (429/5xx after every attempt, or no connection):
    # held like a message outside the window, and sent when the shopper next writes.
    UNAVAILABLE = "unavailable"
    FAILED = "failed"  # refused for good (another 4xx), or cut off mid-request (maybe delivered): dropped


@dataclass(frozen=True)
class GraphError:
    """The `error` object of a failed Graph API answer (whatever of it could be read)."""

    code: Optional[int] = None
    subcode: Optional[int] = None
    kind: Optional[str] = None
    message: str = ""

    @classmethod
    def parse(cls, body: bytes) -> "GraphError":
        try:
            error = json.loads(body.decode("utf-8", "replace")).get("error")
        except (ValueError, AttributeError, RecursionError):
            return cls()
        if not isinstance(error, dict):
            return cls()

        def number(value: Any) -> Optional[int]:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        kind = error.get("type")
        message = error.get("message")
        return cls(
            code=number(error.get("code")),
            subcode=number(error.get("error_subcode")),
            kind=kind[:60] if isinstance(kind, str) else None,
            message=message[:200] if isinstance(message, str) else "",
        )

    @property
    def outside_window(self) -> bool:
        return self.code == OUTSIDE_WINDOW_CODE and self.subcode in OUTSIDE_WINDOW_SUBCODES


def retry_delay(attempt: int, retry_after: Optional[str]) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): the `Retry-After` seconds when the
    API gave them, else 1 s, 2 s, 4 s…; never more than RETRY_MAX_SECONDS (the webhook request waits)."""
    if retry_after is not None:
        try:
            asked = float(retry_after.strip())
        except ValueError:
            asked = -1.0
        if 0 <= asked < float("inf"):
            return min(asked, RETRY_MAX_SECONDS)
    return min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS)


class GraphApiSender:
    """POSTs messages to the Instagram Graph API with one aiohttp session, made in the running loop;
    retries 429 and 5xx answers (see the module docstring). `sleep` is injectable for tests."""

    def __init__(self, config: InstagramConfig, sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def url(self) -> str:
        return f"{self.config.api_base}/me/messages"

    async def send(self, recipient_id: str, message: Dict[str, Any], tag: Optional[str] = None) -> SendOutcome:
        """One message; `tag` (HUMAN_AGENT: a person's reply within 7 days) sends it as a tagged message."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_SECONDS))
        body: Dict[str, Any] = {"recipient": {"id": recipient_id}, "message": message}
        if tag:
            body.update(messaging_type="MESSAGE_TAG", tag=tag)
        headers = {"Authorization": f"Bearer {self.config.access_token}"}
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                async with self._session.post(self.url, json=body, headers=headers) as reply:
                    status = reply.status
                    retry_after = reply.headers.get("Retry-After")
                    answer = await reply.read() if status >= 400 else b""
            except aiohttp.ClientConnectorError as error:  # nothing was sent: held for later
                log.warning("instagram.send.unavailable", error=type(error).__name__, attempts=attempt)
                return SendOutcome.UNAVAILABLE
            # A timed-out or cut connection may have delivered the message: not retried, so never sent twice.
            except Exception as error:  # noqa: BLE001 - a failed send must not end the conversation turn
                log.warning("instagram.send.failed", error=type(error).__name__, attempts=attempt)
                return SendOutcome.FAILED
            if status < 400:
                return SendOutcome.SENT
            retryable = status == 429 or status >= 500
            if retryable and attempt < SEND_ATTEMPTS:
                delay = retry_delay(attempt, retry_after)
                log.info("instagram.send.retry", status=status, attempt=attempt, delay_seconds=delay)
                await self._sleep(delay)
                continue
            error = GraphError.parse(answer)
            details = dict(
                status=status,
                attempts=attempt,
                code=error.code,
                subcode=error.subcode,
                error_type=error.kind,
                # Meta's messages do not carry the token, but a proxy's might: never log it.
                detail=error.message.replace(self.config.access_token, "[token]"),
            )
            if not retryable and error.outside_window:
                log.info("instagram.send.outside_window", **details)
                return SendOutcome.OUTSIDE_WINDOW
            log.warning("instagram.send.failed", **details)
            return SendOutcome.UNAVAILABLE if retryable else SendOutcome.FAILED
        return SendOutcome.FAILED  # not reached: the last attempt always returns

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


@dataclass(frozen=True)
class Choice:
    """One option the shopper can pick: shown as a quick reply, or as a numbered line."""

    title: str
    payload: str


def choices_from_buttons(buttons: Any) -> List[Choice]:
    """Rasa buttons ({"title", "payload"}) → choices; buttons without a title are skipped, a missing
    payload is the title (what the shopper would have typed)."""
    if not isinstance(buttons, (list, tuple)):
        return []
    choices = []
    for button in buttons:
        if not isinstance(button, dict):
            continue
        title = " ".join(str(button.get("title") or "").split())
        payload = button.get("payload")
        payload = payload.strip() if isinstance(payload, str) and payload.strip() else title
        if title:
            choices.append(Choice(title, payload))
    return choices


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quick_replies_for(choices: Sequence[Choice]) -> Optional[List[Dict[str, str]]]:
    """Choices → Instagram quick replies, or None when Instagram cannot show them as such."""
    if not choices or len(choices) > QUICK_REPLIES_MAX:
        return None
    if any(len(choice.payload) > QUICK_REPLY_PAYLOAD_MAX for choice in choices):
        return None
    return [
        {"content_type": "text", "title": _truncate(choice.title, QUICK_REPLY_TITLE_MAX), "payload": choice.payload}
        for choice in choices
    ]


def numbered_text(text: str, choices: Sequence[Choice]) -> str:
    """The text with the choices as a numbered list and how to answer it."""
    return f"{numbered_options(text, [{'title': choice.title} for choice in choices])}\n{CHOICE_HINT}".strip()


def generic_template_for(elements: Any) -> Optional[Dict[str, Any]]:
    """Product cards → a generic template when every card fits Instagram's limits, else None."""
    return _template_of(product_cards(elements))


def _template_of(cards: Sequence[ProductCard]) -> Optional[Dict[str, Any]]:
    if not cards or len(cards) > TEMPLATE_ELEMENTS_MAX:
        return None
    elements = []
    for card in cards:
        if len(card.title) > TEMPLATE_TEXT_MAX or (card.subtitle and len(card.subtitle) > TEMPLATE_TEXT_MAX):
            return None
        if card.image_url and not card.image_url.startswith("https://"):
            return None
        if len(card.buttons) > TEMPLATE_BUTTONS_MAX:
            return None
        element: Dict[str, Any] = {"title": card.title}
        if card.subtitle:
            element["subtitle"] = card.subtitle
        if card.image_url:
            element["image_url"] = card.image_url
        buttons = []
        for button in card.buttons:
            if len(button.title) > QUICK_REPLY_TITLE_MAX:
                return None
            if button.url:
                if not button.url.startswith("https://"):
                    return None
                buttons.append({"type": "web_url", "url": button.url, "title": button.title})
            elif button.payload and len(button.payload) <= QUICK_REPLY_PAYLOAD_MAX:
                buttons.append({"type": "postback", "payload": button.payload, "title": button.title})
            else:
                return None
        if buttons:
            element["buttons"] = buttons
        elements.append(element)
    return {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": elements}}}


def card_choices(cards: Sequence[ProductCard]) -> List[Choice]:
    """The cards' postback buttons as choices, named after their card ("Standing desk: Redeem")."""
    return [Choice(f"{card.title}: {button.title}", button.payload) for card in cards for button in card.actions if button.payload]


class InstagramOutput(OutputChannel):
    """Renders Rasa responses as Instagram messages; sends only inside the 24-hour window and holds the
    rest for when the shopper writes again."""

    @classmethod
    def name(cls) -> Text:
        return "instagram"

    def __init__(self, sender: GraphApiSender, state: InstagramState) -> None:
        self.sender = sender
        self.state = state
        # Messages sent or held for the shopper through this output: a failed turn that already answered
        # something is not retried (the shopper would read that part twice).
        self.answered = 0

    async def _deliver(self, recipient_id: str, messages: Sequence[Outgoing]) -> None:
        for outgoing in messages:
            if not await self.state.within_window(recipient_id):
                await self._hold(recipient_id, outgoing, "outside_window")
                continue
            outcome = await self.sender.send(recipient_id, outgoing.message)
            if outcome is SendOutcome.SENT:
                self.answered += 1
                if outgoing.choices is not None:
                    await self.state.remember_choices(recipient_id, outgoing.choices)
            elif outcome is SendOutcome.OUTSIDE_WINDOW:
                await self.state.mark_outside_window(recipient_id)
                await self._hold(recipient_id, outgoing, "outside_window")
            elif outcome is SendOutcome.UNAVAILABLE:
                await self._hold(recipient_id, outgoing, "graph_api_unavailable")

    async def _hold(self, recipient_id: str, outgoing: Outgoing, reason: str) -> None:
        await self.state.hold(recipient_id, outgoing)
        self.answered += 1
        log.info("instagram.reply.held", reason=reason, recipient_chars=len(recipient_id))

    async def deliver_held(self, recipient_id: str) -> int:
        """Send the messages held for this shopper, oldest first (they just wrote: the window is open)."""
        held = await self.state.take_held(recipient_id)
        if held:
            log.info("instagram.reply.delivering_held", messages=len(held))
            await self._deliver(recipient_id, held)
        return len(held)

    @staticmethod
    def _texts(text: str, choices: Optional[List[str]] = None) -> List[Outgoing]:
        parts = split_text(text, TEXT_MAX_BYTES, measure=utf8_length)
        # The choices belong to the last part: the one that ends with the list.
        return [Outgoing({"text": part}, choices if index == len(parts) - 1 else None) for index, part in enumerate(parts)]

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, self._texts(text))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        choices = choices_from_buttons(buttons)
        if not choices:
            await self.send_text_message(recipient_id, text)
            return
        replies = quick_replies_for(choices)
        if replies is None:
            await self._deliver(recipient_id, self._texts(numbered_text(text, choices), [c.payload for c in choices]))
            return
        messages = self._texts(text) or [Outgoing({"text": "Choose one:"})]
        # Quick replies belong to the last part; the shopper now taps, so older numbered options are forgotten.
        messages[-1] = Outgoing(dict(messages[-1].message, quick_replies=replies), choices=[])
        await self._deliver(recipient_id, messages)

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._deliver(recipient_id, [Outgoing({"attachment": {"type": "image", "payload": {"url": image}}})])

    async def send_elements(self, recipient_id: Text, elements: Iterable[Any], **kwargs: Any) -> None:
        elements = list(elements)
        cards = product_cards(elements)
        if not cards:
            log.info("instagram.reply.no_usable_cards", elements=len(elements))
            return
        template = _template_of(cards)
        if template is not None:
            taps = [] if any(card.actions for card in cards) else None
            await self._deliver(recipient_id, [Outgoing(template, taps)])
            return
        choices = card_choices(cards)
        text = cards_as_text(elements)
        if choices:
            await self._deliver(recipient_id, self._texts(numbered_text(text, choices), [c.payload for c in choices]))
        else:
            await self._deliver(recipient_id, self._texts(text))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        # A custom response is an Instagram `message` object, sent as it is.
        if isinstance(json_message, dict) and json_message:
            await self._deliver(recipient_id, [Outgoing(json_message)])

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        if isinstance(attachment, dict):
            await self._deliver(recipient_id, [Outgoing({"attachment": attachment})])
        elif isinstance(attachment, str) and attachment.startswith("https://"):
            await self.send_image_url(recipient_id, attachment)
