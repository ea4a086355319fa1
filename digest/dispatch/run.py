"""The daily run: every due subscriber's digest, a chunk at a time, on every core.

``Dispatcher.run`` is the dispatch job: it finds due rows through the ``next_send_at`` index, claims a chunk
with one conditional UPDATE (``digest.dispatch.leases``), sends it (``digest.dispatch.batch``: one window,
one product, the ledger written per chunk) or queues it for Celery workers, releases it, and goes on until
nothing is due. ``send_many`` is ``digest send``: given subscribers, each one's digest for their own local
date (or one date), in chunks. Both can run in several processes (``processes``): on SQLite each process
writes its chunks in turn, on PostgreSQL at once; the ledger keeps every digest to at most one send.

Why the schedule lives in our own ``subscribers`` table and not as one APScheduler job per subscriber:
APScheduler 3's FAQ, "How do I share a single job store among one or more worker processes?" answers
"Short answer: You can't." (https://apscheduler.readthedocs.io/en/3.x/faq.html). Two ``digest serve``
processes on one PostgreSQL database are a supported setup, so each keeps only a few in-memory periodic
jobs (``digest.jobs``) and the database row is the single source of truth, claimed atomically.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from digest.calendar import digest_date_for
from digest.config import Settings
from digest.db import Database
from digest.deliver.ledger import DeliveryOutcome
from digest.deliver.transports import Transports
from digest.dispatch.batch import Phases, send_chunk
from digest.dispatch.leases import (
    DEFAULT_LEASE,
    Claim,
    Due,
    claim_all,
    claim_one,
    find_due,
    park,
    release_all,
    timing,
)
from digest.models import Outcome, Subscriber, utcnow

log = logging.getLogger(__name__)

CHUNK = 256  # subscribers per chunk: one product, one ledger transaction (bench_daily)


# --- ``digest send`` ----------------------------------------------------------------------------------------


@dataclass
class BatchReport:
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    phases: Phases = field(default_factory=Phases)

    def counts(self) -> dict[str, int]:
        counter = Counter(outcome.status for outcome in self.outcomes)
        return {status: counter.get(status, 0) for status in Outcome}


def send_many(
    db: Database,
    settings: Settings,
    subscriber_ids: Iterable[int],
    *,
    digest_date: dt.date | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    processes: int = 1,
) -> BatchReport:
    """Send each subscriber's digest (without ``digest_date``: of their own local date at ``now``) in
    chunks over shared transports; one subscriber's error never stops the batch."""
    now = now or utcnow()
    report = BatchReport()
    with report.phases.timed("dates"):
        work = dated(db, list(subscriber_ids), digest_date, now)
    chunks = [work[at : at + CHUNK] for at in range(0, len(work), CHUNK)]
    if processes > 1 and len(chunks) > 1:
        results = _in_processes(settings, chunks, now, dry_run, processes)
    else:
        results = _in_this_process(db, settings, chunks, now, dry_run)
    for outcomes, phases in results:
        report.outcomes += outcomes
        report.phases.merge(phases)
    return report


def dated(
    db: Database, ids: list[int], digest_date: dt.date | None, now: dt.datetime
) -> list[tuple[int, dt.date]]:
    """Each subscriber with the digest date to send: ``digest_date``, or their local date at ``now``
    (the UTC date for an unknown subscriber)."""
    if digest_date is not None:
        return [(sid, digest_date) for sid in ids]
    zones: dict[int, str] = {}
    with db.session() as session:
        for at in range(0, len(ids), 1000):
            query = select(Subscriber.id, Subscriber.timezone).where(Subscriber.id.in_(ids[at : at + 1000]))
            zones.update({sid: zone for sid, zone in session.execute(query)})  # a Result has .keys()
    return [(sid, _local_date(zones[sid], now) if sid in zones else now.date()) for sid in ids]


def _local_date(zone: str, now: dt.datetime) -> dt.date:
    return digest_date_for(_Zone(zone), now)


@dataclass(frozen=True)
class _Zone:
    timezone: str
    send_time: str = "00:00"
    weekdays: str = "0123456"
    cadence: str = "daily"


def _in_this_process(
    db: Database, settings: Settings, chunks: list[list[tuple[int, dt.date]]], now: dt.datetime, dry_run: bool
) -> list[tuple[list[DeliveryOutcome], Phases]]:
    transports = Transports(settings)
    try:
        return [_chunk(db, settings, chunk, now, dry_run, transports) for chunk in chunks]
    finally:
        transports.close()


def _chunk(
    db: Database,
    settings: Settings,
    chunk: list[tuple[int, dt.date]],
    now: dt.datetime,
    dry_run: bool,
    transports: Transports,
) -> tuple[list[DeliveryOutcome], Phases]:
    phases = Phases()
    try:
        result = send_chunk(
            db, settings, chunk, now=now, transports=transports, dry_run=dry_run, phases=phases
        )
    except Exception as exc:  # a bug: this chunk's alone; its claims (if any) stay for the operator
        log.exception("sending a chunk of %d digests failed", len(chunk))
        return [
            DeliveryOutcome(sid, day, Outcome.FAILED, reason=f"error: {exc!r}") for sid, day in chunk
        ], phases
    return result.outcomes, phases


# Each worker process of ``send_many``: its own database engine and transports (neither crosses processes).
_WORKER: dict[str, Any] = {}


def _worker_start(settings: Settings) -> None:
    _WORKER["db"] = Database(settings, migrate=False)
    _WORKER["settings"] = settings
    _WORKER["transports"] = Transports(settings)


def _worker_chunk(
    args: tuple[list[tuple[int, dt.date]], dt.datetime, bool],
) -> tuple[list[DeliveryOutcome], Phases]:
    chunk, now, dry_run = args
    return _chunk(_WORKER["db"], _WORKER["settings"], chunk, now, dry_run, _WORKER["transports"])


def _in_processes(
    settings: Settings,
    chunks: list[list[tuple[int, dt.date]]],
    now: dt.datetime,
    dry_run: bool,
    processes: int,
) -> list[tuple[list[DeliveryOutcome], Phases]]:
    """The chunks spread over ``processes`` fresh processes (spawned: no engine or connection is copied)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_worker_start, initargs=(settings,)) as pool:
        results = pool.map(_worker_chunk, [(chunk, now, dry_run) for chunk in chunks], chunksize=1)
        pool.close()
        pool.join()
    return results


# --- the dispatch job ------------------------------------------------------------------------------------


class Queue(Protocol):
    """Where claims go when other processes send them (``digest.workers.CeleryQueue``)."""

    def put(self, claims: Sequence[Claim], report: DispatchReport) -> None: ...


@dataclass
class DispatchReport:
    claimed: int = 0
    lost: int = 0  # another process claimed the row first
    parked: int = 0  # schedule fields unusable: next_send_at cleared, last_error set
    errors: int = 0  # a send raised
    outcomes: Counter[str] = field(default_factory=Counter)
    phases: Phases = field(default_factory=Phases)

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "lost": self.lost,
            "parked": self.parked,
            "errors": self.errors,
            "outcomes": dict(self.outcomes),
        }


class Dispatcher:
    """Claims and sends due digests. One per process; safe to run beside dispatchers in other processes."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        lease: dt.timedelta = DEFAULT_LEASE,
        stop: threading.Event | None = None,
        queue: Queue | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.db, self.settings, self.clock, self.lease = db, settings, clock, lease
        self.stop = stop or threading.Event()
        self.queue = queue  # with Celery workers (``digest.workers``), claims are sent by them
        self.chunk = chunk
        self._again: list[int] = []  # rows handled this run that are due again at once
        self._transports = Transports(settings)

    def run(self) -> DispatchReport:
        """Send everything due now (the periodic job). Stops early, between two chunks, on ``stop``."""
        report = DispatchReport()
        self._again = []
        try:
            while not self.stop.is_set() and self.run_chunk(report):
                pass
        finally:
            self._transports.close()  # e.g. the one SMTP connection this run's mails shared
        if report.claimed or report.parked or report.errors:
            log.info("dispatch: %s", report.as_dict())
        return report

    def run_chunk(self, report: DispatchReport) -> bool:
        """Claim and send (or queue) one chunk of due subscriptions; False when nothing is due any more."""
        now = self.clock()
        with report.phases.timed("claim"):
            dues = self.find_due(now, self.chunk)
            claims = self._claim_all(dues, now, report)
        if not dues:
            return False
        if claims and self.queue is not None:
            self.queue.put(claims, report)
        elif claims:
            self.deliver_all(claims, report)
        self._remember_due_again([d.id for d in dues])
        return True

    def find_due(self, now: dt.datetime, limit: int = CHUNK) -> list[Due]:
        with self.db.session() as session:
            return find_due(session, now, limit, skip=self._again)

    def _claim_all(self, dues: list[Due], now: dt.datetime, report: DispatchReport) -> list[Claim]:
        timed = []
        for due in dues:
            try:
                timed.append((due, *timing(due, now)))
            except ValueError as exc:
                park(self.db, due, str(exc))
                report.parked += 1
        claims = claim_all(self.db, timed, now, self.lease)
        report.claimed += len(claims)
        report.lost += len(timed) - len(claims)
        return claims

    def deliver_all(self, claims: Sequence[Claim], report: DispatchReport) -> None:
        """Send, then release. A failure is these subscribers' alone: it is logged and the loop goes on."""
        work = [(claim.due.id, claim.digest_date) for claim in claims]
        try:
            result = send_chunk(
                self.db,
                self.settings,
                work,
                now=self.clock(),
                transports=self._transports,
                phases=report.phases,
            )
            report.outcomes.update(
                outcome.status for outcome in result.outcomes if outcome.subscriber_id not in result.errors
            )
            report.errors += len(result.errors)
        except Exception:
            report.errors += len(claims)
            log.exception("dispatch: sending to subscribers %s failed", [c.due.id for c in claims])
        # Released even after an error, else a subscriber whose send always raises would be retried
        # every minute; a crash *before* this line leaves the leases to expire instead.
        with report.phases.timed("claim"):
            release_all(self.db, claims)

    def _remember_due_again(self, ids: list[int]) -> None:
        # A row is handled at most once per run: if it is due again at once (a retry pulled forward to the
        # past), it waits for the next run instead of spinning this one.
        now = self.clock()
        with self.db.session() as session:
            query = select(Subscriber.id).where(Subscriber.id.in_(ids), Subscriber.next_send_at <= now)
            self._again += list(session.scalars(query))

    # --- one subscription at a time (a worker's task; the tests' close look at the steps) ---------------
    def handle_one(self, report: DispatchReport) -> bool:
        """Claim and send one due subscription; False when nothing is due any more."""
        now = self.clock()
        dues = self.find_due(now, 1)
        if not dues:
            return False
        claims = self._claim_all(dues, now, report)
        if claims and self.queue is not None:
            self.queue.put(claims, report)
        elif claims:
            self.deliver_all(claims, report)
        self._remember_due_again([dues[0].id])
        return True

    def claim(self, due: Due, now: dt.datetime, report: DispatchReport) -> Claim | None:
        """Take the lease on one row with a conditional UPDATE; None if another process got it first."""
        try:
            digest_date, following = timing(due, now)
        except ValueError as exc:
            park(self.db, due, str(exc))
            report.parked += 1
            return None
        if not claim_one(self.db, due, now, self.lease):
            report.lost += 1
            return None
        report.claimed += 1
        return Claim(due, now + self.lease, digest_date, following)

    def deliver(self, claim: Claim, report: DispatchReport) -> None:
        self.deliver_all([claim], report)

    def deliver_now(self, claims: Sequence[Claim]) -> dict[str, int]:
        """A worker's whole job for queued claims: send, release, close; returns the outcomes counted."""
        report = DispatchReport()
        try:
            self.deliver_all(claims, report)
        finally:
            self._transports.close()
        return dict(report.outcomes) | ({"error": report.errors} if report.errors else {})

    def release(self, claim: Claim) -> None:
        """Clear our lease and move next_send_at on — unless a preferences change moved it already."""
        release_all(self.db, [claim])
