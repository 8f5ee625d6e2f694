"""The web app (aiohttp): the store API, referral redirects, the demo store page, the scheduled loyalty jobs,
and the merchant console (bot/console) mounted on it."""
from bot.web.app import create_app, serve

__all__ = ["create_app", "serve"]
