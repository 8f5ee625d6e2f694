"""subscribe / unsubscribe: the shopper's consent to messages the shop sends on its own, recorded for this chat
(bot/consent.py) with their words; every sender of proactive messages honours it."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, sender_of, with_store
from bot import clock
from bot.consent import SUBSCRIBED, UNSUBSCRIBED, ConsentChange, record_consent
from bot.identity import customer_for_sender
from bot.log import get_logger

log = get_logger(__name__)

# How the reply names the chat the choice applies to (identity namespaces, bot.identity).
CHANNEL_PLACES = {"telegram": "here on Telegram", "instagram": "here on Instagram",
                  "widget": "in this chat on our website"}
SUBSCRIBE_BUTTON = {"title": "Turn messages back on", "payload": "/subscribe"}
UNSUBSCRIBE_BUTTON = {"title": "Stop messages", "payload": "/unsubscribe"}
POINTS_BUTTON = {"title": "My points", "payload": "/check_points"}


def place(channel: str) -> str:
    return CHANNEL_PLACES.get(channel, "in this chat")


def record_choice(channel: str, sender_id: str, status: str, words: str):
    def work(session: Session) -> tuple:
        customer = customer_for_sender(session, channel, sender_id)
        change = record_consent(session, channel, sender_id, status, now=clock.now(),
                                customer_id=customer.id if customer else None, source="chat", words=words)
        return change, customer is not None

    return work


def unsubscribed_text(channel: str, change: ConsentChange) -> str:
    where = place(channel)
    first = (f"Done — I won't send you messages on my own {where} any more: no review requests, feedback "
             "questions or news pushed to you." if change.changed
             else f"You're already unsubscribed {where}, so I won't message you first.")
    return (f"{first} I'll still answer whenever you write to me. This is for this chat only — say \"unsubscribe\" "
            "in another chat of ours to stop it there too, and \"subscribe\" here to turn messages back on.")


def subscribed_text(channel: str, change: ConsentChange, linked: bool) -> str:
    where = place(channel)
    first = (f"You're subscribed: I'll message you {where} now and then — news about your points and rewards, "
             "a question about how an order went, and a reminder to review what you bought." if change.changed
             else f"You're already subscribed {where}.")
    text = f"{first} Say \"unsubscribe\" or \"stop messages\" any time to stop."
    if not linked:
        text += (" Messages about points and orders need your rewards account linked to this chat "
                 "(say \"link my account\").")
    return text


class ActionUnsubscribe(StoreAction):
    def name(self) -> Text:
        return "action_unsubscribe"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        words = tracker.latest_message.get("text") or ""
        change, linked = await with_store(record_choice(channel, sender_id, UNSUBSCRIBED, words), write=True)
        log.info("consent.recorded", status=UNSUBSCRIBED, channel=channel, changed=change.changed, linked=linked)
        dispatcher.utter_message(text=unsubscribed_text(channel, change), buttons=[SUBSCRIBE_BUTTON])
        return []


class ActionSubscribe(StoreAction):
    def name(self) -> Text:
        return "action_subscribe"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        words = tracker.latest_message.get("text") or ""
        change, linked = await with_store(record_choice(channel, sender_id, SUBSCRIBED, words), write=True)
        log.info("consent.recorded", status=SUBSCRIBED, channel=channel, changed=change.changed, linked=linked)
        buttons: List[Dict[str, str]] = [UNSUBSCRIBE_BUTTON]
        if linked:
            buttons.append(POINTS_BUTTON)
        dispatcher.utter_message(text=subscribed_text(channel, change, linked), buttons=buttons)
        return []
