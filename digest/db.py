"""Engine, sessions and schema upgrades (Alembic, from ``migrations/``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.errors import DigestError, describe_os_error, redact

# migrations/ ships inside the package (pyproject.toml maps it to digest.migrations); an installed package
# is a directory, which Alembic's script_location needs.
MIGRATIONS_DIR = Path(str(resources.files("digest.migrations")))
# Connections kept open: the web app runs sync routes on up to 40 threads (AnyIO's default limiter); a
# smaller pool closes and reopens connections under load (a PostgreSQL connection costs milliseconds, a
# SQLite one re-reads the schema), a larger one only holds idle sessions on the server.
POOL_SIZE = 10
POOL_OVERFLOW = 50
BUSY_TIMEOUT_MS = 30_000
LOCK_POLL_SECONDS = 0.002


def shown_url(url: str) -> str:
    """A database URL fit for messages: the password masked."""
    return redact(url)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(
            url, connect_args={"timeout": 30}, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DigestError(
                f"database {url}: cannot create {describe_os_error(exc, str(folder))}"
            ) from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Foreign keys are off by default in SQLite; WAL lets the web app read while the scheduler writes.
    # synchronous=NORMAL in WAL mode: a commit appends to the WAL without an fsync; the WAL is synced at
    # checkpoints. The database cannot be corrupted by a crash or power cut, and a process crash loses
    # nothing; a power cut or OS crash can roll back the last transactions before the checkpoint
    # (https://www.sqlite.org/pragma.html#pragma_synchronous). FULL (SQLite's default) cost an fsync,
    # about 3 ms here, per vote.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str | None:
    """The schema revision this version of the code expects."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class WriterBusy(Exception):
    """``write_session(wait=False)``: another writer holds SQLite's write lock just now."""


def _begin_immediate(session: Session, wait: bool) -> None:
    """Take SQLite's write lock, polling every few milliseconds instead of through SQLite's busy handler.

    The busy handler sleeps up to 100 ms between tries, so a writer that commits in short chunks (a big
    ingest) and starts again at once could keep a waiting vote out for seconds; a few-millisecond poll
    takes the lock in the gap between two chunks."""
    connection = session.connection()
    driver = connection.connection.dbapi_connection
    assert driver is not None
    driver.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    try:
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                    raise
                if not wait:
                    raise WriterBusy from exc
                if time.monotonic() > deadline:
                    raise
            time.sleep(LOCK_POLL_SECONDS)
    finally:
        driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


class Database:
    """The engine and session factory for one configured database."""

    def __init__(self, settings: Settings, *, migrate: bool | None = None) -> None:
        self.settings = settings
        self.engine = make_engine(settings.db_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        # The embedded default migrates itself; other databases are upgraded by `digest db upgrade`.
        if migrate if migrate is not None else settings.is_embedded:
            upgrade(self.engine)

    @property
    def url(self) -> str:
        """The database URL, fit to show (password masked)."""
        return shown_url(self.engine.url.render_as_string(hide_password=False))

    def check(self) -> None:
        """Connect, and make sure the schema is the one this code expects (else: `digest db upgrade`)."""
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        expected = head_revision()
        if current != expected:
            raise DigestError(
                f"database {self.url}: its schema is at revision {current or '(none)'}, this version of "
                f"digest needs {expected}: run `digest db upgrade`"
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    @property
    def embedded(self) -> bool:
        """SQLite: an in-process library, where a read in WAL mode never waits for a lock."""
        return self._writer is not None

    @contextmanager
    def write_session(self, *, wait: bool = True) -> Iterator[Session]:
        """A session for a read-modify-write that many requests run at once (a vote: feedback row + model).

        SQLite has one writer at a time. Left to itself, each waiting connection polls the lock with
        sleeps of up to 100 ms (its busy handler), and the reads before the first write take no lock at
        all. Here the writers of this process queue on a lock instead, and the transaction takes
        SQLite's write lock first (BEGIN IMMEDIATE, polled every few ms: ``_begin_immediate``), so what it
        reads is what it updates; writers of other processes (the CLI) are waited for by that poll.
        ``wait=False`` (SQLite only) raises :class:`WriterBusy` at once rather than wait for either lock:
        for a caller on an event loop, which then retries from a worker thread.
        PostgreSQL needs none of this: the session is a plain one, and the caller locks the rows it updates.
        """
        if self._writer is None:
            with self.sessions.begin() as session:
                yield session
            return
        if not self._writer.acquire(blocking=wait):
            raise WriterBusy
        try:
            with self.sessions.begin() as session:
                _begin_immediate(session, wait)
                yield session
        finally:
            self._writer.release()

    def dispose(self) -> None:
        self.engine.dispose()
