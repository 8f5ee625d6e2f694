"""A campaign's poll answered in chat (bot/campaigns/): its buttons send /answer_poll{"campaign", "poll_option"};
a typed answer naming an option arrives as the same payload (bot/rasa_hooks.py maps it before NLU, keeping the
words in the message's metadata "typed_answer"). The answer is recorded and the campaign's bonus credited once."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from bot import clock
from bot.campaigns.service import CAMPAIGN_ENTITY, OPTION_ENTITY, CampaignError, Response, record_response
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import get_program

log = get_logger(__name__)

TYPED_ANSWER = "typed_answer"  # the metadata key of a typed answer's own words
NOT_OPEN = "Thanks! That poll isn't one I can take an answer to from this chat."


def entity_number(tracker: Tracker, entity: str) -> Optional[int]:
    value = next(tracker.get_latest_entity_values(entity), None)
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2 ** 31 else None


def answer_words(response: Response, bonus_points: int) -> str:
    text = f"Thanks — noted: {response.option_title}." if response.first else \
        f"Thanks — I've changed your answer to {response.option_title}."
    if bonus_points:
        text += f" {bonus_points:,} bonus points are on your account."
    return text


class ActionAnswerPoll(StoreAction):
    hands_over_follow_ups = False  # a poll's button (or its mapped answer) is never a follow-up of the last topic

    def name(self) -> Text:
        return "action_answer_poll"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        campaign_id, option = entity_number(tracker, CAMPAIGN_ENTITY), entity_number(tracker, OPTION_ENTITY)
        typed = (tracker.latest_message.get("metadata") or {}).get(TYPED_ANSWER)
        channel, sender_id = sender_of(tracker)
        program = read_config(get_program)

        def work(session: Session) -> Optional[Response]:
            customer = customer_for_sender(session, channel, sender_id)
            if customer is None or campaign_id is None or option is None:
                return None
            try:
                return record_response(session, program, campaign_id, customer.id, clock.now(), option=option,
                                       typed=typed if isinstance(typed, str) else None, channel=channel)
            except CampaignError:
                return None

        response = await with_store(work, write=True)
        if response is None:
            log.info("campaign.poll_answer_refused", campaign=campaign_id)
            dispatcher.utter_message(text=NOT_OPEN)
            return []
        log.info("campaign.poll_answered", campaign=campaign_id, option=option, typed=bool(typed),
                 bonus=response.bonus_credited)
        dispatcher.utter_message(text=answer_words(response, response.bonus_credited))
        return []
