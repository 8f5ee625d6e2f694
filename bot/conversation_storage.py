"""Where Rasa keeps conversations: the connection settings of its tracker stores (from REDIS_URL and
TRACKER_DATABASE_URL) and the fence table of the append-only SQL store. Shared by the stores Rasa builds
(bot/conversation_stores.py) and by the erasure that deletes conversations (bot/privacy.py).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy import BigInteger, Column, MetaData, String, Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# The highest lock ticket that saved each conversation (bot/locks.py): a save with an older ticket comes
# from a replica whose lease ran out while another one went on, and is refused.
_FENCE_METADATA = MetaData()
CONVERSATION_FENCES = Table(
    "rapport_conversation_fences", _FENCE_METADATA,
    Column("sender_id", String(255), primary_key=True),
    Column("fence", BigInteger, nullable=False),
)


def redis_kwargs(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError("REDIS_URL must start with redis:// or rediss://")
    return {
        "host": parsed.hostname or "localhost",
        "port": parsed.port or 6379,
        "db": int(parsed.path.lstrip("/") or 0),
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "use_ssl": parsed.scheme == "rediss",
    }


def sql_kwargs(url: str) -> dict:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("TRACKER_DATABASE_URL must be a sqlite:/// or postgresql:// URL") from None
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        return {"dialect": "sqlite", "db": parsed.database}
    if dialect == "postgresql":
        # Rasa builds its own URL from these parts; query options (sslmode, …) go in query.
        return {
            "dialect": "postgresql",
            "host": parsed.host or "localhost",
            "port": parsed.port or 5432,
            "db": parsed.database or "postgres",
            "username": parsed.username,
            "password": parsed.password,
            "query": dict(parsed.query),
        }
    raise ValueError("TRACKER_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
