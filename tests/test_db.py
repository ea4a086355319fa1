from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from digest.db import Database
from digest.models import Base


def _diff(database: Database) -> list:
    with database.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_migrations_upgrade_an_empty_sqlite_database_to_exactly_the_models(db: Database) -> None:
    assert _diff(db) == []
    assert set(inspect(db.engine).get_table_names()) >= set(Base.metadata.tables)


def test_migrations_upgrade_an_empty_postgres_database_to_exactly_the_models(pg_db: Database) -> None:
    assert _diff(pg_db) == []


def test_upgrade_twice_changes_nothing(db: Database) -> None:
    from digest.db import upgrade

    upgrade(db.engine)
    assert _diff(db) == []
