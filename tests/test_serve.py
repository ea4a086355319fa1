"""`digest serve` as a user runs it: a subprocess on the embedded defaults, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from common import TEST_SECRET
from sqlalchemy import select
from tcp_proxy import TcpProxy

from digest.config import load_settings
from digest.db import Database
from digest.models import DigestFile
from digest.serve import describe, with_listen_address

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 60.0  # generous guards against hanging, not speed assertions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], object], limit: float, what: str) -> object:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Service:
    def __init__(self, workdir: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        environment.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONUNBUFFERED="1", DIGEST_HF_DAILY_URL="")
        environment.update(env)
        command = [
            sys.executable,
            "-c",
            "from digest.cli import main; main()",
            "serve",
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            [*command, *args], cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def wait_healthy(self) -> None:
        wait_for(lambda: healthy(self.port) or self.process.poll() is not None, STARTUP_LIMIT, "/healthz")
        assert self.process.poll() is None, self.process.communicate()[1].decode()

    def terminate(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=STARTUP_LIMIT)
        return self.process.returncode, out.decode(), err.decode()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(*args: str, **env: str) -> Service:
        started.append(Service(tmp_path, *args, **env))
        return started[-1]

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()


def ingested_files(data_dir: Path) -> list[tuple[str, str]]:
    db = Database(load_settings(data_dir=data_dir), migrate=False)
    try:
        with db.session() as session:
            return [tuple(r) for r in session.execute(select(DigestFile.name, DigestFile.status))]
    finally:
        db.dispose()


def hf_json() -> bytes:
    item = {
        "paper": {
            "id": "2501.00001",
            "title": "Sparse attention for long documents",
            "summary": "We make attention sparse and long documents cheap.",
            "authors": [{"name": "Ada Lovelace"}],
        },
        "title": "Sparse attention for long documents",
    }
    return json.dumps([item]).encode()


def test_serve_on_embedded_defaults_answers_health_ingests_the_inbox_and_stops_on_sigterm(
    service_factory, tmp_path
):
    service = service_factory(DIGEST_INBOX_POLL_SECONDS="1")
    service.wait_healthy()
    data_dir = tmp_path / "var"  # the default ./var, relative to where the service was started
    inbox = data_dir / "inbox"
    assert inbox.is_dir()
    partial = inbox / "2025-01-02.json.part"  # the write-then-rename convention
    partial.write_bytes(hf_json())
    partial.rename(inbox / "2025-01-02.json")
    # The file is recorded as ingesting first, then written chunk by chunk: wait for the end of it.
    wait_for(lambda: ("2025-01-02.json", "ingested") in ingested_files(data_dir), 30, "the inbox file")
    assert ingested_files(data_dir) == [("2025-01-02.json", "ingested")]
    code, out, err = service.terminate()
    assert code == 0, err
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{service.port}" in out
    assert str(inbox.resolve()) in out
    assert str((data_dir / "outbox").resolve()) in out


def test_serve_without_scheduler_runs_the_web_app_only(service_factory, tmp_path):
    service = service_factory(DIGEST_SCHEDULER="false", DIGEST_LOG_LEVEL="DEBUG")  # APScheduler would log
    service.wait_healthy()
    code, out, err = service.terminate()
    assert code == 0 and "Traceback" not in err
    assert "scheduler: off" in out
    assert "apscheduler" not in err.lower() and "Added job" not in err


def test_sigint_stops_it_cleanly_too(service_factory):
    service = service_factory("--no-scheduler")
    service.wait_healthy()
    service.process.send_signal(signal.SIGINT)
    _, err = service.process.communicate(timeout=STARTUP_LIMIT)
    assert service.process.returncode == 0 and b"Traceback" not in err


def test_banner_names_the_smtp_host_when_mail_goes_out_by_smtp(data_dir):
    settings = load_settings(data_dir=data_dir, smtp_host="mail.example.org", smtp_port=2525)
    lines = describe(settings, "0.0.0.0", 8080, scheduler=True)
    assert lines[0].startswith("digest is running at http://0.0.0.0:8080")
    assert any("SMTP mail.example.org:2525" in line for line in lines)
    assert not any("scheduler: off" in line for line in lines)


def test_links_point_at_the_served_port_when_no_base_url_is_set(data_dir):
    settings = with_listen_address(load_settings(data_dir=data_dir), "0.0.0.0", 8765)
    assert settings.base_url == "http://127.0.0.1:8765"


def test_an_explicit_base_url_wins_over_the_listen_address(data_dir):
    configured = load_settings(data_dir=data_dir, base_url="https://digest.example.org")
    assert with_listen_address(configured, "127.0.0.1", 8765).base_url == "https://digest.example.org"


def test_banner_says_digests_go_to_workers_and_hides_the_broker_password(data_dir):
    broker = "redis://:s3cret@127.0.0.1:6379/0"
    lines = describe(load_settings(data_dir=data_dir, celery_broker_url=broker), "127.0.0.1", 8000, True)
    assert any("queued for `digest worker` on redis://:***@127.0.0.1:6379/0" in line for line in lines)
    assert not any("s3cret" in line for line in lines)


def stored_names(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(DigestFile.name)))


def health(port: int) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.postgres
def test_with_the_database_gone_each_job_logs_one_line_per_run_and_serve_recovers_by_itself(
    service_factory, tmp_path, pg_db, postgres_url
):
    proxy = TcpProxy(("127.0.0.1", 5432))  # the shared server stays up; only this service loses it
    through_proxy = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    inbox = tmp_path / "inbox"
    service = service_factory(
        DIGEST_DATABASE_URL=through_proxy,
        DIGEST_SECRET_KEY=TEST_SECRET,
        DIGEST_INBOX_DIR=str(inbox),
        DIGEST_INBOX_POLL_SECONDS="1",
        DIGEST_DISPATCH_INTERVAL_SECONDS="1",
    )
    try:
        service.wait_healthy()
        proxy.cut()
        wait_for(lambda: health(service.port) == 503, 30, "/healthz to report the database down")
        (inbox / "2025-01-02.json").write_bytes(hf_json())  # arrives while the database is away
        time.sleep(4)  # a few runs of the inbox and dispatch jobs, every second
        proxy.restore()
        wait_for(lambda: health(service.port) == 200, 30, "/healthz to recover")
        wait_for(lambda: stored_names(pg_db) == ["2025-01-02.json"], 30, "the file held back while down")
    finally:
        proxy.close()
    code, _, err = service.terminate()
    assert code == 0 and "Traceback" not in err
    failures = [line for line in err.splitlines() if "next run will retry" in line]
    assert [line for line in err.splitlines() if " ERROR " in line] == failures  # nothing else went wrong
    assert all("database postgresql+psycopg://" in line for line in failures)
    assert len([line for line in failures if " digest.jobs: dispatch: " in line]) >= 2  # runs every second
    assert any(" digest.jobs: inbox: " in line for line in failures)  # the file it could not record yet


def test_banner_says_where_papers_are_pulled_from_unless_the_pull_is_off(data_dir):
    pulling = load_settings(data_dir=data_dir, hf_daily_url="https://hf.example/api/daily_papers")
    assert any(
        "pulled daily from https://hf.example/api/daily_papers" in line
        for line in describe(pulling, "h", 1, True)
    )
    assert not any("pulled daily" in line for line in describe(pulling, "h", 1, scheduler=False))
    assert not any(
        "pulled daily" in line for line in describe(load_settings(data_dir=data_dir), "h", 1, True)
    )


def test_banner_says_once_whether_the_semantic_part_ranks_too(data_dir, monkeypatch):
    from digest.rank import encoder

    settings = load_settings(data_dir=data_dir)
    extra = encoder.installed()
    here = [line for line in describe(settings, "h", 1, True) if line.startswith("ranking:")]
    monkeypatch.setattr(encoder, "installed", lambda: False)
    missing = [line for line in describe(settings, "h", 1, True) if line.startswith("ranking:")]
    assert len(here) == len(missing) == 1
    assert "TF-IDF only" in missing[0] and "pip install 'digest[semantic]'" in missing[0]
    assert ("TF-IDF + semantic" in here[0]) == extra
