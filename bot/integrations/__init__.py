"""Store integrations: webhook deliveries from the store kept in a durable inbox (inbox.py) and applied through
the project's one home of each use case (shopify.py, woocommerce.py)."""
from __future__ import annotations

from typing import Optional

from bot.integrations.inbox import Topic, Topics
from bot.integrations.context import StoreContext
from bot.integrations.shopify import SOURCE as SHOPIFY, topics as shopify_topics
from bot.integrations.woocommerce import SOURCE as WOOCOMMERCE, topics as woocommerce_topics


def store_topics(context: StoreContext) -> Topics:
    """Every store's topics → their handlers."""
    by_source = {SHOPIFY: shopify_topics(context), WOOCOMMERCE: woocommerce_topics(context)}

    def find(source: str, topic: str) -> Optional[Topic]:
        handlers = by_source.get(source)
        return handlers(topic) if handlers is not None else None

    return find
