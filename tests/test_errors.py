"""Operational failures become one line naming the resource and cause, with no password in it."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from digest.errors import DigestError, explain, redact


@pytest.mark.parametrize(
    ("text_in", "text_out"),
    [
        ("postgresql+psycopg://admin:S3cret@db:5432/x", "postgresql+psycopg://admin:***@db:5432/x"),
        ("redis://:S3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("failed for amqp://guest:guest@rabbit// (retry)", "failed for amqp://guest:***@rabbit// (retry)"),
        ("sqlite:////var/lib/digest/digest.sqlite3", "sqlite:////var/lib/digest/digest.sqlite3"),
        ("https://user@host/x", "https://user@host/x"),
    ],
)
def test_redact_masks_the_password_of_every_url(text_in: str, text_out: str) -> None:
    assert redact(text_in) == text_out


def test_a_digest_error_masks_passwords_in_its_own_message() -> None:
    assert str(DigestError("broker redis://:pw@h/0: refused")) == "broker redis://:***@h/0: refused"


def test_a_locked_sqlite_database_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with pytest.raises(OperationalError) as caught, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    failure = explain(caught.value, database_url=f"sqlite:///{path}")
    assert failure is not None and "locked by another process" in str(failure)
    holder.close()
    engine.dispose()


def test_a_full_database_is_explained(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with pytest.raises(OperationalError) as caught, engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x)"))
        connection.execute(text("PRAGMA max_page_count = 3"))  # a disk that is full after three pages
        for _ in range(100):
            connection.execute(text("INSERT INTO t VALUES (randomblob(4000))"))
    assert "database or disk is full" in str(explain(caught.value, database_url="sqlite:///x"))
    engine.dispose()


def test_a_missing_schema_says_to_run_db_upgrade(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with pytest.raises(OperationalError) as caught, engine.connect() as connection:
        connection.execute(text("SELECT * FROM subscribers"))
    assert "run `digest db upgrade`" in str(explain(caught.value, database_url="sqlite:///x"))
    engine.dispose()


def test_disk_full_and_permission_errors_name_the_file() -> None:
    with pytest.raises(OSError) as caught, open("/dev/full", "w") as full:  # noqa: PTH123
        full.write("x")
        full.flush()
    assert "disk full" in str(explain(caught.value))
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/digest/outbox")
    assert str(explain(denied)) == "/srv/digest/outbox: permission denied"


def test_a_bug_is_not_explained_away() -> None:
    assert explain(ValueError("bug")) is None
    assert explain(KeyError("bug")) is None
    assert explain(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))) is None
