"""Every page of the merchant console, by module (sign-in, sign-out and static files: bot/console/web.py)."""
from __future__ import annotations

from aiohttp import web

from bot.console import customer_pages, feedback_pages, overview_pages
from bot.console.web import PREFIX


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(f"{PREFIX}/feedback")


def add_console_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX, home)
    app.router.add_get(f"{PREFIX}/", home, name="console_home")
    feedback_pages.add_routes(app)
    overview_pages.add_routes(app)
    customer_pages.add_routes(app)
