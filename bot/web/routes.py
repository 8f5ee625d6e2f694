"""Every route of the web app, in one place."""
from __future__ import annotations

from aiohttp import web

from bot.app_context import SETTINGS
from bot.console.app import setup_console
from bot.console.page import PREFIX as CONSOLE
from bot.web import api, demo_store, redirects, webhooks

# Routes that read their bodies themselves with a larger limit than MAX_BODY_BYTES (bot/web/app.py refuses a
# declared length over the route's limit before the body is read).
BODY_LIMITS = {"/webhooks/shopify": webhooks.MAX_WEBHOOK_BYTES,
               "/webhooks/woocommerce": webhooks.MAX_WEBHOOK_BYTES}


async def root(request: web.Request) -> web.StreamResponse:
    """A person opening the address the server printed lands on the console (its home page, or sign-in)."""
    raise web.HTTPFound(f"{CONSOLE}/")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/health", api.health)
    app.router.add_get("/ready", api.ready)
    if app[SETTINGS].environment != "production":  # it hands out customer tokens: development only
        app.router.add_get("/demo", demo_store.demo_page)
    app.router.add_post("/api/orders", api.post_order)
    app.router.add_post("/api/points", api.post_points)
    app.router.add_post("/api/customers", api.post_customer)
    app.router.add_post("/api/link-tokens", api.post_link_token)
    app.router.add_get("/api/reward-codes/{code}", api.get_reward_code)
    app.router.add_post("/api/reward-codes/{code}", api.post_reward_code)
    # Store webhooks: signed by the store (each shop's secret), not by our bearer token.
    app.router.add_post("/webhooks/shopify", webhooks.shopify_webhook)
    app.router.add_post("/webhooks/woocommerce", webhooks.woocommerce_webhook)
    # Public: an advocate's shared link (outside /api/, so no bearer token).
    app.router.add_get("/r/{code}", redirects.referral_redirect)
    # The merchant console: HTML pages under /console/ behind sign-in (bot/console/).
    setup_console(app)
