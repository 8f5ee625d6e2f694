"""The schema comes only from Alembic migrations, and they produce exactly what the models describe; the
test stores other tests get (copies of a template, tests/stores.py) are exactly what the migrations make."""
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bot.db import Database
from bot.models import Base
from bot.models.feedback import is_search_index
from tests.stores import PostgresTemplates, migration_head


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty store migrated here, by `alembic upgrade head` (not a copy of the test template)."""
    templates: PostgresTemplates = request.getfixturevalue("postgres_templates") if request.param == "postgresql" else None
    database = templates.empty_database() if templates else Database(f"sqlite:///{tmp_path / 'migrated.db'}")
    database.create_schema()
    yield database
    database.dispose()
    if templates:
        templates.drop_later(database)


def _not_the_search_index(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (reflected and compare_to is None and is_search_index(name or ""))


def _differences(database: Database) -> list:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _not_the_search_index})
        return compare_metadata(context, Base.metadata)


def test_migrations_on_an_empty_database_match_the_models(any_db: Database) -> None:
    # any_db (above) was created through Database.create_schema(), i.e. `alembic upgrade head`.
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


def _store(database: Database) -> Dict[str, Any]:
    """Everything in a store that a test could see: the schema objects' definitions and every table's rows."""
    with database.engine.connect() as connection:
        if database.engine.dialect.name == "sqlite":
            # The lines of each CREATE statement, sorted: Alembic's batch mode (a table rebuilt to alter it) writes
            # a table's constraints in an order that differs from one migration run to the next.
            catalog = {"sqlite_master": [
                (kind, name, table, sorted(line.strip(" ,\t") for line in (sql or "").splitlines()))
                for kind, name, table, sql in connection.execute(text(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"))]}
            catalog["columns"] = [connection.exec_driver_sql(f'PRAGMA table_info("{table}")').all()
                                  for table in sorted(inspect(connection).get_table_names())]
            for pragma in ("journal_mode", "user_version", "page_size", "auto_vacuum", "encoding"):
                catalog[pragma] = connection.exec_driver_sql(f"PRAGMA {pragma}").all()
        else:
            catalog = {name: connection.execute(text(query)).all() for name, query in {
                "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable, ordinal_position "
                           "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
                "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
                "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                               "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public' ORDER BY 1, 2",
                "sequences": "SELECT sequencename, last_value, start_value, increment_by FROM pg_sequences "
                             "WHERE schemaname = 'public' ORDER BY 1",
                "functions": "SELECT proname, prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                             "WHERE n.nspname = 'public' ORDER BY 1, 2",
                "triggers": "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
                "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
            }.items()}
        rows: Dict[str, List[Tuple[Any, ...]]] = {}
        for table in sorted(inspect(connection).get_table_names()):
            rows[table] = sorted((tuple(row) for row in connection.execute(text(f'SELECT * FROM "{table}"'))), key=repr)
    return {"catalog": catalog, "rows": rows}


def test_the_test_stores_are_exactly_what_the_migrations_make(any_db: Database, request: pytest.FixtureRequest) -> None:
    # The other tests' sqlite_db / postgres_db (tests/conftest.py) against a store migrated here.
    copy: Database = request.getfixturevalue("postgres_db" if any_db.engine.dialect.name == "postgresql" else "sqlite_db")
    assert _store(copy) == _store(any_db)
    assert _store(copy)["rows"]["alembic_version"] == [(migration_head(),)]
