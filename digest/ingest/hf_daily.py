"""The Hugging Face daily-papers pull: one day's list fetched over HTTP and ingested like a file."""

from __future__ import annotations

import datetime as dt
import logging

import httpx
from sqlalchemy import select

from digest.config import Settings
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


def hf_daily_job(db: Database, settings: Settings) -> None:
    """Pull yesterday's (UTC) list — complete by then — once; runs hourly so downtime cannot skip a day."""
    assert settings.hf_daily_url
    day = utcnow().date() - dt.timedelta(days=1)
    try:
        if pull_hf_daily(db, settings.hf_daily_url, day):
            log.info("hf daily: pulled %s", day)
    except httpx.HTTPError as exc:
        log.warning("hf daily: pulling %s failed (%s); retrying next hour", day, exc)
