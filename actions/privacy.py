"""forget_me: the shopper asks to be forgotten. The bot says what erasure removes and asks; only a yes erases
(bot/privacy.py, the same erasure as the console and the CLI), then says goodbye; a no changes nothing."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List, Optional, Set, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from bot import clock
from bot.db import get_database
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.privacy import ErasureReport, erase_chat_everywhere, erase_conversations, erase_customer_everywhere
from bot.settings import Settings, get_settings
from bot.shop import get_shop

log = get_logger(__name__)

CONFIRM_BUTTONS = [{"title": "Yes, erase my data", "payload": "/affirm"},
                   {"title": "No, keep it", "payload": "/deny"}]
APOLOGY = ("Sorry — I couldn't erase your data just now, so nothing was deleted. Please try again in a few "
           "minutes, or ask for a person and our team will do it for you.")


def who_is_asking(channel: str, sender_id: str):
    def work(session: Session) -> Optional[tuple]:
        customer = customer_for_sender(session, channel, sender_id)
        return (customer.id, customer.points_balance) if customer is not None else None

    return work


def member_question(shop_name: str, points: int) -> str:
    forfeit = (f" Your {points:,} points will be forfeited and can't be given back." if points > 0 else "")
    return (f"Before I do that: erasing your personal data removes your name, e-mail and birthday from your "
            f"{shop_name} rewards account, unlinks every chat, and deletes your chat transcripts, photos, pending "
            f"reviews and feedback comments.{forfeit} Order records the shop must keep for its accounts stay, "
            "without anything that identifies you. This can't be undone. Do you want me to erase your data?")


def guest_question() -> str:
    return ("Before I do that: I'll delete this conversation and what you told me in it — quiz answers and any "
            "e-mail you gave, searches, feedback and requests to our team. This can't be undone. "
            "Do you want me to erase it?")


def goodbye_text(report: ErasureReport, member: bool) -> str:
    if report.nothing_left:
        return ("There was nothing left to erase — your personal data is already gone. Goodbye, and thank you for "
                "shopping with us.")
    what = "your personal data" if member else "this conversation and what you told me in it"
    forfeited = f" {report.points_forfeited:,} points were forfeited." if report.points_forfeited else ""
    return (f"Done: I've erased {what}.{forfeited} This chat is no longer linked to any account, and I won't "
            "remember you the next time you write. Goodbye, and thank you for shopping with us.")


class ActionAskForgetMe(StoreAction):
    """The question before an erasure: what goes, what stays, and yes / no buttons."""

    def name(self) -> Text:
        return "action_ask_forget_me"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        found = await with_store(who_is_asking(*sender_of(tracker)))
        log.info("privacy.erasure_asked", linked=found is not None)
        text = member_question(read_config(get_shop).name, found[1]) if found else guest_question()
        dispatcher.utter_message(text=text, buttons=CONFIRM_BUTTONS)
        return []


class ActionForgetMe(StoreAction):
    """The confirmed erasure: the linked customer everywhere (store and trackers), or this guest chat."""

    apology = APOLOGY

    def name(self) -> Text:
        return "action_forget_me"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        found = await with_store(who_is_asking(channel, sender_id))
        actor = f"shopper in chat ({channel})"
        now = clock.now()
        database, settings = get_database(), get_settings()
        try:
            if found is not None:
                report = await _in_thread(lambda: erase_customer_everywhere(database, settings, found[0], actor=actor,
                                                                            now=now))
            else:
                report = await _in_thread(lambda: erase_chat_everywhere(database, settings, channel, sender_id,
                                                                        actor=actor, now=now))
        except Exception:
            log.exception("privacy.erasure_failed", linked=found is not None)
            dispatcher.utter_message(text=APOLOGY)
            return []
        _sweep_conversations_later(settings, [*report.sender_ids, sender_id])
        dispatcher.utter_message(text=goodbye_text(report, member=found is not None))
        return []


# Rasa saves this turn's tracker after the action returns: the SQL store appends the turn's events, the Redis
# store writes the whole tracker back, the erased conversation included. A second pass a moment later takes
# whatever that save put back.
TRACKER_SWEEP_SECONDS = 5.0
_SWEEPS: Set["asyncio.Task[None]"] = set()


def _sweep_conversations_later(settings: Settings, senders: List[str]) -> None:
    async def sweep() -> None:
        await asyncio.sleep(TRACKER_SWEEP_SECONDS)
        try:
            erased = await asyncio.to_thread(erase_conversations, settings, senders)
            log.info("privacy.conversations_swept", conversations=erased)
        except Exception:
            log.exception("privacy.sweep_failed")

    task = asyncio.get_running_loop().create_task(sweep())
    _SWEEPS.add(task)  # held until done: the loop keeps only a weak reference
    task.add_done_callback(_SWEEPS.discard)


async def _in_thread(work: Callable[[], ErasureReport]) -> ErasureReport:
    return await asyncio.to_thread(work)


class ActionKeepData(Action):
    def name(self) -> Text:
        return "action_keep_data"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        log.info("privacy.erasure_declined")
        dispatcher.utter_message(text="Okay — I haven't erased anything; your data and points stay as they are. "
                                      "What else can I do for you?",
                                 buttons=[{"title": "My points", "payload": "/check_points"},
                                          {"title": "Help me choose", "payload": "/start_quiz"}])
        return []
