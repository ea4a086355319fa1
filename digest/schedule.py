"""When a subscriber's next digest is due: local send time, weekdays and cadence, DST-correct.

All datetimes in and out are naive UTC (like every column in ``digest.models``); the subscriber's
``timezone`` (an IANA name) is only used to place the local ``send_time`` on the calendar.

Rules (the contract ``create_subscriber`` and the dispatch job rely on):

* ``weekdays`` is a string of digits, Monday=0 … Sunday=6 (``"01234"`` = weekdays only).
* ``cadence="daily"`` sends on every allowed weekday. ``cadence="weekly"`` sends once a week, on the
  *first* allowed weekday of the week (the lowest digit: ``"0123456"`` weekly means Mondays,
  ``"24"`` weekly means Wednesdays). This keeps the rule a pure function of the calendar — no
  "last sent" state — so a restart or a missed week can never shift or double the weekly day.
* A local time that does not exist (spring forward: 02:30 in Europe/Berlin on the last Sunday of
  March) is moved forward by the length of the gap (02:30 → 03:30 CEST). That is what ``zoneinfo``
  does for ``fold=0`` (PEP 495: a missing time is read with the offset from *before* the transition),
  so the day still gets exactly one send.
* A local time that happens twice (fall back: 02:30 on the last Sunday of October) means its first
  occurrence (``fold=0``, PEP 495). The second occurrence is never a slot, so the repeated hour
  cannot send twice.
* A whole calendar day that a zone skipped (Pacific/Apia jumped from 29 to 31 December 2011) has no
  slot: its normalised time lands on the next day, which gets its own slot anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from digest.config import Settings
from digest.db import Database
from digest.models import DigestFile, Subscriber, utcnow

if TYPE_CHECKING:
    from digest.workers import CeleryQueue

log = logging.getLogger(__name__)
UTC = dt.UTC
# Any allowed weekday comes round within a week; a skipped date (Apia 2011) can push a weekly slot
# one more week out. Counted from the day before ``after``'s local date, 16 days cover both.
_SEARCH_DAYS = 16


class Schedulable(Protocol):
    """The Subscriber fields the arithmetic reads (a Subscriber row, or anything shaped like one)."""

    timezone: str
    send_time: str
    weekdays: str
    cadence: str


def next_send_time(subscriber: Schedulable, after: dt.datetime) -> dt.datetime:
    """The first send slot strictly after ``after`` (naive UTC), as naive UTC."""
    zone = _zone(subscriber.timezone)
    send_at = parse_send_time(subscriber.send_time)
    days = send_weekdays(subscriber.weekdays, subscriber.cadence)
    after_utc = after.replace(tzinfo=UTC)
    start = after_utc.astimezone(zone).date() - dt.timedelta(days=1)
    for offset in range(_SEARCH_DAYS):
        day = start + dt.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        slot = local_slot(day, send_at, zone)
        if slot is not None and slot > after_utc:
            return slot.replace(tzinfo=None)
    raise AssertionError(f"no send slot within {_SEARCH_DAYS} days of {after}")  # unreachable by design


def previous_send_time(subscriber: Schedulable, at: dt.datetime) -> dt.datetime | None:
    """The latest slot at or before ``at`` (naive UTC): the one a late dispatch is catching up on.

    Looks back two weeks, enough for a weekly cadence even across a skipped date; None if no slot.
    """
    slot, cursor = None, at - dt.timedelta(days=15)
    while (following := next_send_time(subscriber, cursor)) <= at:
        slot = cursor = following
    return slot


def local_slot(day: dt.date, send_at: dt.time, zone: ZoneInfo) -> dt.datetime | None:
    """The aware UTC instant of ``send_at`` on local ``day`` (gap → forward, fold → first), or None."""
    wall = dt.datetime.combine(day, send_at, tzinfo=zone)  # fold=0: see the module docstring
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).date() != day:
        return None  # the zone skipped this date (or the gap pushed the time past midnight)
    return instant


def digest_date_for(subscriber: Schedulable, slot: dt.datetime) -> dt.date:
    """The digest date of a slot: the subscriber's local calendar date at that (naive UTC) instant."""
    return slot.replace(tzinfo=UTC).astimezone(_zone(subscriber.timezone)).date()


def parse_send_time(value: str) -> dt.time:
    """``"HH:MM"`` (24-hour) → time; ValueError naming the problem otherwise."""
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"send_time must be HH:MM (24-hour), got {value!r}") from None


def send_weekdays(weekdays: str, cadence: str) -> frozenset[int]:
    """The weekdays (Monday=0) on which slots exist for this weekday string and cadence."""
    days = {int(ch) for ch in weekdays if ch in "0123456"}
    if not days or len(days) != len(set(weekdays)):
        raise ValueError(f"weekdays must be digits 0-6 (Monday=0), at least one, got {weekdays!r}")
    if cadence == "weekly":
        return frozenset({min(days)})
    if cadence != "daily":
        raise ValueError(f"cadence must be 'daily' or 'weekly', got {cadence!r}")
    return frozenset(days)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone must be an IANA name such as Europe/Berlin, got {name!r}") from None


# --- the periodic jobs ---------------------------------------------------------------------------------
#
# APScheduler runs only these few jobs, in memory, in each `digest serve` process; per-subscriber
# scheduling state lives in the database (see digest/dispatch.py for why).

# Names a writer uses while a file is still being written. Writers should write to such a name (or
# outside the inbox) and rename into place when done: a rename is atomic on one file system.
IGNORED_PREFIXES = (".", "~")
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".swp", "~")


class InboxWatcher:
    """Finds new digest files in the inbox and ingests each once it has stopped changing.

    A file is read only when (a) its name is not a temporary one (see ``IGNORED_*``), and (b) its size
    and mtime are the same on two polls in a row, or it has not been modified for ``settle_seconds``
    (files already there at start-up). Files are never moved or changed. A file seen with the same
    path, size and mtime is skipped without being read; after a restart each file is offered once
    more and ingestion skips it by content hash.
    """

    def __init__(
        self, db: Database, inbox: Path, *, settle_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db, self.inbox, self.settle_seconds, self.clock = db, inbox, settle_seconds, clock
        self._pending: dict[Path, tuple[int, int]] = {}
        self._done: dict[Path, tuple[int, int]] = {}

    def poll(self) -> list[Path]:
        """Ingest every ready file; return their paths."""
        found = dict(self._scan())
        for gone in set(self._done) - set(found):
            del self._done[gone]
        ready = [path for path, signature in found.items() if self._ready(path, signature)]
        for path in ready:
            self._ingest(path, found[path])
        return ready

    def _scan(self) -> Iterator[tuple[Path, tuple[int, int]]]:
        if not self.inbox.is_dir():
            return
        for path in sorted(self.inbox.iterdir()):
            if path.name.startswith(IGNORED_PREFIXES) or path.name.endswith(IGNORED_SUFFIXES):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # renamed or removed between listing and stat
                continue
            if path.is_file():
                yield path, (stat.st_size, stat.st_mtime_ns)

    def _ready(self, path: Path, signature: tuple[int, int]) -> bool:
        if self._done.get(path) == signature:
            return False
        previous, self._pending[path] = self._pending.get(path), signature
        settled = self.clock() - signature[1] / 1e9 >= self.settle_seconds
        return previous == signature or settled

    def _ingest(self, path: Path, signature: tuple[int, int]) -> None:
        from digest.ingest.service import ingest_paths

        # Marked done whatever happens: a file that makes ingestion fail is retried only once it changes.
        self._done[path] = signature
        self._pending.pop(path, None)
        try:
            report = ingest_paths(self.db, [path])
        except Exception:
            log.exception("inbox: ingesting %s failed", path)
            return
        log.info("inbox: %s: %s", path.name, report.as_dict())


def hf_daily_name(day: dt.date) -> str:
    return f"hf-daily-{day.isoformat()}.json"


def pull_hf_daily(db: Database, url: str, day: dt.date, *, timeout: float = 30.0) -> bool:
    """Fetch the Hugging Face daily-papers list for ``day`` (``?date=YYYY-MM-DD``) and ingest it.

    Returns False when that day was pulled before (a digest file of that name exists), True after a pull.
    HTTP errors raise ``httpx.HTTPError``; a malformed body is recorded as a rejected file by ingestion.
    """
    from digest.ingest.service import ingest_bytes

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


def schedule_unscheduled(db: Database, *, now: dt.datetime | None = None) -> int:
    """Maintenance: give active subscribers without a next send time one (e.g. a row added by hand)."""
    now = now or utcnow()
    query = select(Subscriber).where(
        Subscriber.status == "active",
        Subscriber.next_send_at.is_(None),
        Subscriber.claimed_until.is_(None),
    )
    count = 0
    with db.session() as session:
        for subscriber in session.scalars(query):
            if (subscriber.last_error or "").startswith("schedule:"):
                continue  # parked by dispatch; a preferences change reschedules it
            try:
                subscriber.next_send_at = next_send_time(subscriber, now)
                count += 1
            except ValueError as exc:
                subscriber.last_error = f"schedule: {exc}"
    return count


def maintenance(db: Database, settings: Settings, *, now: dt.datetime | None = None) -> None:
    """Hourly: schedule rows that lack a send time; erase sign-ups whose confirmation link expired."""
    from digest.subscribers import purge_unconfirmed

    scheduled = schedule_unscheduled(db, now=now)
    with db.session() as session:
        purged = purge_unconfirmed(session, dt.timedelta(days=settings.token_max_age_days), now=now)
    if scheduled or purged:
        log.info("maintenance: %d scheduled, %d unconfirmed sign-ups erased", scheduled, purged)


def _queue(settings: Settings) -> CeleryQueue | None:
    """With a broker configured, due digests go to Celery workers (``digest worker``) instead."""
    if not settings.celery_broker_url:
        return None
    from digest.workers import CeleryQueue  # Celery is imported only when it is used

    return CeleryQueue(settings)


def build_scheduler(db: Database, settings: Settings, *, stop: threading.Event) -> BackgroundScheduler:
    """The per-process scheduler: inbox, dispatch, maintenance and (if configured) the HF daily pull.

    Every job starts once right away, never runs twice at the same time (``max_instances=1``), and
    a run missed while the previous one was still busy is merged into one (``coalesce``).
    """
    from digest.dispatch import Dispatcher  # imports this module's arithmetic; imported here to avoid a cycle

    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    start = dt.datetime.now(UTC)
    watcher = InboxWatcher(db, settings.inbox, settle_seconds=max(settings.inbox_poll_seconds, 5))
    dispatcher = Dispatcher(db, settings, stop=stop, queue=_queue(settings))
    jobs = [
        ("inbox", watcher.poll, settings.inbox_poll_seconds),
        ("dispatch", dispatcher.run, settings.dispatch_interval_seconds),
        ("maintenance", lambda: maintenance(db, settings), 3600),
    ]
    if settings.hf_daily_url:
        jobs.append(("hf_daily", lambda: hf_daily_job(db, settings), 3600))
    for name, func, seconds in jobs:
        scheduler.add_job(func, "interval", seconds=seconds, id=name, name=name, next_run_time=start)
    return scheduler
