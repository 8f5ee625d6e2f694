"""link_account: link this chat to the shopper's store account with a one-time code."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.asking import is_question
from actions.common import StoreAction, read_config, sender_of, with_store
from actions.loyalty import POINTS_BUTTON, TIER_BUTTON
from bot import clock
from bot.identity import customer_for_sender
from bot.identity.linking import LINK_CODE_MINUTES, LinkOutcome, find_code, redeem_link_code
from bot.loyalty.ledger import balance
from bot.log import get_logger
from bot.shop import Shop, get_shop

log = get_logger(__name__)

HANDOFF_BUTTON = {"title": "Talk to a person", "payload": "/human_handoff"}


def typed_code(tracker: Tracker) -> Optional[str]:
    """The code from the message: the link_token entity (NLU, or a Telegram deep link's payload), else
    anything in the text that reads like a code."""
    entity = next(tracker.get_latest_entity_values("link_token"), None)
    text = tracker.latest_message.get("text") or ""
    for candidate in (entity, text):
        if isinstance(candidate, str):
            found = find_code(candidate)
            if found:
                return found
    return None


def how_to_link(shop: Shop) -> str:
    return (
        f"To link this chat to your {shop.name} account, open your account page ({shop.account_url}), "
        f"choose \"Link a chat\" to get a one-time code, and send me the code here. "
        f"A code works once and for {LINK_CODE_MINUTES} minutes."
    )


def outcome_text(outcome: LinkOutcome, shop: Shop, points: Optional[int]) -> str:
    name = outcome.customer.display_name if outcome.customer is not None else ""
    if outcome.status == "linked":
        return (f"Done, {name} — this chat is now linked to your {shop.name} account. "
                f"You have {points:,} points.")
    if outcome.status == "already_linked":
        return f"This chat is already linked to your account, {name}. You have {points:,} points."
    if outcome.status == "expired":
        return (f"That code has expired (codes last {LINK_CODE_MINUTES} minutes). "
                f"Get a fresh one on your account page ({shop.account_url}) and send it here.")
    if outcome.status == "used":
        return f"That code has already been used. Get a fresh one on your account page ({shop.account_url})."
    if outcome.status == "rate_limited":
        minutes = max(1, round(outcome.retry_after.total_seconds() / 60)) if outcome.retry_after else 15
        return (f"That's too many wrong codes from this chat, so I've paused linking. "
                f"Please try again in about {minutes} minute{'s' if minutes != 1 else ''}.")
    if outcome.status == "linked_elsewhere":
        return ("This chat is already linked to a different account, so I haven't changed it. "
                "If that isn't right, our team can sort it out.")
    return (f"That code doesn't match any link code. Please check it on your account page "
            f"({shop.account_url}) and try again — codes look like K7PM-Q2ZX.")


class ActionLinkAccount(StoreAction):
    def name(self) -> Text:
        return "action_link_account"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        shop = read_config(get_shop)
        channel, sender_id = sender_of(tracker)
        code = typed_code(tracker)

        if code is None:
            def who(session: Session) -> Optional[str]:
                customer = customer_for_sender(session, channel, sender_id)
                return customer.display_name if customer is not None else None

            name = await with_store(who)
            if name is not None:
                dispatcher.utter_message(text=f"This chat is already linked to your account, {name}.",
                                         buttons=[POINTS_BUTTON, TIER_BUTTON])
            else:
                dispatcher.utter_message(text=how_to_link(shop))
            return []

        if is_question(tracker.latest_message.get("text") or ""):
            # "can I link with K7PM-Q2ZX?": what linking does, and the button that links (the bare code).
            log.info("chat.link_explained")
            shown = f"{code[:4]}-{code[4:]}"  # as the account page shows it
            dispatcher.utter_message(
                text=(f"Linking connects this chat to your {shop.name} account, so I can show your points and "
                      f"rewards here. Want me to link it with {shown}? Tap the button."),
                buttons=[{"title": f"Yes, link {shown}", "payload": shown}])
            return []

        def redeem(session: Session) -> tuple:
            outcome = redeem_link_code(session, code, channel, sender_id, clock.now())
            points = balance(session, outcome.customer.id) if outcome.customer is not None else None
            return outcome, points

        outcome, points = await with_store(redeem, write=True)
        log.info("chat.link", status=outcome.status, channel=channel,
                 customer_id=outcome.customer.id if outcome.customer is not None else None)
        buttons = {
            "linked": [POINTS_BUTTON, TIER_BUTTON],
            "already_linked": [POINTS_BUTTON, TIER_BUTTON],
            "linked_elsewhere": [HANDOFF_BUTTON],
        }.get(outcome.status, [])
        dispatcher.utter_message(text=outcome_text(outcome, shop, points), buttons=buttons)
        return []
