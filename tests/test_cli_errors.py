"""Operational failures end as one line naming the setting or resource, exit status 1, no traceback and no
secret: every case of issue 15's "Why", run as a user runs them (a subprocess in an empty folder)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "S3cretPass"
SECRET = "abcdefghijklmnopqrstuvwxyz-never-shown"


def digest(workdir: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    environment.update(PYTHONPATH=str(PROJECT_ROOT), DIGEST_HF_DAILY_URL="", **env)
    command = [sys.executable, "-c", "from digest.cli import main; main()", *args]
    return subprocess.run(
        command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout
    )


def one_line_failure(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The error line: exit 1, no traceback, nothing secret, and every expected fragment in it."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert PASSWORD not in result.stderr + result.stdout and SECRET not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in expected:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_unreachable_postgresql_is_one_line_with_the_password_masked(tmp_path, free_port) -> None:
    url = f"postgresql+psycopg://admin:{PASSWORD}@127.0.0.1:{free_port}/digest"
    result = digest(tmp_path, "stats", DIGEST_DATABASE_URL=url, DIGEST_SECRET_KEY=SECRET)
    one_line_failure(
        result, f"database postgresql+psycopg://admin:***@127.0.0.1:{free_port}/digest", "refused"
    )


@pytest.mark.postgres
def test_postgresql_without_the_schema_says_to_run_db_upgrade(tmp_path, postgres_url) -> None:
    result = digest(
        tmp_path, "subscribers", "list", DIGEST_DATABASE_URL=postgres_url, DIGEST_SECRET_KEY=SECRET
    )
    one_line_failure(result, "digest db upgrade")
    assert (
        digest(
            tmp_path, "db", "upgrade", DIGEST_DATABASE_URL=postgres_url, DIGEST_SECRET_KEY=SECRET
        ).returncode
        == 0
    )
    listed = digest(
        tmp_path, "subscribers", "list", DIGEST_DATABASE_URL=postgres_url, DIGEST_SECRET_KEY=SECRET
    )
    assert listed.returncode == 0 and "0 subscribers" in listed.stdout


def test_a_database_file_that_cannot_be_created_is_one_line(tmp_path) -> None:
    result = digest(tmp_path, "stats", DIGEST_DATABASE_URL="sqlite:////proc/x.db")
    one_line_failure(result, "database sqlite:////proc/x.db", "cannot open the database file")


def test_a_file_that_is_not_a_database_is_one_line(tmp_path) -> None:
    (tmp_path / "notes.sqlite3").write_text("shopping list\n" * 200)
    result = digest(tmp_path, "stats", DIGEST_DATABASE_URL=f"sqlite:///{tmp_path / 'notes.sqlite3'}")
    one_line_failure(result, "not a SQLite database")


def test_init_with_a_data_dir_that_cannot_be_created_names_the_setting(tmp_path) -> None:
    one_line_failure(
        digest(tmp_path, "init", DIGEST_DATA_DIR="/proc/digest"), "DIGEST_DATA_DIR", "/proc/digest"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permission errors cannot be provoked")
def test_an_unwritable_data_dir_names_the_setting(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_failure(digest(tmp_path, "init", DIGEST_DATA_DIR=str(locked / "var")), "DIGEST_DATA_DIR")


def test_a_data_dir_that_is_a_file_names_the_setting(tmp_path) -> None:
    (tmp_path / "var").write_text("not a folder")
    one_line_failure(digest(tmp_path, "init"), "DIGEST_DATA_DIR")


def test_config_errors_never_echo_a_password_or_a_secret(tmp_path) -> None:
    bad_url = digest(tmp_path, "stats", DIGEST_DATABASE_URL=f"mysql://admin:{PASSWORD}@db/x")
    one_line_failure(bad_url, "DIGEST_DATABASE_URL", "mysql://admin:***@db/x")
    short = digest(tmp_path, "stats", DIGEST_SECRET_KEY="short")
    one_line_failure(short, "DIGEST_SECRET_KEY", "a value of 5 characters")
    assert "'short'" not in short.stderr
    broker = digest(tmp_path, "stats", DIGEST_CELERY_BROKER_URL=f"http://user:{PASSWORD}@broker/0")
    one_line_failure(broker, "DIGEST_CELERY_BROKER_URL", "http://user:***@broker/0")


def test_serve_on_a_taken_port_fails_before_any_banner(tmp_path, taken_port) -> None:
    result = digest(tmp_path, "serve", "--port", str(taken_port))
    one_line_failure(result, f"127.0.0.1:{taken_port}", "--port", "address already in use")
    assert "digest is running" not in result.stdout


def test_serve_with_the_database_down_fails_before_any_banner(tmp_path, free_port) -> None:
    url = f"postgresql+psycopg://admin:{PASSWORD}@127.0.0.1:{free_port}/digest"
    result = digest(tmp_path, "serve", "--port", "0", DIGEST_DATABASE_URL=url, DIGEST_SECRET_KEY=SECRET)
    one_line_failure(result, "database postgresql+psycopg://admin:***@")
    assert "digest is running" not in result.stdout


def test_an_unreachable_broker_is_one_line_for_serve_and_worker(tmp_path, free_port) -> None:
    broker = f"redis://:{PASSWORD}@127.0.0.1:{free_port}/0"
    worker = digest(tmp_path, "worker", DIGEST_CELERY_BROKER_URL=broker)
    one_line_failure(worker, f"broker redis://:***@127.0.0.1:{free_port}/0", "DIGEST_CELERY_BROKER_URL")
    serve = digest(tmp_path, "serve", "--port", "0", DIGEST_CELERY_BROKER_URL=broker)
    one_line_failure(serve, "DIGEST_CELERY_BROKER_URL")
    assert "digest is running" not in serve.stdout


def test_debug_log_level_adds_the_traceback(tmp_path) -> None:
    result = digest(tmp_path, "stats", DIGEST_DATABASE_URL="sqlite:////proc/x.db", DIGEST_LOG_LEVEL="DEBUG")
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: database sqlite:////proc/x.db")


def test_a_bad_flag_value_names_the_flag_the_user_typed(tmp_path) -> None:
    result = digest(tmp_path, "subscribe", "--email", "a@example.org", "--keywords", "x", "--time", "25:00")
    line = one_line_failure(result, "--time: '25:00' is not a time of day as HH:MM")
    assert "send_time" not in line
