"""The Instagram channel's configuration from the environment (app secret, verify token, access token,
Graph API base) and the line `make run` prints about it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from bot.settings import Settings, get_settings

DEFAULT_API_BASE = "https://graph.instagram.com/v21.0"
SECRET_VARIABLES = ("INSTAGRAM_APP_SECRET", "INSTAGRAM_VERIFY_TOKEN", "INSTAGRAM_ACCESS_TOKEN")


@dataclass(frozen=True)
class InstagramConfig:
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    access_token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE


def config_from(settings: Settings) -> Optional[InstagramConfig]:
    """The channel's configuration, or None while any of its secrets is unset (channel off)."""
    secret, verify, token = settings.instagram_app_secret, settings.instagram_verify_token, settings.instagram_access_token
    if not (secret and verify and token):
        return None
    return InstagramConfig(secret, verify, token, (settings.instagram_api_base or DEFAULT_API_BASE).rstrip("/"))


def config_from_settings() -> Optional[InstagramConfig]:
    return config_from(get_settings())


def instagram_status(settings: Settings) -> str:
    """One line for `make run`: whether the channel is on, and if not which variables to set."""
    values = (settings.instagram_app_secret, settings.instagram_verify_token, settings.instagram_access_token)
    missing = [name for name, value in zip(SECRET_VARIABLES, values) if not value]
    if not missing:
        return "instagram: on"
    names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
    return f"instagram: off — set {names}"
