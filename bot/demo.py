"""Seeds the demo shop: catalog (data/catalog.yml), customers, their chat identities and points history."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

from sqlalchemy.orm import Session

from bot import clock
from bot.catalog import ADDED, UPDATED, load_catalog, upsert_product
from bot.config_files import ConfigError, read_yaml_mapping
from bot.identity import CustomerFacts, customer_by_email, link_identity
from bot.loyalty.ledger import post_entry
from bot.loyalty.orders import LineInput
from bot.loyalty.program import Program
from bot.loyalty.tiers import mark_announced, recompute_tier, unannounced_changes
from bot.membership import Joining, join
from bot.order_events import PaidOrder, record_paid
from bot.settings import PROJECT_ROOT

DEMO_DIR = PROJECT_ROOT / "data" / "demo"
CATALOG_FILE = PROJECT_ROOT / "data" / "catalog.yml"


@dataclass(frozen=True)
class SeedReport:
    products_added: int
    customers_added: int
    customers_existing: int
    products_updated: int = 0


def seed_demo(session: Session, program: Program, store_url: str, demo_dir: Path = DEMO_DIR,
              catalog_file: Path = CATALOG_FILE) -> SeedReport:
    """Load the catalog (added or brought up to date, as `python -m bot catalog import` would) and add the demo
    customers; customers that already exist are left as they are."""
    products = load_catalog(catalog_file, program.currency)
    customers = _load_list(demo_dir / "customers.yml", "customers")
    now = clock.now()
    outcomes = [upsert_product(session, product, store_url, now) for product in products]
    added = 0
    for item in customers:
        if _add_customer(session, program, item):
            added += 1
    return SeedReport(outcomes.count(ADDED), added, len(customers) - added, outcomes.count(UPDATED))


def _load_list(path: Path, key: str) -> List[Dict[str, Any]]:
    items = read_yaml_mapping(path).get(key)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ConfigError(path, key, "must be a list of mappings")
    return items


def _add_customer(session: Session, program: Program, item: Dict[str, Any]) -> bool:
    if customer_by_email(session, item["email"]) is not None:
        return False
    now = clock.now()
    facts = CustomerFacts(item["email"], str(item["external_id"]) if item.get("external_id") else None,
                          item.get("first_name"), item.get("last_name"))
    customer = join(session, program, Joining(facts), at=now - timedelta(days=item.get("signup_days_ago", 0))).customer
    for channel, sender in (item.get("senders") or {}).items():
        link_identity(session, customer.id, channel, str(sender))
    events = [("order", order, order["days_ago"]) for order in item.get("orders", [])]
    events += [("activity", entry, entry["days_ago"]) for entry in item.get("activity", [])]
    # Oldest first, so each order earns at the tier the customer had when it was placed.
    for kind, event, days_ago in sorted(events, key=lambda e: -e[2]):
        when = now - timedelta(days=days_ago)
        if kind == "order":
            lines = [LineInput(line["title"], int(line.get("quantity", 1)), Decimal(str(line["unit_price"])), line.get("sku"))
                     for line in event.get("lines", [])]
            record_paid(session, program, PaidOrder(event["id"], customer.id, Decimal(str(event["total"])), when,
                                                    lines=lines), update_tier=False, now=when)
        else:
            post_entry(
                session, customer.id, int(event["points"]), kind=event["kind"], reason=event["reason"],
                source=event["source"], idempotency_key=event["key"], at=when,
            )
    # The tier their history earned, recorded as old news: no entry reward, nothing to announce.
    recompute_tier(session, program, customer.id, now, "demo history")
    mark_announced(session, unannounced_changes(session, customer.id), now)
    return True
