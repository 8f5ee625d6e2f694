"""Alembic environment: migrations run on the connection bot.db.Database hands over."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from bot.models import Base
from bot.models.feedback import is_search_index

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"), future=True)
        with engine.begin() as own_connection:
            _run(own_connection)
        return
    _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # Autogenerate must not drop the full-text index, which no model describes (migration 0010).
        include_object=lambda obj, name, type_, reflected, compare_to: not (
            reflected and compare_to is None and is_search_index(name or "")
        ),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
