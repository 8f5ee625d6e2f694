"""The Telegram channel (python-telegram-bot 22): config.py, state.py, outbound.py, notices.py, inbound.py.
credentials.yml names `channels.telegram.TelegramInput`; the README's "Channels" section says what it does."""
from channels.telegram.config import CHANNEL_NAME, WEBHOOK_PATH, telegram_problem, telegram_status
from channels.telegram.inbound import TelegramInput
from channels.telegram.outbound import TelegramOutput

__all__ = ["CHANNEL_NAME", "WEBHOOK_PATH", "TelegramInput", "TelegramOutput", "telegram_problem", "telegram_status"]
