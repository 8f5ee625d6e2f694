"""submit_content: a photo or video sent in chat is kept for the merchant's review; approval pays points."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, read_config, sender_of, with_store
from bot import clock
from bot.advocacy.content import keep_submission, media_from_metadata
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import get_program

log = get_logger(__name__)

HOW_TO_SEND = (
    "Send the photo or a short video right here in this chat (on Telegram or Instagram) and I'll keep it for "
    "our team to look at. Add a caption if you'd like to tell us about it."
)


class ActionReceiveContent(StoreAction):
    def name(self) -> Text:
        return "action_receive_content"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        media = media_from_metadata(tracker.latest_message.get("metadata"), channel, sender_id)
        if media is None:
            dispatcher.utter_message(text=HOW_TO_SEND)
            return []
        points = read_config(get_program).earning.user_content

        def keep(session: Session) -> Tuple[int, bool, Optional[str]]:
            customer = customer_for_sender(session, channel, sender_id)
            submission, created = keep_submission(session, media, customer.id if customer else None, clock.now())
            return submission.id, created, customer.display_name if customer else None

        submission_id, created, name = await with_store(keep, write=True)
        log.info("content.received", submission_id=submission_id, channel=channel, kind=media.kind, created=created)
        if name is not None:
            text = f"Thanks, {name}! I've saved your {media.kind} for our team to review."
            if points > 0:
                text += f" If they approve it, {points:,} points will be added to your account."
        else:
            text = (f"Thanks for the {media.kind}! I've saved it for our team to review. If you have an account "
                    "with us, say \"link my account\" so we know it's from you.")
        dispatcher.utter_message(text=text)
        return []
