"""The demo store page (GET /demo): a small "Oak & Ember" shop page with the website widget on it.

It plays the store's own back-end: for a signed-in demo shopper (`?as=alice`) it renders the widget tag
with the store's customer id and the customer token (HMAC-SHA256 of that id with WIDGET_SIGNING_SECRET),
exactly what a real store's page template would do. The demo customers are the seeded ones
(data/demo/customers.yml, seeded with their store ids 7001001-7001004). The page only reads: a demo
customer without a store id (a database seeded before those ids) is unavailable, and the page says to seed
a fresh database (`python -m bot seed --demo`). With WIDGET_SIGNING_SECRET unset the page still renders
and says how to turn the widget on.

It hands out valid customer tokens to whoever asks, so it is a development page only: with
RAPPORT_ENV=production it does not exist (404).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session
from yarl import URL

from bot.app_context import DATABASE, SETTINGS, in_executor
from bot.config_files import ConfigError, read_yaml_mapping
from bot.db import transaction
from bot.demo import DEMO_DIR
from bot.identity import customer_by_email
from bot.identity.customer_tokens import customer_token
from bot.log import get_logger
from bot.models import Product
from bot.settings import Settings
from bot.shop import Shop, get_shop

log = get_logger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
WIDGET_SCRIPT_PATH = "/webhooks/widget/widget.js"
GUEST = "guest"
MAX_PRODUCTS = 12
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class DemoShopper:
    key: str  # what ?as= takes: the first name, lower case
    name: str
    email: str


@dataclass(frozen=True)
class ProductTile:
    title: str
    collection: str
    price: str
    in_stock: bool


@dataclass(frozen=True)
class SignedIn:
    """The shopper the page is rendered for; `store_id` None when they are not in the database."""

    shopper: DemoShopper
    store_id: Optional[str]


def demo_shoppers(demo_dir: Path = DEMO_DIR) -> List[DemoShopper]:
    """The seeded demo customers, in file order."""
    path = demo_dir / "customers.yml"
    items = read_yaml_mapping(path).get("customers")
    if not isinstance(items, list):
        raise ConfigError(path, "customers", "must be a list of mappings")
    shoppers = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("first_name"), str) and isinstance(item.get("email"), str):
            shoppers.append(DemoShopper(item["first_name"].strip().lower(), item["first_name"].strip(), item["email"]))
    return shoppers


def price_label(price: Decimal, currency: str) -> str:
    symbol = _CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{price:,.2f}" if symbol else f"{price:,.2f} {currency}"


def widget_script_url(host_header: str, settings: Settings) -> str:
    """The widget on the Rasa server, on the host the browser reached this page by (127.0.0.1 or
    localhost alike); `host_header` is the request's Host ("127.0.0.1:8000")."""
    try:
        host = URL(f"http://{host_header}").host or "localhost"
        return str(URL.build(scheme="http", host=host, port=settings.rasa_port, path=WIDGET_SCRIPT_PATH))
    except ValueError:  # not a host name: the usual local one
        return str(URL.build(scheme="http", host="localhost", port=settings.rasa_port, path=WIDGET_SCRIPT_PATH))


def store_ids(session: Session, shoppers: List[DemoShopper]) -> Dict[str, str]:
    """The store id of each demo shopper who has one, by key (read only: nobody missing is registered)."""
    found = {shopper.key: customer_by_email(session, shopper.email) for shopper in shoppers}
    return {key: customer.external_id for key, customer in found.items()
            if customer is not None and customer.external_id}


def product_tiles(session: Session) -> List[ProductTile]:
    products = session.execute(select(Product).order_by(Product.id).limit(MAX_PRODUCTS)).scalars()
    return [ProductTile(product.title, product.collection or "", price_label(product.price, product.currency),
                        bool(product.in_stock)) for product in products]


def _load(database_app: web.Application, shoppers: List[DemoShopper]) -> Tuple[List[ProductTile], Dict[str, str]]:
    return transaction(lambda session: (product_tiles(session), store_ids(session, shoppers)),
                       database=database_app[DATABASE])


async def demo_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if settings.environment == "production":  # see the module docstring; not even routed there
        raise web.HTTPNotFound()
    shoppers = demo_shoppers()
    who = request.query.get("as", GUEST).strip().lower()
    shopper = next((candidate for candidate in shoppers if candidate.key == who), None)
    if who != GUEST and shopper is None:
        choices = ", ".join([GUEST] + [candidate.key for candidate in shoppers])
        return web.Response(status=400, text=f"Unknown demo shopper {who[:40]!r}: choose one of {choices}.")

    products: List[ProductTile] = []
    ids: Dict[str, str] = {}
    database_error = False
    try:
        products, ids = await in_executor(request.app, lambda: _load(request.app, shoppers))
    except Exception:  # the page still shows the widget (as a guest) and says what is wrong
        log.exception("demo.page.database_failed")
        database_error = True

    secret = settings.widget_signing_secret
    store_id = ids.get(shopper.key) if shopper is not None else None
    signed_in = SignedIn(shopper, store_id) if shopper is not None else None
    shop: Shop = get_shop(settings.shop_file)
    html = _templates.get_template("demo_store.html").render(
        shop=shop,
        shoppers=shoppers,
        # Shoppers without a store id (not seeded, or seeded before the store ids): shown unavailable.
        unavailable=[] if database_error else [candidate.key for candidate in shoppers if candidate.key not in ids],
        current=who,
        signed_in=signed_in,
        products=products,
        database_error=database_error,
        widget_on=bool(secret),
        widget_script=widget_script_url(request.host, settings),
        customer_id=store_id if secret and store_id else None,
        customer_token=customer_token(secret, store_id) if secret and store_id else None,
    )
    return web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        # The page carries a customer token: never cached, never sent on as a referrer.
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"},
    )
