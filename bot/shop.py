"""The store the assistant works for (data/shop.yml)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from bot.config_files import ConfigError, load_cached, read_yaml_mapping


@dataclass(frozen=True)
class Brand:
    """Who the shop is, in its own words (shop.yml `brand:`): shown when a shopper asks about it."""

    story: str
    mission: str
    values: Tuple[str, ...]  # each "Title: one sentence"


@dataclass(frozen=True)
class Shop:
    name: str
    store_url: str
    signup_url: str
    support_hours: str
    support_first_reply: str
    # The store's account page, where a signed-in shopper gets a code that links a chat to the account
    # (the page asks POST /api/link-tokens); defaults to store_url + "/account".
    account_url: str = ""
    # None when shop.yml has no `brand:` section; the brand action then answers with the name and links.
    brand: Optional[Brand] = None


MAX_BRAND_VALUES = 8


def _brand_text(path: Path, section: Dict[str, Any], key: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"brand.{key}", "is required and must be non-empty text")
    return " ".join(value.split())


def load_brand(path: Path, section: Any) -> Optional[Brand]:
    """The `brand:` section of shop.yml; None when the shop has none (absent or empty)."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(path, "brand", "must be a mapping with story, mission and values")
    unknown = sorted(str(key) for key in section if key not in ("story", "mission", "values"))
    if unknown:
        raise ConfigError(path, f"brand.{unknown[0]}", "is not a brand key (story, mission, values)")
    story, mission = _brand_text(path, section, "story"), _brand_text(path, section, "mission")
    values = section.get("values")
    if not isinstance(values, list) or not values:
        raise ConfigError(path, "brand.values", "must be a list of short texts, e.g. \"Made to last: …\"")
    if len(values) > MAX_BRAND_VALUES:
        raise ConfigError(path, "brand.values", f"has {len(values)} items; keep at most {MAX_BRAND_VALUES}")
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(path, f"brand.values[{index}]", "must be non-empty text")
    return Brand(
        story=story,
        mission=mission,
        values=tuple(" ".join(value.split()) for value in values),
    )


def load_shop(path: Path) -> Shop:
    data = read_yaml_mapping(path)
    support = data.get("support") or {}
    if not isinstance(support, dict):
        raise ConfigError(path, "support", "must be a mapping")
    values = {}
    for key, source in (
        ("name", data), ("store_url", data), ("signup_url", data),
        ("hours", support), ("first_reply", support),
    ):
        value = source.get(key)
        if not isinstance(value, str) or not value.strip():
            where = key if source is data else f"support.{key}"
            raise ConfigError(path, where, "is required and must be non-empty text")
        values[key] = value.strip()
    account_url = data.get("account_url", f"{values['store_url'].rstrip('/')}/account")
    if not isinstance(account_url, str) or not account_url.strip():
        raise ConfigError(path, "account_url", "must be non-empty text")
    values["account_url"] = account_url.strip()
    for key in ("store_url", "signup_url", "account_url"):
        if not values[key].startswith(("https://", "http://")):
            raise ConfigError(path, key, f"must be an http(s) URL, not {values[key]!r}")
    return Shop(
        name=values["name"],
        store_url=values["store_url"],
        signup_url=values["signup_url"],
        support_hours=values["hours"],
        support_first_reply=values["first_reply"],
        account_url=values["account_url"],
        brand=load_brand(path, data.get("brand")),
    )


def get_shop(path: Optional[Path] = None) -> Shop:
    """The shop file from settings, reloaded when it changes on disk."""
    from bot.settings import get_settings

    return load_cached(path or get_settings().shop_file, load_shop)
