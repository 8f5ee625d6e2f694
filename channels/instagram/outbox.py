"""The outbox's Instagram sender: proactive messages the web app's scheduler routed to an Instagram chat
(bot/outbox/) are claimed every NOTICE_DELIVERY_SECONDS while the channel runs, and right after the shopper
writes (their waiting messages first). Meta's rules: only inside 24 hours of the shopper's last message, and
never with the HUMAN_AGENT tag (it is for a person's replies; these are automated). Outside the window the
message waits for the shopper's next message or goes to another of their chats (bot.outbox decides)."""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Protocol

from bot.clock import now as utc_now
from bot.db import Database
from bot.log import get_logger
from channels.periodic import PeriodicTask
from bot.outbox.service import (
    OutboxDelivery, claim_outbox, outbox_delivered, outbox_failed, outbox_retry_later, outbox_window_closed,
    outbox_window_opened,
)
from channels.instagram.outbound import (
    TEXT_MAX_BYTES, GraphApiSender, SendOutcome, choices_from_buttons, numbered_text, quick_replies_for,
)
from channels.instagram.state import InstagramState
from channels.render import split_text, utf8_length

log = get_logger(__name__)
CHANNEL = "instagram"
UNAVAILABLE_RETRY_SECONDS = 60.0  # Meta did not take it after the sender's own retries: try again this much later


class InstagramChannel(Protocol):
    """What the sender needs of the input channel that runs it (channels.instagram.inbound.InstagramInput)."""

    state: InstagramState

    def config(self) -> Any: ...

    def sender(self, config: Any) -> GraphApiSender: ...


def messages_for(delivery: OutboxDelivery) -> List[Dict[str, Any]]:
    """The Send API messages of one outbox message: its text in parts, buttons as quick replies on the last
    part (or a numbered list when Instagram cannot show them)."""
    choices = choices_from_buttons(list(delivery.buttons))
    replies = quick_replies_for(choices) if choices else None
    text = numbered_text(delivery.text, choices) if choices and replies is None else delivery.text
    messages: List[Dict[str, Any]] = [{"text": part} for part in split_text(text, TEXT_MAX_BYTES, measure=utf8_length)]
    if replies:
        messages[-1] = dict(messages[-1], quick_replies=replies)
    return messages


class InstagramOutboxDelivery(PeriodicTask):
    def __init__(self, channel: InstagramChannel, interval: float = 30.0, database: Optional[Database] = None,
                 batch: int = 20) -> None:
        self.channel = channel
        self.interval = interval
        self.database = database
        self.batch = batch

    max_delay = 300.0

    def task_name(self) -> str:
        return "instagram-outbox"

    async def shopper_wrote(self, sender_id: str) -> int:
        """The window just opened: the shopper's messages waiting for it are queued again and sent now."""
        if await asyncio.to_thread(outbox_window_opened, CHANNEL, sender_id, utc_now(), database=self.database):
            return await self.run_once([sender_id])
        return 0

    async def run_once(self, recipients: Optional[List[str]] = None) -> int:
        """Claim the due messages (of `recipients` only, when given) and send them; how many were delivered."""
        config = self.channel.config()
        if config is None:
            return 0
        sender = self.channel.sender(config)
        delivered = 0
        while True:
            claimed = await asyncio.to_thread(claim_outbox, CHANNEL, utc_now(), self.batch, recipients,
                                              database=self.database)
            for delivery in claimed:
                delivered += await self._send(sender, delivery)
            if len(claimed) < self.batch or self.stopping:
                return delivered

    async def _send(self, sender: GraphApiSender, delivery: OutboxDelivery) -> int:
        if not await self.channel.state.within_window(delivery.recipient):
            return await self._window_closed(delivery)
        for message in messages_for(delivery):
            outcome = await sender.send(delivery.recipient, message)  # never tagged: the bot is not a person
            if outcome is SendOutcome.OUTSIDE_WINDOW:
                await self.channel.state.mark_outside_window(delivery.recipient)
                return await self._window_closed(delivery)
            if outcome is SendOutcome.UNAVAILABLE:
                await asyncio.to_thread(outbox_retry_later, delivery.message_id, UNAVAILABLE_RETRY_SECONDS, utc_now(),
                                        "Instagram was unavailable: sent again later", database=self.database)
                return 0
            if outcome is not SendOutcome.SENT:
                await asyncio.to_thread(outbox_failed, delivery.message_id, "Instagram refused it (see the log)",
                                        utc_now(), database=self.database)
                return 0
        await asyncio.to_thread(outbox_delivered, delivery.message_id, utc_now(), database=self.database)
        log.info("instagram.outbox.delivered", message_id=delivery.message_id)
        return 1

    async def _window_closed(self, delivery: OutboxDelivery) -> int:
        state = await asyncio.to_thread(outbox_window_closed, delivery.message_id, utc_now(), database=self.database)
        log.info("instagram.outbox.window_closed", message_id=delivery.message_id, now=state)
        return 0
