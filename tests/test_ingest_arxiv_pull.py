"""The daily arXiv pull, against a local server serving feed files written in arXiv's format."""

from __future__ import annotations

import datetime as dt
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.config import ConfigError, load_settings
from digest.db import Database
from digest.ingest.arxiv_pull import ArxivPull, feed_day, pull_arxiv_feed
from digest.models import DigestFile, Paper

FIXTURES = Path(__file__).parent / "fixtures" / "arxiv"
RSS_DAY1 = (FIXTURES / "rss-cs.AI-2025-04-01.xml").read_bytes()
ATOM_DAY2 = (FIXTURES / "atom-cs.AI-2025-04-02.xml").read_bytes()
EMPTY = (FIXTURES / "rss-cs.AI-2025-04-05.xml").read_bytes()


class Feeds(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /rss/<category>`` with the body set for that category (503 for ``down``)."""

    bodies: dict[str, bytes]
    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.requests.append(self.path)
        category = self.path.removeprefix("/rss/")
        if category == "down":
            self.send_error(503)
            return
        body = self.bodies.get(category)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.requests: list[str] = []
        handler = type("Handler", (Feeds,), {"bodies": self.bodies, "requests": self.requests})
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http.server_address[1]}/rss/"


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server()
    yield served
    served.http.shutdown()
    served.http.server_close()


def count(db: Database, table: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table))


def names(db: Database) -> list[tuple[str, str]]:
    with db.session() as session:
        return sorted(session.execute(select(DigestFile.name, DigestFile.status)).tuples().all())


class Clock:
    def __init__(self, value: dt.datetime) -> None:
        self.value = value

    def __call__(self) -> dt.datetime:
        return self.value


def test_the_feed_of_a_day_is_the_days_from_six_utc_and_the_day_befores_until_then() -> None:
    assert feed_day(dt.datetime(2025, 4, 1, 5, 59)) == dt.date(2025, 3, 31)
    assert feed_day(dt.datetime(2025, 4, 1, 6, 0)) == dt.date(2025, 4, 1)


def test_each_category_is_pulled_once_a_day_and_ingested_like_a_dropped_file(db, server) -> None:
    server.bodies.update({"cs.AI": RSS_DAY1, "cs.CL": ATOM_DAY2})
    clock = Clock(dt.datetime(2025, 4, 2, 9, 0))
    pull = ArxivPull(db, server.base, ["cs.AI", "cs.CL"], clock=clock, pause=0)
    pull.run()
    assert names(db) == [
        ("arxiv-cs.AI-2025-04-02.xml", "ingested"),
        ("arxiv-cs.CL-2025-04-02.xml", "ingested"),
    ]
    assert count(db, Paper) == 50 + 20
    clock.value += dt.timedelta(hours=1)
    pull.run()  # the same day: no request at all
    ArxivPull(db, server.base, ["cs.AI"], clock=clock, pause=0).run()  # a restarted process: by file name
    assert server.requests == ["/rss/cs.AI", "/rss/cs.CL"]


def test_a_feed_arxiv_has_not_rebuilt_yet_is_asked_again_and_taken_once_it_is(db, server, caplog) -> None:
    server.bodies["cs.AI"] = RSS_DAY1
    clock = Clock(dt.datetime(2025, 4, 1, 7, 0))
    pull = ArxivPull(db, server.base, ["cs.AI"], clock=clock, pause=0)
    pull.run()
    clock.value = dt.datetime(2025, 4, 2, 7, 0)  # the next day, but arXiv still serves the 04-01 listing
    with caplog.at_level(logging.DEBUG, logger="digest.ingest.arxiv_pull"):
        pull.run()
    assert names(db) == [("arxiv-cs.AI-2025-04-01.xml", "ingested")]
    assert "ingested before" in caplog.text
    server.bodies["cs.AI"] = ATOM_DAY2
    clock.value += dt.timedelta(hours=1)
    pull.run()
    assert names(db)[-1] == ("arxiv-cs.AI-2025-04-02.xml", "ingested")
    assert len(server.requests) == 3


def test_empty_weekend_feeds_are_recorded_and_not_fetched_again_that_day(db, server) -> None:
    server.bodies["cs.AI"] = EMPTY
    clock = Clock(dt.datetime(2025, 4, 5, 8, 0))
    pull = ArxivPull(db, server.base, ["cs.AI"], clock=clock, pause=0)
    pull.run()
    clock.value = dt.datetime(2025, 4, 6, 8, 0)  # Sunday: the very same empty feed
    pull.run()
    clock.value += dt.timedelta(hours=1)
    pull.run()
    assert names(db) == [("arxiv-cs.AI-2025-04-05.xml", "rejected")]
    assert len(server.requests) == 2  # once each day, not every hour of Sunday


def test_an_unreachable_feed_warns_once_per_category_and_day_and_the_others_are_still_pulled(
    db, server, caplog
) -> None:
    server.bodies["cs.AI"] = RSS_DAY1
    clock = Clock(dt.datetime(2025, 4, 1, 9, 0))
    pull = ArxivPull(db, server.base, ["down", "cs.AI"], clock=clock, pause=0)
    with caplog.at_level(logging.DEBUG, logger="digest.ingest.arxiv_pull"):
        for _ in range(3):  # the hourly retries of one day
            pull.run()
            clock.value += dt.timedelta(hours=1)
        server.bodies["cs.AI"] = ATOM_DAY2
        clock.value = dt.datetime(2025, 4, 2, 9, 0)
        pull.run()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "down of 2025-04-01" in warnings[0] and "2025-04-02" in warnings[1]
    assert "503" in warnings[0] and "\n" not in warnings[0]
    assert names(db) == [
        ("arxiv-cs.AI-2025-04-01.xml", "ingested"),
        ("arxiv-cs.AI-2025-04-02.xml", "ingested"),
    ]


def test_a_pull_names_the_file_by_category_and_day(db, server) -> None:
    server.bodies["cs.AI"] = RSS_DAY1
    assert pull_arxiv_feed(db, server.base, "cs.AI", dt.date(2025, 4, 1)) is True
    with db.session() as session:
        row = session.scalars(select(DigestFile)).one()
    assert (row.name, row.format, row.digest_date) == (
        "arxiv-cs.AI-2025-04-01.xml",
        "arxiv/rss",
        dt.date(2025, 4, 1),
    )


def test_the_pull_is_off_by_default_and_points_at_arxivs_feeds(tmp_path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.arxiv_category_list == [] and settings.arxiv_feed_url == "https://rss.arxiv.org/rss/"


def test_categories_are_checked_and_the_base_url_ends_with_a_slash(tmp_path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        arxiv_categories=" cs.IR, hep-th,astro-ph.CO,cs.IR ",
        arxiv_feed_url="http://x/atom",
    )
    assert settings.arxiv_category_list == ["cs.IR", "hep-th", "astro-ph.CO"]
    assert settings.arxiv_feed_url == "http://x/atom/"
    with pytest.raises(ConfigError, match="DIGEST_ARXIV_CATEGORIES: 'cs IR' is not an arXiv category"):
        load_settings(data_dir=tmp_path, arxiv_categories="cs.IR,cs IR")
    with pytest.raises(ConfigError, match="DIGEST_ARXIV_FEED_URL"):
        load_settings(data_dir=tmp_path, arxiv_feed_url="rss.arxiv.org/rss")
