"""What every action that touches the store shares: running service calls off the event loop,
turning store failures into an apology, and knowing who the sender is."""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, Callable, Dict, List, Text, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from actions.thread import FOLLOW_UP_ACTION, read_follow_up
from bot import clock
from bot.campaigns.service import CAMPAIGN_ENTITY, POLL_INTENT, CampaignError, record_tap
from bot.config_files import ConfigError
from bot.db import transaction_in_thread
from bot.identity import customer_for_sender, identity_channel
from bot.loyalty.program import get_program
from bot.log import get_logger

log = get_logger(__name__)
T = TypeVar("T")

STORE_APOLOGY = (
    "Sorry — I can't reach our rewards system right now, so I can't do that. "
    "Please try again in a few minutes; nothing on your account has changed."
)


class StoreUnavailable(RuntimeError):
    """The loyalty store (or its configuration) could not be used for this turn."""


async def with_store(work: Callable[[Session], T], *, write: bool = False) -> T:
    """`work` in one database transaction on a worker thread (bot/db.py); a failing store (or configuration
    file) becomes StoreUnavailable, which the action answers with an apology."""
    try:
        return await transaction_in_thread(work, write=write)
    except (SQLAlchemyError, ConfigError, OSError) as error:
        log.error("store.unavailable", error_type=type(error).__name__, error=str(error).splitlines()[0][:300])
        raise StoreUnavailable(str(error)) from error


def read_config(load: Callable[[], T]) -> T:
    """A configuration file's content; a broken file makes the turn apologise like a store failure."""
    try:
        return load()
    except ConfigError as error:
        log.error("config.invalid", error=str(error))
        raise StoreUnavailable(str(error)) from error


def sender_of(tracker: Tracker) -> tuple:
    """(identity channel, sender id) of the conversation."""
    return identity_channel(tracker.get_latest_input_channel()), tracker.sender_id


def hand_over_follow_up(action: Action, tracker: Tracker) -> List[Dict[Text, Any]]:
    """[FollowupAction(action_follow_up)] when the shopper's message follows up on the topic the last answer
    left open (actions/thread.py), whatever intent the NLU gave it; else []."""
    follow_up = read_follow_up(tracker)
    if follow_up is None:
        return []
    log.info("thread.follow_up", action=action.name(), topic=follow_up.topic.value, kind=follow_up.kind,
             intent=(tracker.latest_message.get("intent") or {}).get("name"))
    return [FollowupAction(FOLLOW_UP_ACTION)]


async def note_campaign_tap(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """A campaign's message button (/redeem_reward{"campaign": 12}, …) was tapped: record the tap for the
    campaign's results and credit its bonus once (bot/campaigns/), then let the action do what the button says.
    Nothing for any other message, or for a campaign not sent to this shopper."""
    latest = tracker.latest_message or {}
    intent = (latest.get("intent") or {}).get("name")
    campaign = next((entity.get("value") for entity in latest.get("entities") or ()
                     if entity.get("entity") == CAMPAIGN_ENTITY), None)
    if campaign is None or intent in (None, POLL_INTENT) or not str(campaign).isdigit():
        return
    channel, sender_id = sender_of(tracker)

    def work(session: Session) -> int:
        customer = customer_for_sender(session, channel, sender_id)
        if customer is None:
            return 0
        try:
            return record_tap(session, get_program(), int(str(campaign)), customer.id, intent, clock.now(),
                              channel).bonus_credited
        except CampaignError:
            return 0

    bonus = await with_store(work, write=True)
    log.info("campaign.tapped", campaign=str(campaign), intent=intent, bonus=bonus)
    if bonus:
        dispatcher.utter_message(text=f"Thanks for stopping by — {bonus:,} bonus points are on your account.")


class StoreAction(Action, metaclass=ABCMeta):
    """An action that reads or writes the loyalty store; a failing store gets an apology.

    An action that answers a shopper's message first hands a follow-up of the last answer over to
    action_follow_up ("cheaper?" after a search is not a new request, whatever the NLU thought it was).

    Abstract (ABCMeta) so that rasa-sdk, which registers every Action subclass, skips it.
    """

    apology: str = STORE_APOLOGY  # what the shopper is told when the store or a config file fails
    # False for actions that never answer a free message: form steps, confirmations, the follow-up itself.
    hands_over_follow_ups: bool = True

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if self.hands_over_follow_ups:
            handed_over = hand_over_follow_up(self, tracker)
            if handed_over:
                return handed_over
        try:
            await note_campaign_tap(dispatcher, tracker)
            return await self.respond(dispatcher, tracker, domain)
        except StoreUnavailable:
            dispatcher.utter_message(text=self.apology)
            return []
        except Exception:  # a bug must not leave the shopper with silence
            log.exception("action.failed", action=self.name())
            dispatcher.utter_message(text=self.apology)
            return []

    @abstractmethod
    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        """The action's work; may raise StoreUnavailable."""
