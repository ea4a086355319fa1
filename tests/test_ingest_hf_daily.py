"""The Hugging Face daily pull, against a local server serving the recorded API responses."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from digest.db import Database
from digest.ingest.hf_daily import HfDailyPull, pull_hf_daily
from digest.models import DigestFile, Paper


def count(db: Database, table: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table))


class RecordedDailyPapers(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /api/daily_papers?date=YYYY-MM-DD`` from the recorded files, like the real API."""

    folder: Path

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        day = parse_qs(parts.query).get("date", [""])[0]
        path = self.folder / f"{day}.json"
        if parts.path != "/api/daily_papers" or not day or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hf_server(shared_dir: Path) -> Iterator[str]:
    handler = type("Handler", (RecordedDailyPapers,), {"folder": shared_dir / "data" / "hf_daily"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/daily_papers"
    server.shutdown()
    server.server_close()


def test_hf_pull_ingests_the_recorded_day_once(db, hf_server, shared_dir):
    day = dt.date(2025, 6, 30)
    expected = len(json.loads((shared_dir / "data/hf_daily/2025-06-30.json").read_text()))
    assert pull_hf_daily(db, hf_server, day) is True
    assert count(db, Paper) == expected
    with db.session() as session:
        row = session.scalars(select(DigestFile)).one()
    assert (row.name, row.status, row.digest_date) == ("hf-daily-2025-06-30.json", "ingested", day)
    assert pull_hf_daily(db, hf_server, day) is False  # already pulled: no second request
    assert count(db, DigestFile) == 1


def test_hf_pull_of_a_missing_day_raises_and_records_nothing(db, hf_server):
    with pytest.raises(httpx.HTTPStatusError):
        pull_hf_daily(db, hf_server, dt.date(2019, 1, 1))
    assert count(db, DigestFile) == 0


class Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_error(503)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def down_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/daily_papers"
    server.shutdown()
    server.server_close()


def test_an_unreachable_api_warns_once_per_day_and_retries_quietly(db, down_server, caplog) -> None:
    now = [dt.datetime(2025, 7, 1, 9, 0)]
    pull = HfDailyPull(db, down_server, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="digest.ingest.hf_daily"):
        for hour in range(3):  # the hourly retries of one day
            now[0] = dt.datetime(2025, 7, 1, 9 + hour)
            pull.run()
        now[0] = dt.datetime(2025, 7, 2, 9, 0)  # the next day's pull fails too
        pull.run()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "2025-06-30" in warnings[0] and "2025-07-01" in warnings[1]
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 2
    assert count(db, DigestFile) == 0


def test_the_job_pulls_yesterdays_list_from_a_local_server(db, hf_server) -> None:
    HfDailyPull(db, hf_server, clock=lambda: dt.datetime(2025, 7, 1, 3, 0)).run()
    with db.session() as session:
        assert session.scalars(select(DigestFile.name)).one() == "hf-daily-2025-06-30.json"
