"""The dispatch loop: claim one due subscription at a time, send its digest, move its next send time.

Why the schedule lives in our own ``subscribers`` table (``next_send_at`` + a ``claimed_until`` lease)
and not as one APScheduler job per subscriber: APScheduler 3's FAQ, "How do I share a single job store
among one or more worker processes?" answers "Short answer: You can't." — a persistent job store
shared by two processes leads to duplicate or missed runs, because APScheduler has no inter-process
synchronisation (https://apscheduler.readthedocs.io/en/3.x/faq.html). Two ``digest serve`` processes
on one PostgreSQL database are a supported setup, so each process keeps only a few in-memory periodic
jobs (``digest.schedule``) and the database row is the single source of truth, claimed atomically.

The life of one due subscription (each step its own short transaction):

1. **claim** — ``UPDATE subscribers SET claimed_until = now + lease WHERE id = :id AND next_send_at =
   :seen AND status = 'active' AND (claimed_until IS NULL OR claimed_until < now)``. Exactly one
   process sees ``rowcount == 1``: on PostgreSQL the second UPDATE waits for the first one's row lock
   and then re-checks its WHERE against the committed row (READ COMMITTED); SQLite serialises writers.
2. **send** — ``send_digest`` builds, sends and records the delivery in the ledger.
3. **release** — ``next_send_at`` moves to the first slot after *now* (not after the missed slot: after
   downtime a subscriber gets at most one digest for the whole missed period) and the lease is cleared.

``next_send_at`` only moves at release. A process that dies (or is killed) between claim and release
leaves the row claimable again once the lease runs out; the ledger's unique (subscriber, digest date)
row makes that retry ``already_sent`` if the digest did go out, so there is never a double send and
never a silently lost day.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import case, or_, select, update

from digest.config import Settings
from digest.db import Database
from digest.deliver.service import Transports, send_digest
from digest.models import Subscriber, utcnow
from digest.schedule import digest_date_for, next_send_time, previous_send_time

log = logging.getLogger(__name__)

# Longer than any one send can take (SMTP timeout 30 s, Slack retries), short enough to retry soon.
DEFAULT_LEASE = dt.timedelta(minutes=10)
# Candidates read per query; claims are still made (and may be lost) one by one.
BATCH = 64


@dataclass(frozen=True)
class Due:
    """A subscription seen due: its id, the ``next_send_at`` we saw, and its schedule fields."""

    id: int
    slot: dt.datetime
    timezone: str
    send_time: str
    weekdays: str
    cadence: str


@dataclass(frozen=True)
class Claim:
    due: Due
    until: dt.datetime
    digest_date: dt.date
    following: dt.datetime


class Queue(Protocol):
    """Where claims go when other processes send them (``digest.workers.CeleryQueue``)."""

    def put(self, claim: Claim, report: DispatchReport) -> None: ...


@dataclass
class DispatchReport:
    claimed: int = 0
    lost: int = 0  # another process claimed the row first
    parked: int = 0  # schedule fields unusable: next_send_at cleared, last_error set
    errors: int = 0  # send_digest raised
    outcomes: Counter[str] = field(default_factory=Counter)

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
    ) -> None:
        self.db, self.settings, self.clock, self.lease = db, settings, clock, lease
        self.stop = stop or threading.Event()
        self.queue = queue  # with Celery workers (``digest.workers``), claims are sent by them
        self._batch: list[Due] = []
        self._handled: set[int] = set()
        self._transports = Transports(settings)

    def run(self) -> DispatchReport:
        """Send everything due now (the periodic job). Stops early, between two sends, on ``stop``."""
        report = DispatchReport()
        self._batch.clear()
        self._handled.clear()
        try:
            while not self.stop.is_set() and self.handle_one(report):
                pass
        finally:
            self._transports.close()  # e.g. the one SMTP connection this run's mails shared
        if report.claimed or report.parked or report.errors:
            log.info("dispatch: %s", report.as_dict())
        return report

    def handle_one(self, report: DispatchReport) -> bool:
        """Claim and send one due subscription; False when nothing is due any more."""
        now = self.clock()
        due = self._next_due(now)
        if due is None:
            return False
        self._handled.add(due.id)
        claim = self.claim(due, now, report)
        if claim is not None and self.queue is not None:
            self.queue.put(claim, report)
        elif claim is not None:
            self.deliver(claim, report)
        return True

    def _next_due(self, now: dt.datetime) -> Due | None:
        if not self._batch:
            # A row is handled at most once per run: if it is due again at once (a retry pulled
            # forward to the past), it waits for the next run instead of spinning this one.
            self._batch = [due for due in self.find_due(now) if due.id not in self._handled]
            # Two processes reading the same candidates in the same order would collide on every
            # claim; shuffling the small batch spreads them out (a lost claim is harmless, only slower).
            random.shuffle(self._batch)
        return self._batch.pop() if self._batch else None

    def find_due(self, now: dt.datetime, limit: int = BATCH) -> list[Due]:
        query = (
            select(
                Subscriber.id,
                Subscriber.next_send_at,
                Subscriber.timezone,
                Subscriber.send_time,
                Subscriber.weekdays,
                Subscriber.cadence,
            )
            .where(Subscriber.status == "active", Subscriber.next_send_at <= now, _unclaimed(now))
            .order_by(Subscriber.next_send_at, Subscriber.id)
            .limit(limit)
        )
        with self.db.session() as session:
            return [Due(*row) for row in session.execute(query)]

    def claim(self, due: Due, now: dt.datetime, report: DispatchReport) -> Claim | None:
        """Take the lease on one row with a conditional UPDATE; None if another process got it first."""
        try:
            # The digest is dated by the latest slot at or before now: after downtime that is today's
            # (one digest for the whole missed period); for a retry that the delivery service pulled
            # forward (``retry_at``, not a slot) it is still the day of the slot that failed.
            digest_date = digest_date_for(due, previous_send_time(due, now) or due.slot)
            following = next_send_time(due, now)
        except ValueError as exc:
            self._park(due, str(exc), report)
            return None
        until = now + self.lease
        statement = (
            update(Subscriber)
            .where(
                Subscriber.id == due.id,
                Subscriber.next_send_at == due.slot,  # unchanged since we read it…
                Subscriber.status == "active",
                _unclaimed(now),  # …and nobody holds a live lease on it
            )
            .values(claimed_until=until)
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as session:
            won = session.execute(statement).rowcount == 1
        if not won:
            report.lost += 1
            return None
        report.claimed += 1
        return Claim(due, until, digest_date, following)

    def deliver(self, claim: Claim, report: DispatchReport) -> None:
        """Send, then release. A failure is this subscriber's alone: it is logged and the loop goes on."""
        try:
            due, transports = claim.due, self._transports
            outcome = send_digest(
                self.db, self.settings, due.id, claim.digest_date, now=self.clock(), transports=transports
            )
            report.outcomes[outcome.status] += 1
        except Exception:
            report.errors += 1
            log.exception("dispatch: sending to subscriber %s failed", claim.due.id)
        # Released even after an error, else a subscriber whose send always raises would be retried
        # every minute; a crash *before* this line leaves the lease to expire instead.
        self.release(claim)

    def deliver_now(self, claim: Claim) -> str:
        """A worker's whole job for one queued claim: send, release, close; returns the outcome."""
        report = DispatchReport()
        try:
            self.deliver(claim, report)
        finally:
            self._transports.close()
        return next(iter(report.outcomes), "error")

    def release(self, claim: Claim) -> None:
        """Clear our lease and move next_send_at on — unless a preferences change moved it already."""
        statement = (
            update(Subscriber)
            .where(Subscriber.id == claim.due.id, Subscriber.claimed_until == claim.until)
            .values(
                next_send_at=case(
                    (Subscriber.next_send_at == claim.due.slot, claim.following),
                    else_=Subscriber.next_send_at,
                ),
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as session:
            session.execute(statement)

    def _park(self, due: Due, error: str, report: DispatchReport) -> None:
        # A row whose schedule cannot be computed (e.g. a time zone removed from the tz database) would
        # be due forever; take it off the schedule and say why, instead of failing every minute.
        log.error("dispatch: subscriber %s taken off the schedule: %s", due.id, error)
        statement = (
            update(Subscriber)
            .where(Subscriber.id == due.id, Subscriber.next_send_at == due.slot)
            .values(next_send_at=None, last_error=f"schedule: {error}")
            .execution_options(synchronize_session=False)
        )
        with self.db.session() as session:
            session.execute(statement)
        report.parked += 1


def _unclaimed(now: dt.datetime) -> Any:
    return or_(Subscriber.claimed_until.is_(None), Subscriber.claimed_until < now)
