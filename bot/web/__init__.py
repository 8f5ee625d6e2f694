"""The web app (aiohttp): store API and scheduled loyalty jobs; later the merchant console and redirects."""
from bot.web.app import create_app, serve

__all__ = ["create_app", "serve"]
