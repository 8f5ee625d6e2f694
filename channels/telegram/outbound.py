"""Replies to Telegram: text split at 4096 characters, buttons as inline keyboards, images and product
cards as photos with captions, 429s retried after the wait Telegram asks for, pacing per chat and overall."""
from __future__ import annotations

import asyncio
import time
import warnings
from collections import deque
from datetime import timedelta
from typing import Any, Awaitable, Callable, Deque, Dict, Iterable, List, Optional, Text, Tuple, TypeVar

from rasa.core.channels.channel import OutputChannel
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.channel_state import ChannelState
from bot.log import get_logger
from channels.render import ProductCard, product_cards, split_text
from channels.telegram.config import CHANNEL_NAME
from channels.telegram.state import callback_data_for

log = get_logger(__name__)
T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024
MESSAGES_PER_SECOND = 30


class RateLimiter:
    """At most `max_calls` in any `period` seconds (a sliding window), callers served in turn.

    Telegram allows a bot about 30 messages a second overall; `acquire()` waits until one more fits.
    """

    def __init__(
        self, max_calls: int = MESSAGES_PER_SECOND, period: float = 1.0, clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be at least 1 and period positive")
        self.max_calls = max_calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._sent: Deque[float] = deque()
        self._lock: Optional[asyncio.Lock] = None

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: a waiter holds the line, later callers queue behind it
            now = self._clock()
            while self._sent and self._sent[0] + self.period <= now:
                self._sent.popleft()
            if len(self._sent) >= self.max_calls:
                # Wait until the oldest of the window leaves it; that frees exactly one place.
                await self._sleep(self._sent[0] + self.period - now)
                self._sent.popleft()
            self._sent.append(self._clock())


class ChatPacer:
    """At most one message per `interval` seconds to each chat (Telegram's per-chat limit is ~1/s)."""

    def __init__(self, interval: float = 1.0, capacity: int = 10_000) -> None:
        self.interval = interval
        self.capacity = capacity
        self._chats: Dict[str, Tuple[asyncio.Lock, List[float]]] = {}

    async def run(self, chat_id: str, send: Callable[[], Awaitable[T]]) -> T:
        lock, last = self._slot(chat_id)
        async with lock:
            wait = last[0] + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await send()
            finally:
                last[0] = time.monotonic()

    def _slot(self, chat_id: str) -> Tuple[asyncio.Lock, List[float]]:
        slot = self._chats.get(chat_id)
        if slot is None:
            if len(self._chats) >= self.capacity:
                idle = time.monotonic() - max(self.interval, 1.0)
                for key, (lock, last) in list(self._chats.items()):
                    if not lock.locked() and last[0] < idle:
                        del self._chats[key]
            slot = self._chats[chat_id] = (asyncio.Lock(), [0.0])
        return slot


def retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta; both are handled
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        retry_after = error.retry_after
    if isinstance(retry_after, timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def card_caption(card: ProductCard) -> str:
    """A product card's caption: title, then subtitle (its links are buttons), within 1024 characters."""
    text = f"{card.title}\n{card.subtitle}" if card.subtitle else card.title
    return _shorten(text, MAX_CAPTION_CHARS)


class TelegramOutput(OutputChannel):
    """Sends the bot's responses to one Telegram chat."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(
        self,
        bot: Bot,
        state: ChannelState,
        pacer: ChatPacer,
        limiter: RateLimiter,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
    ) -> None:
        self.bot = bot
        self.state = state
        self.pacer = pacer
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        # Messages Telegram accepted through this output: a failed turn that already answered something is
        # not retried (the shopper would read that part twice).
        self.sent = 0

    async def _send(self, chat_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """One message: paced per chat and overall, retried after 429 RetryAfter up to `max_attempts` times."""

        async def limited() -> T:
            await self.limiter.acquire()
            return await call()

        attempt = 1
        while True:
            try:
                result = await self.pacer.run(chat_id, limited)
                self.sent += 1
                return result
            except RetryAfter as error:
                wait = retry_seconds(error)
                if attempt >= self.max_attempts or wait > self.max_retry_wait:
                    log.warning("telegram.send.rate_limited", attempts=attempt, retry_after=wait)
                    raise
                log.info("telegram.send.retry_after", attempt=attempt, retry_after=wait)
                await asyncio.sleep(wait)
                attempt += 1

    async def _keyboard(self, buttons: Iterable[Dict[Text, Any]]) -> InlineKeyboardMarkup:
        rows = []
        for button in buttons:
            payload = str(button.get("payload", button.get("title", "")))
            data = await callback_data_for(self.state, payload)
            rows.append([InlineKeyboardButton(str(button.get("title", "")), callback_data=data)])
        return InlineKeyboardMarkup(rows)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for part in split_text(text, MAX_TEXT_CHARS):
            await self._send(recipient_id, lambda part=part: self.bot.send_message(chat_id=recipient_id, text=part))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        parts = split_text(text, MAX_TEXT_CHARS) or ["Please choose:"]
        markup = await self._keyboard(buttons)
        for part in parts[:-1]:
            await self._send(recipient_id, lambda part=part: self.bot.send_message(chat_id=recipient_id, text=part))
        await self._send(
            recipient_id,
            lambda: self.bot.send_message(chat_id=recipient_id, text=parts[-1], reply_markup=markup),
        )

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._send(recipient_id, lambda: self.bot.send_photo(chat_id=recipient_id, photo=image))

    async def send_elements(self, recipient_id: Text, elements: Iterable[Any], **kwargs: Any) -> None:
        """Product cards: each a photo (or, without one, a message) with its buttons as an inline keyboard."""
        cards = product_cards(list(elements) if elements is not None else [])
        if not cards:
            log.info("telegram.send.no_cards")
            return
        for card in cards:
            await self._send_card(recipient_id, card)

    async def _send_card(self, recipient_id: Text, card: ProductCard) -> None:
        rows = []
        for button in card.buttons:
            if button.url:
                rows.append([InlineKeyboardButton(button.title, url=button.url)])
            elif button.payload:
                data = await callback_data_for(self.state, button.payload)
                rows.append([InlineKeyboardButton(button.title, callback_data=data)])
        markup = InlineKeyboardMarkup(rows) if rows else None
        caption = card_caption(card)
        if card.image_url:
            try:
                await self._send(
                    recipient_id,
                    lambda: self.bot.send_photo(chat_id=recipient_id, photo=card.image_url, caption=caption, reply_markup=markup),
                )
                return
            except BadRequest as error:  # e.g. Telegram could not fetch the image: the card as a message
                log.warning("telegram.send.card_photo_refused", error=str(error))
        await self._send(
            recipient_id, lambda: self.bot.send_message(chat_id=recipient_id, text=caption, reply_markup=markup)
        )

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        text = json_message.get("text") if isinstance(json_message, dict) else None
        if isinstance(text, str) and text.strip():
            await self.send_text_message(recipient_id, text)
        else:
            log.info("telegram.send.custom_ignored", reason="no text")

    async def answer_callback(self, callback_query_id: str) -> bool:
        """Stop the pressed button's spinner; False (logged) when Telegram could not be told."""
        try:
            await self.bot.answer_callback_query(callback_query_id)
            return True
        except TelegramError:
            log.warning("telegram.callback.answer_failed", exc_info=True)
            return False
