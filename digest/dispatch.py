"""The daily run: send each due subscriber's digest once, record it, and move their next send time.

Why the schedule lives in our own ``subscribers`` table (``next_send_at`` + a ``claimed_until`` lease)
and not as one APScheduler job per subscriber: APScheduler 3's FAQ, "How do I share a single job store
among one or more worker processes?" answers "Short answer: You can't." — a persistent job store
shared by two processes leads to duplicate or missed runs, because APScheduler has no inter-process
synchronisation (https://apscheduler.readthedocs.io/en/3.x/faq.html). Two ``digest serve`` processes
on one PostgreSQL database are a supported setup, so each process keeps only a few in-memory periodic
jobs (``digest.jobs``) and the database row is the single source of truth, claimed atomically.

The life of one due subscription (each step its own short transaction):

1. **claim** — ``UPDATE subscribers SET claimed_until = now + lease WHERE id = :id AND next_send_at =
   :seen AND status = 'active' AND (claimed_until IS NULL OR claimed_until < now)``. Exactly one
   process sees ``rowcount == 1``: on PostgreSQL the second UPDATE waits for the first one's row lock
   and then re-checks its WHERE against the committed row (READ COMMITTED); SQLite serialises writers.
2. **send** — ``send_digest`` composes, claims the ledger row, sends and records (``digest.deliver.ledger``).
3. **release** — ``next_send_at`` moves to the first slot after *now* (not after the missed slot: after
   downtime a subscriber gets at most one digest for the whole missed period) and the lease is cleared.

This module is the only writer of ``next_send_at`` after a send: at release, or when a failed send's
retry time (the ledger's retry policy) pulls it forward. A process that dies (or is killed) between claim
and release leaves the row claimable again once the lease runs out; the ledger's unique (subscriber,
digest date) row makes that retry ``already_sent`` if the digest did go out, so there is never a double
send and never a silently lost day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from digest.calendar import digest_date_for, next_send_time, previous_send_time
from digest.compose import RenderedDigest, render_digest
from digest.config import Settings
from digest.db import Database
from digest.deliver import ledger
from digest.deliver.base import OutcomeUnknown, TransportError
from digest.deliver.ledger import DeliveryOutcome
from digest.deliver.transports import Transports
from digest.models import Outcome, Subscriber, SubscriberStatus, utcnow
from digest.owner import this_process
from digest.subscribers import local_date

log = logging.getLogger(__name__)

# Longer than any one send can take (SMTP timeout 30 s, Slack retries), short enough to retry soon.
DEFAULT_LEASE = dt.timedelta(minutes=10)
# Candidates read per query; claims are still made (and may be lost) one by one.
BATCH = 64


# --- one digest -------------------------------------------------------------------------------------------


def send_digest(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    transports: Transports | None = None,
) -> DeliveryOutcome:
    """Send ``subscriber_id``'s digest for ``digest_date`` at most once (``digest.deliver.ledger``).

    A ``TransportError`` (not sent) or ``OutcomeUnknown`` is caught here, and only here: the ledger records
    it; any other exception from a transport is a bug with an unknown outcome, so the claim stays and the
    exception goes on.
    """
    now = now or utcnow()
    own = transports is None
    transports = transports or Transports(settings)
    try:
        return _send(db, settings, subscriber_id, digest_date, now, dry_run, transports)
    finally:
        if own:
            transports.close()


def _send(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date,
    now: dt.datetime,
    dry_run: bool,
    transports: Transports,
) -> DeliveryOutcome:
    outcome = DeliveryOutcome(subscriber_id, digest_date, Outcome.FAILED)
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        done = ledger.settled(session, subscriber, outcome)
        if done is not None:
            return done
        assert subscriber is not None
        rendered = render_digest(session, settings, subscriber, digest_date, now)
    outcome.paper_ids = rendered.paper_ids
    if dry_run:
        return dataclasses.replace(outcome, status=Outcome.DRY_RUN)
    if not rendered.paper_ids:
        return ledger.record_empty(db, settings, subscriber_id, outcome, now)
    if not ledger.claim(db, rendered.channel, _items(rendered), outcome, now):
        reason = "another process claimed it first"
        return dataclasses.replace(outcome, status=Outcome.ALREADY_SENT, reason=reason)
    return _deliver(db, settings, rendered, outcome, now, transports)


def _items(rendered: RenderedDigest) -> list[ledger.Item]:
    return [ledger.Item(pick.paper.id, pick.score, pick.why) for pick in rendered.picks]


def _deliver(
    db: Database,
    settings: Settings,
    rendered: RenderedDigest,
    outcome: DeliveryOutcome,
    now: dt.datetime,
    transports: Transports,
) -> DeliveryOutcome:
    try:
        receipt = transports.for_channel(rendered.channel).send(rendered.message)
    except TransportError as exc:
        with db.session() as session:
            failed = ledger.record_failure(session, settings, outcome, exc, now)
            _reschedule_failed(session, failed, now)
        return failed
    except OutcomeUnknown as exc:
        return ledger.record_unknown(db, outcome, exc)
    except Exception as exc:
        ledger.note_unknown(db, outcome, exc)
        raise
    return ledger.record_sent(db, outcome, receipt, now)


def _reschedule_failed(session: Session, failed: DeliveryOutcome, now: dt.datetime) -> None:
    """A disabled channel leaves the schedule; a transient failure pulls the next send forward to its retry
    time, so the dispatch loop comes back for the same digest date (release keeps a moved next_send_at)."""
    subscriber = session.get(Subscriber, failed.subscriber_id)
    assert subscriber is not None
    if subscriber.status == SubscriberStatus.DISABLED:
        subscriber.next_send_at = None
        return
    upcoming, retry_at = subscriber.next_send_at, failed.retry_at
    if retry_at is not None and (upcoming is None or upcoming <= now or retry_at < upcoming):
        subscriber.next_send_at = retry_at


# --- a batch (``digest send``) ------------------------------------------------------------------------------


@dataclasses.dataclass
class BatchReport:
    outcomes: list[DeliveryOutcome] = dataclasses.field(default_factory=list)

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
) -> BatchReport:
    """Send each subscriber's digest over shared transports; one subscriber's error never stops the batch.

    Without ``digest_date`` each subscriber gets the digest of their own local date at ``now``.
    """
    now = now or utcnow()
    report = BatchReport()
    transports = Transports(settings)
    try:
        for subscriber_id in subscriber_ids:
            report.outcomes.append(
                _send_one(db, settings, subscriber_id, digest_date, now, dry_run, transports)
            )
    finally:
        transports.close()
    return report


def _send_one(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date | None,
    now: dt.datetime,
    dry_run: bool,
    transports: Transports,
) -> DeliveryOutcome:
    if digest_date is None:
        with db.session() as session:
            digest_date = local_date(session, subscriber_id, now)
    try:
        return send_digest(
            db, settings, subscriber_id, digest_date, now=now, dry_run=dry_run, transports=transports
        )
    except Exception as exc:  # a bug or an unknown-outcome error: this subscriber's alone
        log.exception("sending to subscriber %s failed", subscriber_id)
        return DeliveryOutcome(subscriber_id, digest_date, Outcome.FAILED, reason=f"error: {exc!r}")


# --- the dispatch loop ----------------------------------------------------------------------------------


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
            .where(
                Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.next_send_at <= now, _unclaimed(now)
            )
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
                Subscriber.status == SubscriberStatus.ACTIVE,
                _unclaimed(now),  # …and nobody holds a live lease on it
            )
            .values(claimed_until=until, claimed_by=this_process())
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
                claimed_by=None,
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
