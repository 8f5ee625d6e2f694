"""The Telegram channel's configuration from the environment: is it on, in which mode, and what to set
when it is not (`telegram_status` is the line `make run` prints)."""
from __future__ import annotations

import re
from typing import Optional

from bot.settings import Settings

CHANNEL_NAME = "telegram"
WEBHOOK_PATH = "/webhooks/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# my_chat_member: in a private chat, the shopper blocked or unblocked the bot (bot/identity records it).
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
SECRET_RULE = "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -"
MISSING_WEBHOOK_SETTINGS = "set TELEGRAM_TOKEN and TELEGRAM_WEBHOOK_SECRET"
MISSING_TOKEN = "set TELEGRAM_TOKEN"
TOKEN_REJECTED = "Telegram rejected TELEGRAM_TOKEN (401 Unauthorized): check the token @BotFather gave you"
NOT_CONFIGURED = "telegram channel is not configured"
POLLING_MODE = (
    "telegram channel is in long-polling mode (TELEGRAM_MODE=polling): it fetches updates itself and "
    "accepts none on the webhook; set TELEGRAM_MODE=webhook to use the webhook"
)


def valid_webhook_secret(secret: Optional[str]) -> bool:
    """Whether Telegram accepts `secret` as setWebhook's secret_token."""
    return bool(secret) and SECRET_PATTERN.fullmatch(secret or "") is not None


def telegram_problem(settings: Settings) -> Optional[str]:
    """Why the channel is off (what to set), or None when it is on."""
    if settings.telegram_mode == "polling":
        return None if settings.telegram_token else MISSING_TOKEN
    if not (settings.telegram_token and settings.telegram_webhook_secret):
        return MISSING_WEBHOOK_SETTINGS
    if not valid_webhook_secret(settings.telegram_webhook_secret):
        return SECRET_RULE
    return None


def telegram_status(settings: Settings) -> str:
    """One line for the operator, e.g. "telegram: on (webhook)" or "telegram: off — set TELEGRAM_TOKEN …"."""
    problem = telegram_problem(settings)
    if problem is not None:
        return f"telegram: off — {problem}"
    return "telegram: on (long polling)" if settings.telegram_mode == "polling" else "telegram: on (webhook)"


class TokenRejected(RuntimeError):
    """Telegram refused the bot token (the message never contains the token)."""
