"""Small text helpers every layer shares (domain services, the web app, the console, channels): checks and
clean-ups of what people and stores type. Nothing here imports the rest of the project."""
from __future__ import annotations

import unicodedata


def has_control_characters(value: str) -> bool:
    """True when `value` holds a control character (NUL, newline, escape…): no e-mail, customer id or chat
    sender id has one, and PostgreSQL refuses NUL in a query parameter outright."""
    return any(unicodedata.category(char) == "Cc" for char in value)
