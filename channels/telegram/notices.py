"""The outbox's Telegram sender: proactive messages the web app's scheduler routed to a Telegram chat
(bot/outbox/: consent, quiet hours, the cap, the best chat) are claimed (marked sent before sending: at most
once) every NOTICE_DELIVERY_SECONDS while the channel runs and sent through the channel's own output, so its
pacing (about 1 message/s per chat, 30/s overall, shared with replies) applies. Telegram's answers: accepted →
delivered; 403 (blocked) → failed and the chat unreachable (nothing more is routed there); 429 → the output
waits retry_after and tries again, and a wait longer than it keeps for queues the message again after it."""
from __future__ import annotations

import asyncio
from typing import List, Optional, Protocol

from telegram import Bot
from telegram.error import Forbidden, RetryAfter

from bot.clock import now as utc_now
from bot.db import Database
from bot.identity import chat_reachability
from bot.log import get_logger
from bot.notices import PendingDelivery, claim_deliveries, delivery_failed
from bot.outbox.service import outbox_delivered, outbox_retry_later
from bot.settings import Settings
from channels.periodic import PeriodicTask
from channels.telegram.config import CHANNEL_NAME
from channels.telegram.outbound import TelegramOutput, retry_seconds

log = get_logger(__name__)


class TelegramChannel(Protocol):
    """What notice delivery needs of the input channel that runs it (channels.telegram.inbound.TelegramInput)."""

    settings: Settings

    async def start_bot(self) -> Optional[Bot]: ...

    def output(self, bot: Bot) -> TelegramOutput: ...


class NoticeDelivery(PeriodicTask):
    """Sends due chat notices to linked Telegram chats every `interval` seconds; see the module docstring."""

    def __init__(
        self, channel: TelegramChannel, interval: Optional[float] = None, database: Optional[Database] = None,
        batch: int = 20, max_delay: float = 300.0, stop_grace: float = 5.0,
    ) -> None:
        self.channel = channel
        self._interval = interval  # None: settings.notice_delivery_seconds
        self._database = database
        self.batch = batch
        self.max_delay = max_delay
        self.stop_grace = stop_grace

    @property  # type: ignore[override]
    def interval(self) -> float:
        return self.channel.settings.notice_delivery_seconds if self._interval is None else self._interval

    def task_name(self) -> str:
        return "telegram-notices"

    async def run_once(self) -> int:
        """One tick: claim the due notices in batches and send them; how many were sent."""
        bot = await self.channel.start_bot()
        if bot is None:
            return 0
        output = self.channel.output(bot)
        sent = 0
        while True:
            deliveries = await asyncio.to_thread(self._claim)
            for delivery in deliveries:
                sent += await self._send(output, delivery)
            if len(deliveries) < self.batch or self.stopping:
                return sent

    def _claim(self) -> List[PendingDelivery]:
        return claim_deliveries(CHANNEL_NAME, utc_now(), self.batch, database=self._database)

    async def _send(self, output: TelegramOutput, delivery: PendingDelivery) -> int:
        try:
            if delivery.buttons:  # a question with its answers (a feedback request's scores)
                await output.send_text_with_buttons(delivery.external_id, delivery.text, list(delivery.buttons))
            else:
                await output.send_text_message(delivery.external_id, delivery.text)
        except RetryAfter as error:  # still limited after the output's own waits: again after the wait
            wait = retry_seconds(error)
            log.info("telegram.notice.retry_after", notice_id=delivery.notice_id, retry_after=wait)
            await asyncio.to_thread(outbox_retry_later, delivery.notice_id, wait, utc_now(),
                                    f"Telegram 429: retry after {wait:g} s", database=self._database)
            return 0
        except Exception as error:  # Forbidden (blocked), BadRequest (chat not found), NetworkError, …
            reason = f"{type(error).__name__}: {error}"
            token = self.channel.settings.telegram_token
            if token:
                reason = reason.replace(token, "<token>")
            log.warning("telegram.notice.failed", notice_id=delivery.notice_id, error=reason)
            try:
                await asyncio.to_thread(self._mark_failed, delivery.notice_id, reason)
            except Exception:  # it stays "sent": never retried
                log.warning("telegram.notice.mark_failed_failed", notice_id=delivery.notice_id, exc_info=True)
            if isinstance(error, Forbidden):  # blocked (or deleted) by the shopper: no more notices to this chat
                await self.mark_unreachable(delivery.external_id)
            return 0
        log.info("telegram.notice.sent", notice_id=delivery.notice_id, customer_id=delivery.customer_id)
        try:
            await asyncio.to_thread(outbox_delivered, delivery.notice_id, utc_now(), database=self._database)
        except Exception:  # it stays "sent": Telegram has it
            log.warning("telegram.notice.mark_delivered_failed", notice_id=delivery.notice_id, exc_info=True)
        return 1

    async def mark_unreachable(self, chat_id: str) -> None:
        try:
            await asyncio.to_thread(chat_reachability, CHANNEL_NAME, chat_id, False, utc_now(), database=self._database)
        except Exception:  # the next notice finds out again
            log.warning("telegram.reachability.record_failed", exc_info=True)

    def _mark_failed(self, notice_id: int, reason: str) -> None:
        delivery_failed(notice_id, reason, database=self._database)
