"""Passing a conversation to a person on the merchant's team."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from bot.handoff import MAX_CONTEXT_MESSAGES, request_handoff
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.shop import get_shop

log = get_logger(__name__)


def recent_messages(tracker: Tracker, limit: int = MAX_CONTEXT_MESSAGES) -> List[Dict[str, str]]:
    """The last messages of the conversation, shopper's and bot's, oldest first."""
    messages: List[Dict[str, str]] = []
    for event in tracker.events:
        role = {"user": "shopper", "bot": "bot"}.get(event.get("event", ""))
        text = event.get("text")
        if role and text:
            at = datetime.fromtimestamp(event.get("timestamp") or 0, tz=timezone.utc).isoformat()
            messages.append({"role": role, "text": text, "at": at})
    return messages[-limit:]


class ActionRequestHandoff(StoreAction):
    def name(self) -> Text:
        return "action_request_handoff"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        shop = read_config(get_shop)
        channel, sender_id = sender_of(tracker)
        context = recent_messages(tracker)

        def work(session: Session) -> int:
            customer = customer_for_sender(session, channel, sender_id)
            request = request_handoff(session, channel, sender_id, customer.id if customer else None, context)
            return int(request.id)

        request_id = await with_store(work, write=True)
        log.info("handoff.requested", request_id=request_id, channel=channel)
        dispatcher.utter_message(
            text=(
                f"Done — I've passed this conversation to the {shop.name} team (request #{request_id}), "
                f"with our chat so far so you don't have to repeat yourself. They answer {shop.support_first_reply} "
                f"(team hours: {shop.support_hours}). Meanwhile I'm still here for points and rewards questions."
            )
        )
        return []
