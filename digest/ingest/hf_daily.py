"""The Hugging Face daily-papers pull: one day's list fetched over HTTP and ingested like a file."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import httpx
from sqlalchemy import select

from digest.db import Database
from digest.ingest.service import ingest_bytes
from digest.models import DigestFile, utcnow

log = logging.getLogger(__name__)


def hf_daily_name(day: dt.date) -> str:
    return f"hf-daily-{day.isoformat()}.json"


def pull_hf_daily(db: Database, url: str, day: dt.date, *, timeout: float = 30.0) -> bool:
    """Fetch the Hugging Face daily-papers list for ``day`` (``?date=YYYY-MM-DD``) and ingest it.

    Returns False when that day was pulled before (a digest file of that name exists), True after a pull.
    HTTP errors raise ``httpx.HTTPError``; a malformed body is recorded as a rejected file by ingestion.
    """
    name = hf_daily_name(day)
    with db.session() as session:
        if session.scalar(select(DigestFile.id).where(DigestFile.name == name).limit(1)) is not None:
            return False
    response = httpx.get(url, params={"date": day.isoformat()}, timeout=timeout, follow_redirects=True)
    response.raise_for_status()
    ingest_bytes(db, name, response.content, digest_date=day)
    return True


class HfDailyPull:
    """The hourly job: pull yesterday's (UTC) list — complete by then — once, so downtime cannot skip a day.

    Offline, it warns once per day it could not pull (the hourly retries of that day log at DEBUG).
    """

    def __init__(self, db: Database, url: str, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db, self.url, self.clock = db, url, clock
        self._warned: dt.date | None = None

    def run(self) -> None:
        day = self.clock().date() - dt.timedelta(days=1)
        try:
            if pull_hf_daily(self.db, self.url, day):
                log.info("hf daily: pulled %s", day)
        except httpx.HTTPError as exc:
            level = logging.DEBUG if self._warned == day else logging.WARNING
            self._warned = day
            log.log(level, "hf daily: pulling %s from %s failed (%s); retrying hourly", day, self.url, exc)
