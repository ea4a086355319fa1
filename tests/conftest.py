"""Shared fixtures: a migrated database per test, PostgreSQL when its server is up, ../shared when present."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from common import TEST_SECRET
from sqlalchemy import create_engine, text

from digest.config import Settings, load_settings
from digest.db import Database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DIGEST_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
PG_ADMIN_URL = os.environ.get("DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own DIGEST_* variables or .env file."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") and name not in {"DIGEST_SHARED_DIR", "DIGEST_TEST_POSTGRES_URL"}:
            monkeypatch.delenv(name)
    # The Hugging Face pull is on by default; no test reaches the real one (its tests serve it locally).
    monkeypatch.setenv("DIGEST_HF_DAILY_URL", "")
    monkeypatch.setenv("DIGEST_EVAL_CACHE", str(tmp_path / "eval-cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def without_semantic(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as without the `semantic` extra: no encoder, ranking on TF-IDF alone."""
    from digest.rank import encoder

    monkeypatch.setattr(encoder, "installed", lambda: False)
    monkeypatch.setitem(encoder._LOADED, "default", None)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, secret_key=TEST_SECRET, base_url="http://digest.test")


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings, migrate=True)
    yield database
    database.dispose()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> str:
    if not _port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (start it to run these tests)")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"digest_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_db(postgres_url: str, data_dir: Path) -> Iterator[Database]:
    settings = load_settings(data_dir=data_dir, database_url=postgres_url, secret_key=TEST_SECRET)
    database = Database(settings, migrate=True)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def redis_server() -> str:
    if not _port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379 (start it to run these tests)")
    return "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is not beside the checkout ({SHARED}); these tests use its real data")
    return SHARED
