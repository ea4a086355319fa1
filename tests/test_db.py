from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from digest.db import Database, WriterBusy
from digest.models import Base, Subscriber


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


def test_sqlite_runs_in_wal_mode_with_normal_synchronous(db: Database) -> None:
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_write_session_commits_and_rolls_back(db: Database, settings) -> None:
    from digest.subscribers import create_subscriber

    with db.write_session() as session:
        create_subscriber(session, settings, email="kept@example.org", keywords=["x"])
    with pytest.raises(RuntimeError), db.write_session() as session:
        create_subscriber(session, settings, email="dropped@example.org", keywords=["x"])
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalars(select(Subscriber.email)).all() == ["kept@example.org"]


def test_write_session_without_waiting_refuses_a_held_sqlite_lock_at_once(db: Database, settings) -> None:
    path = str(settings.data_dir / "digest.sqlite3")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    started = time.monotonic()
    with pytest.raises(WriterBusy), db.write_session(wait=False):
        pass
    assert time.monotonic() - started < 1  # not the 30 s busy_timeout
    other.execute("COMMIT")
    other.close()
    with db.write_session(wait=False) as session:  # free again; busy_timeout restored for later use
        assert session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_write_session_without_waiting_refuses_while_this_process_writes(db: Database) -> None:
    with db.write_session():
        with pytest.raises(WriterBusy), db.write_session(wait=False):
            pass
        outcome: list[str] = []
        waiter = threading.Thread(target=lambda: _write_and_note(db, outcome))
        waiter.start()
        time.sleep(0.2)
        assert outcome == []  # a waiting writer queues behind the first one
    waiter.join(10)
    assert outcome == ["written"]


def _write_and_note(db: Database, outcome: list[str]) -> None:
    with db.write_session():
        outcome.append("written")


def test_write_session_on_postgres_is_a_plain_session(pg_db: Database) -> None:
    assert not pg_db.embedded
    with pg_db.write_session(wait=False) as session:
        assert session.connection().exec_driver_sql("SELECT 1").scalar() == 1
