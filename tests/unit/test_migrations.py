"""The schema comes only from Alembic migrations, and they produce exactly what the models describe."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.db import Database
from bot.models import Base
from bot.models.feedback import is_search_index


def _not_the_search_index(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (reflected and compare_to is None and is_search_index(name or ""))


def _differences(database: Database) -> list:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _not_the_search_index})
        return compare_metadata(context, Base.metadata)


def test_migrations_on_an_empty_database_match_the_models(any_db: Database) -> None:
    # any_db was created through Database.create_schema(), i.e. `alembic upgrade head`.
    assert _differences(any_db) == []
    tables = set(inspect(any_db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables


def test_migrations_go_down_and_up_again(any_db: Database) -> None:
    from alembic import command
    from alembic.config import Config

    from bot.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with any_db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(any_db.engine).get_table_names()) <= {"alembic_version"}, "downgrade leaves nothing behind"
    any_db.create_schema()
    assert _differences(any_db) == []
