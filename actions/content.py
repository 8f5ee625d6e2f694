"""submit_content: a photo sent in chat is kept for the merchant's review."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, sender_of, with_store
from bot import clock
from bot.content import keep_photo, photo_from_metadata
from bot.identity import customer_for_sender
from bot.log import get_logger

log = get_logger(__name__)

HOW_TO_SEND = (
    "Send the photo right here in this chat (on Telegram or Instagram) and I'll keep it for our team "
    "to look at. Add a caption if you'd like to tell us about it."
)


class ActionReceiveContent(StoreAction):
    def name(self) -> Text:
        return "action_receive_content"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        photo = photo_from_metadata(tracker.latest_message.get("metadata"), channel, sender_id)
        if photo is None:
            dispatcher.utter_message(text=HOW_TO_SEND)
            return []

        def keep(session: Session) -> Tuple[int, bool, Optional[str]]:
            customer = customer_for_sender(session, channel, sender_id)
            submission, created = keep_photo(session, photo, customer.id if customer else None, clock.now())
            return submission.id, created, customer.display_name if customer else None

        submission_id, created, name = await with_store(keep, write=True)
        log.info("content.photo", submission_id=submission_id, channel=channel, created=created)
        if name is not None:
            text = f"Thanks, {name}! I've saved your photo for our team to review."
        else:
            text = ("Thanks for the photo! I've saved it for our team to review. If you have an account with us, "
                    "say \"link my account\" so we know it's from you.")
        dispatcher.utter_message(text=text)
        return []
