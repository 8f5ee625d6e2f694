"""IANA time zone names ("Europe/Berlin") as browsers, program files and the database give them: one check of
whether a name is a zone this machine knows, so every reader treats a bad name the same way."""

from __future__ import annotations

from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_TIME_ZONE_CHARS = 64  # customers.time_zone's width; the longest IANA name is 32


def known_time_zone(name: Any) -> Optional[ZoneInfo]:
    """The zone `name` names, or None for anything else (empty, not text, too long, a path, unknown)."""
    if not isinstance(name, str) or not name or len(name) > MAX_TIME_ZONE_CHARS:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like or malformed key
        return None
