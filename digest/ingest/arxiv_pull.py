"""The arXiv pull: each listed category's announcement feed fetched once a day and ingested like a file.

arXiv rebuilds its feeds once a day, at midnight US Eastern (info.arxiv.org/help/rss.html), and keeps no
history: a feed shows the latest announcement only. So a category is pulled once per *feed day*, the UTC
date from ``READY_HOUR_UTC`` on (by then the day's feed is out, summer or winter time); until that hour
the feed day is the day before, pulled already. A feed that still lists an announcement ingested before
(arXiv late) is asked again hourly. A day missed while the service was down cannot be fetched later. A
weekend or holiday feed lists nothing and is recorded as rejected ("no entries").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import httpx
from sqlalchemy import ColumnElement, select

from digest import __version__
from digest.db import Database
from digest.ingest.service import ingest_bytes
from digest.models import DigestFile, FileStatus, utcnow

log = logging.getLogger(__name__)

READY_HOUR_UTC = 6
PAUSE_SECONDS = 3.0  # between two categories' requests, as arXiv asks of automated clients
USER_AGENT = f"digest/{__version__} (self-hosted paper digest)"


def arxiv_feed_name(category: str, day: dt.date) -> str:
    return f"arxiv-{category}-{day.isoformat()}.xml"


def feed_day(now: dt.datetime) -> dt.date:
    """The day whose feed is out at ``now`` (UTC)."""
    return (now - dt.timedelta(hours=READY_HOUR_UTC)).date()


def pull_arxiv_feed(
    db: Database, base_url: str, category: str, day: dt.date, *, timeout: float = 30.0
) -> bool:
    """Fetch ``base_url + category`` and ingest it as ``arxiv-<category>-<day>.xml``; True once that
    category's feed of that day is in (pulled now, or a file of that name recorded before).

    False when arXiv still serves a listing already ingested (its feed of the day is late): nothing is
    recorded and the next run asks again. HTTP errors raise ``httpx.HTTPError``; a malformed or empty feed
    is recorded as rejected."""
    name = arxiv_feed_name(category, day)
    if _recorded(db, DigestFile.name == name):
        return True
    response = httpx.get(
        base_url + category, timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
    )
    response.raise_for_status()
    content_hash = hashlib.sha256(response.content).hexdigest()
    if _recorded(db, DigestFile.content_hash == content_hash, DigestFile.status == FileStatus.INGESTED):
        log.debug("arxiv: %s still lists an announcement ingested before; asking again later", category)
        return False
    report = ingest_bytes(db, name, response.content)
    log.info("arxiv: %s of %s: %s", category, day, report.summary())
    return True


def _recorded(db: Database, *conditions: ColumnElement[bool]) -> bool:
    with db.session() as session:
        return session.scalar(select(DigestFile.id).where(*conditions).limit(1)) is not None


class ArxivPull:
    """The hourly job: each category's feed of the day, once. Offline, it warns once per category and day
    (the hourly retries of that day log at DEBUG); one category failing does not stop the others."""

    def __init__(
        self,
        db: Database,
        base_url: str,
        categories: Sequence[str],
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        pause: float = PAUSE_SECONDS,
    ) -> None:
        self.db, self.base_url, self.categories = db, base_url, list(categories)
        self.clock, self.pause = clock, pause
        # Pulled in this process: a feed identical to an earlier one (two empty weekend feeds) records no
        # file of its own name, and must not be fetched again every hour.
        self._pulled: set[tuple[str, dt.date]] = set()
        self._warned: dict[str, dt.date] = {}

    def run(self) -> None:
        day = feed_day(self.clock())
        due = [category for category in self.categories if (category, day) not in self._pulled]
        for number, category in enumerate(due):
            if number and self.pause:
                time.sleep(self.pause)
            self._pull(category, day)

    def _pull(self, category: str, day: dt.date) -> None:
        try:
            done = pull_arxiv_feed(self.db, self.base_url, category, day)
        except httpx.HTTPError as exc:
            level = logging.DEBUG if self._warned.get(category) == day else logging.WARNING
            self._warned[category] = day
            url, exc = self.base_url + category, str(exc).splitlines()[0]  # httpx adds a second line
            log.log(
                level, "arxiv: pulling %s of %s from %s failed (%s); retrying hourly", category, day, url, exc
            )
            return
        if done:
            self._pulled.add((category, day))
