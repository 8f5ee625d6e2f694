"""Products as cards (Rasa `elements`, read by every channel through channels/render.product_cards)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, Iterable, Optional

from bot.loyalty.program import Program


def product_card(program: Program, title: str, price: Decimal, details: Iterable[str], url: str,
                 image_url: Optional[str]) -> Dict[str, Any]:
    """Title, "price · detail · detail" (the reason it is shown), its image and a link to its page."""
    subtitle = " · ".join([program.money(price), *[detail for detail in details if detail]])
    card: Dict[str, Any] = {
        "title": title,
        "subtitle": subtitle,
        "buttons": [{"title": "View product", "url": url, "type": "web_url"}],
    }
    if image_url:
        card["image_url"] = image_url
    return card
