"""What applying a store's events needs besides the event itself."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from bot.db import Database
from bot.loyalty.program import Program
from bot.settings import Settings


@dataclass(frozen=True)
class StoreContext:
    """The program (read when needed: the file may change), the settings (fingerprint key, data folder,
    tracker store), the database (the privacy topics run their own transactions) and the clock."""

    database: Database
    program: Callable[[], Program]
    settings: Settings
    now: Callable[[], datetime]
