"""The one clock of the project, so tests can move time (tiers, expiry, review timing)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Optional

_override: Optional[Callable[[], datetime]] = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return _override() if _override is not None else datetime.now(timezone.utc)


def set_clock(func: Optional[Callable[[], datetime]]) -> None:
    """Replace the clock (None restores the real one)."""
    global _override
    _override = func
