"""What the Telegram channel shares across processes (bot.channel_state: Redis or memory): update ids
already handled, how often an update failed, and button payloads too long for callback_data kept under
short random keys."""
from __future__ import annotations

import re
import secrets
from typing import Optional

from bot.channel_state import ChannelState

MAX_CALLBACK_DATA_BYTES = 64
# A callback_data that starts with this is a key into the shared state, never a payload itself.
SHORT_KEY_PREFIX = "~k:"
UPDATE_TTL_SECONDS = 24 * 60 * 60
BUTTON_TTL_SECONDS = 30 * 24 * 60 * 60
SHORT_KEY = re.compile(r"[A-Za-z0-9_-]{1,43}")


class StateUnavailable(RuntimeError):
    """The shared channel state (Redis) could not be reached."""


def update_key(update_id: int) -> str:
    return f"telegram:update:{update_id}"


def attempts_key(update_id: int) -> str:
    """How many times handling this update failed (it is retried a few times, then apologised for)."""
    return f"telegram:attempts:{update_id}"


def button_key(key: str) -> str:
    return f"telegram:button:{key}"


async def callback_data_for(state: ChannelState, payload: str) -> str:
    """The callback_data for a button payload: itself if it fits in 64 bytes, else a short random key."""
    if len(payload.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES and not payload.startswith(SHORT_KEY_PREFIX):
        return payload
    key = secrets.token_urlsafe(16)  # 128 random bits: not guessable
    await state.put(button_key(key), payload, BUTTON_TTL_SECONDS)
    return SHORT_KEY_PREFIX + key


async def payload_for(state: ChannelState, callback_data: str) -> Optional[str]:
    """The payload a pressed button carried; None for a short key that has expired or never existed."""
    if not callback_data.startswith(SHORT_KEY_PREFIX):
        return callback_data
    key = callback_data[len(SHORT_KEY_PREFIX):]
    if not SHORT_KEY.fullmatch(key):
        return None
    return await state.get(button_key(key))
