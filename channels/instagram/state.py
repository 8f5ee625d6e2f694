"""What the Instagram channel remembers in bot.channel_state (Redis or memory) under "instagram:…" keys:
messages already handled (and how often handling one failed), each shopper's last message (the 24-hour reply window), messages held until the
shopper writes again, and the numbered choices a bare number answers."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, TypeVar

from bot.channel_state import ChannelState
from bot.log import get_logger

log = get_logger(__name__)
Clock = Callable[[], float]
T = TypeVar("T")
REPLY_WINDOW_SECONDS = 24 * 60 * 60
# Channel state: how long each kind of entry lives, and how many held messages a shopper may have.
SEEN_MID_TTL_SECONDS = 24 * 60 * 60
LAST_SEEN_TTL_SECONDS = 8 * 24 * 60 * 60
PENDING_TTL_SECONDS = 7 * 24 * 60 * 60
PENDING_MAX_PER_SHOPPER = 50
CHOICES_TTL_SECONDS = 24 * 60 * 60
# domain.yml's session_config.session_expiration_time (120 minutes): a shopper silent this long opens a new
# conversation session, which the assistant greets (tests/unit/test_instagram_channel.py checks they agree).
SESSION_IDLE_SECONDS = 120 * 60


class StateUnavailable(RuntimeError):
    """The shared channel state (Redis) could not be read or written."""


@dataclass(frozen=True)
class Outgoing:
    """One Send API `message`, and the payloads of the numbered list it shows, if any.

    `choices` None leaves what the shopper's numbers mean as it is; a list replaces it once the message is
    delivered (an empty list forgets it: the shopper now has buttons to tap instead)."""

    message: Dict[str, Any]
    choices: Optional[List[str]] = None

    def to_json(self) -> Dict[str, Any]:
        return {"message": self.message, "choices": self.choices}

    @classmethod
    def from_json(cls, raw: Any) -> Optional["Outgoing"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("message"), dict):
            return None
        choices = raw.get("choices")
        if not (isinstance(choices, list) and all(isinstance(choice, str) for choice in choices)):
            choices = None
        return cls(raw["message"], choices)


_NUMBER_REPLY = re.compile(r"\s*(\d{1,3})\s*[.)]?\s*")


def chosen_number(text: str) -> Optional[int]:
    """The number a reply like "2", "2." or " 2 " picks, or None for any other text."""
    match = _NUMBER_REPLY.fullmatch(text)
    return int(match.group(1)) if match else None


def _seconds(raw: Optional[str]) -> Optional[float]:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class InstagramState:
    """What the channel remembers between requests, kept in a `bot.channel_state` store (shared by every
    process and kept across restarts when that store is Redis). Times come from `clock` (seconds since the
    epoch) so tests can move them; entries expire by the store's own time to live."""

    def __init__(self, store: ChannelState, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    async def _guarded(operation: str, call: Awaitable[T]) -> T:
        """The store's answer; its failure as StateUnavailable (the webhook answers 503 so Meta retries)."""
        try:
            return await call
        except Exception as error:
            # The type only: a client's message may name the Redis URL.
            log.warning("instagram.state.unavailable", operation=operation, error=type(error).__name__)
            raise StateUnavailable(operation) from error

    async def first_time(self, mid: Optional[str]) -> bool:
        """True the first time a message id is seen (messages without an id are always new)."""
        if mid is None:
            return True
        return await self._guarded("first_time", self.store.first_time(f"instagram:mid:{mid}", SEEN_MID_TTL_SECONDS))

    async def failed_attempt(self, mid: str) -> int:
        """Count one more failed attempt at handling message `mid`; how many there have been."""
        return await self._guarded("failed_attempt",
                                   self.store.increment(f"instagram:attempts:{mid}", SEEN_MID_TTL_SECONDS))

    async def unmark(self, mid: str) -> None:
        """The message is no longer seen: its redelivery will be handled (StateUnavailable if not done)."""
        await self._guarded("unmark", self.store.delete(f"instagram:mid:{mid}"))

    async def forget(self, mid: Optional[str]) -> None:
        """Best effort: a message that failed before reaching the conversation is processed when redelivered."""
        if mid is None:
            return
        try:
            await self.store.delete(f"instagram:mid:{mid}")
        except Exception as error:  # the store is likely still down: Meta's redelivery is skipped as a duplicate
            log.warning("instagram.state.forget_failed", error=type(error).__name__)

    async def shopper_wrote(self, sender_id: str) -> bool:
        """Note the shopper's message (the reply window starts again). True when it opens a session: the
        shopper had not written before, or not for SESSION_IDLE_SECONDS."""
        key = f"instagram:last_seen:{sender_id}"
        previous = _seconds(await self._guarded("shopper_wrote", self.store.get(key)))
        now = self.clock()
        await self._guarded("shopper_wrote", self.store.put(key, repr(now), LAST_SEEN_TTL_SECONDS))
        return previous is None or now - previous > SESSION_IDLE_SECONDS

    async def within_window(self, recipient_id: str) -> bool:
        last = _seconds(await self._guarded("within_window", self.store.get(f"instagram:last_seen:{recipient_id}")))
        return last is not None and self.clock() - last <= REPLY_WINDOW_SECONDS

    async def mark_outside_window(self, recipient_id: str) -> None:
        """Meta says the window is closed: hold everything for this shopper until they write again."""
        await self._guarded("mark_outside_window", self.store.delete(f"instagram:last_seen:{recipient_id}"))

    async def hold(self, recipient_id: str, outgoing: Outgoing) -> None:
        key = f"instagram:pending:{recipient_id}"
        push = self.store.push(key, outgoing.to_json(), PENDING_TTL_SECONDS, PENDING_MAX_PER_SHOPPER)
        await self._guarded("hold", push)

    async def take_held(self, recipient_id: str) -> List[Outgoing]:
        """Every message held for this shopper, oldest first; they are no longer held after this."""
        raw_items = await self._guarded("take_held", self.store.pop_all(f"instagram:pending:{recipient_id}"))
        return [item for item in map(Outgoing.from_json, raw_items) if item is not None]

    async def remember_choices(self, recipient_id: str, payloads: List[str]) -> None:
        key = f"instagram:choices:{recipient_id}"
        if payloads:
            await self._guarded("remember_choices", self.store.put(key, json.dumps(payloads), CHOICES_TTL_SECONDS))
        else:
            await self._guarded("remember_choices", self.store.delete(key))

    async def payload_chosen(self, recipient_id: str, text: str) -> Optional[str]:
        """The payload of the numbered option this reply picks, or None (not a number, no list, out of range)."""
        number = chosen_number(text)
        if number is None:
            return None
        raw = await self._guarded("payload_chosen", self.store.get(f"instagram:choices:{recipient_id}"))
        try:
            payloads = json.loads(raw) if raw else []
        except ValueError:
            return None
        if not isinstance(payloads, list) or not 1 <= number <= len(payloads):
            return None
        payload = payloads[number - 1]
        return payload if isinstance(payload, str) and payload else None
