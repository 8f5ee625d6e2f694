"""about_brand: the shop's story, mission and values, from the `brand:` section of data/shop.yml.

Kept in the shop file rather than in domain responses so that the merchant edits one plain YAML file
(no retraining needed: the action reads it on every turn, reloaded when it changes), and so that a
broken section is reported with its file and key instead of silently showing stale text.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import StoreAction, read_config
from bot.shop import Shop, get_shop

QUIZ_BUTTON = {"title": "Help me choose", "payload": "/start_quiz"}
POINTS_BUTTON = {"title": "My points", "payload": "/check_points"}


def brand_text(shop: Shop) -> str:
    """One readable message: the story, the mission, then the values as bullet lines."""
    brand = shop.brand
    if brand is None:
        return (f"We're {shop.name}. You'll find more about us at {shop.store_url}. "
                "I can help you choose something for your home or check your rewards points.")
    values = "\n".join(f"• {value}" for value in brand.values)
    return f"{brand.story}\n\nOur mission: {brand.mission}\n\nWhat we stand for:\n{values}"


class ActionAboutBrand(StoreAction):
    """Answers "tell me about your brand"; a broken shop file gets the usual apology (StoreAction)."""

    def name(self) -> Text:
        return "action_about_brand"

    async def respond(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        shop = read_config(get_shop)
        dispatcher.utter_message(text=brand_text(shop), buttons=[QUIZ_BUTTON, POINTS_BUTTON])
        return []
