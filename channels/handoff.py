"""What every channel does about live handoffs (bot/handoff.py): before a shopper's message reaches the
bot, ask whether a person has the conversation (then the message is kept for them and the bot stays
quiet); and a loop that delivers the team's replies, polling for them every second while the channel runs."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Collection, Dict, Optional

from bot.db import Database
from bot.handoff import PendingReply, claim_replies, reply_delivered, route_shopper_message
from bot.log import get_logger
from channels.periodic import PeriodicTask

log = get_logger(__name__)
POLL_SECONDS = 1.0
SendText = Callable[[str], Awaitable[Any]]
# Sends one reply; returns None when sent, else why not (no secrets: it is stored and shown to the team).
SendReply = Callable[[PendingReply], Awaitable[Optional[str]]]


async def kept_for_a_person(channel: str, sender_id: str, text: str, send_text: SendText,
                            database: Optional[Database] = None) -> bool:
    """True when a person has this conversation: the message was kept for them (and, when the shopper
    asked for the bot back, the channel has said so with `send_text`); the caller does not hand it to the
    bot. With the store unreachable the bot answers as usual: a shopper is never left with silence."""
    try:
        route = await asyncio.to_thread(route_shopper_message, channel, sender_id, text, database=database)
    except Exception:
        log.warning("handoff.route_failed", channel=channel, exc_info=True)
        return False
    if route.to_bot:
        return False
    log.info("handoff.message_kept", channel=channel, handoff_id=route.handoff_id, resumed=route.reply is not None)
    if route.reply:
        await send_text(route.reply)
    return True


class ReplyDelivery(PeriodicTask):
    """Sends the team's replies queued for `channel`, every `interval` seconds while started. `only`, when
    given, names the conversations this process can reach (the widget's open sockets)."""

    def __init__(self, channel: str, send: SendReply, interval: float = POLL_SECONDS,
                 only: Optional[Callable[[], Collection[str]]] = None, database: Optional[Database] = None,
                 batch: int = 20) -> None:
        self.channel = channel
        self.send = send
        self.interval = interval
        self.only = only
        self.database = database
        self.batch = batch

    max_delay = 60.0

    def task_name(self) -> str:
        return f"{self.channel}-handoff-replies"

    def log_fields(self) -> Dict[str, Any]:
        return {"channel": self.channel}

    async def run_once(self) -> int:
        """Claim what is due and send it; how many were sent."""
        only = self.only() if self.only is not None else None
        if only is not None and not only:
            return 0
        claimed = await asyncio.to_thread(claim_replies, self.channel, None, self.batch,
                                          set(only) if only is not None else None, database=self.database)
        sent = 0
        for reply in claimed:
            try:
                problem = await self.send(reply)
            except Exception as error:  # noqa: BLE001 - one failed send must not stop the others
                problem = f"not sent: {type(error).__name__}"
                log.warning("handoff.delivery.failed", channel=self.channel, message_id=reply.message_id, exc_info=True)
            await asyncio.to_thread(reply_delivered, reply.message_id, problem is None,
                                    problem or ("HUMAN_AGENT tag" if reply.tag else None), database=self.database)
            sent += problem is None
            log.info("handoff.delivery." + ("sent" if problem is None else "refused"), channel=self.channel,
                     message_id=reply.message_id, tag=reply.tag)
        return sent
