"""Who is due, and the lease that makes one process send each due digest: the schedule's only writer of
``subscribers.next_send_at`` after a send.

The life of a due subscription: **claim** — a conditional ``UPDATE subscribers SET claimed_until = now +
lease, claimed_by = this process WHERE id IN (…) AND status = 'active' AND next_send_at <= now AND (no
live lease)``; the rows that carry our lease afterwards are ours (on PostgreSQL a second UPDATE waits for
the first one's row locks and re-checks its WHERE against the committed rows; SQLite serialises writers).
**send** (``digest.dispatch.batch``). **release** — ``next_send_at`` moves to the first slot after *now*
(not after the missed slot: after downtime a subscriber gets at most one digest for the whole missed
period) and the lease is cleared, unless a preferences change moved it meanwhile. A process that dies
between claim and release leaves the rows claimable again once the lease runs out; the ledger's unique
(subscriber, digest date) row makes that retry ``already_sent`` if the digest did go out.

Due rows are found through the ``next_send_at`` index, oldest first: released rows move to the future,
so no query walks past the rows already handled.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from digest.calendar import digest_date_for, next_send_time, previous_send_time
from digest.db import Database
from digest.deliver.ledger import DeliveryOutcome
from digest.models import Subscriber, SubscriberStatus
from digest.owner import this_process

log = logging.getLogger(__name__)

# Longer than any one chunk's sends can take (SMTP timeout 30 s, Slack retries), short enough to retry soon.
DEFAULT_LEASE = dt.timedelta(minutes=10)


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


def find_due(session: Session, now: dt.datetime, limit: int, *, skip: Sequence[int] = ()) -> list[Due]:
    """Active subscriptions whose next send time has passed and that nobody holds, oldest first."""
    query = (
        select(
            Subscriber.id,
            Subscriber.next_send_at,
            Subscriber.timezone,
            Subscriber.send_time,
            Subscriber.weekdays,
            Subscriber.cadence,
        )
        .where(Subscriber.next_send_at <= now, Subscriber.status == SubscriberStatus.ACTIVE, unclaimed(now))
        .order_by(Subscriber.next_send_at, Subscriber.id)
        .limit(limit)
    )
    if skip:
        query = query.where(Subscriber.id.not_in(list(skip)))
    return [Due(*row) for row in session.execute(query)]


def unclaimed(now: dt.datetime) -> Any:
    return or_(Subscriber.claimed_until.is_(None), Subscriber.claimed_until < now)


def timing(due: Due, now: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The digest date of a claim and the next slot after ``now`` (ValueError: unusable schedule).

    The digest is dated by the latest slot at or before now: after downtime that is today's (one digest for
    the whole missed period); for a retry pulled forward (``retry_at``, not a slot) it is still the day of
    the slot that failed. Shared by every subscriber with the same schedule fields."""
    return _timing(due.timezone, due.send_time, due.weekdays, due.cadence, due.slot, now)


@lru_cache(maxsize=4096)
def _timing(
    timezone: str, send_time: str, weekdays: str, cadence: str, slot: dt.datetime, now: dt.datetime
) -> tuple[dt.date, dt.datetime]:
    schedule = Due(0, slot, timezone, send_time, weekdays, cadence)
    return digest_date_for(schedule, previous_send_time(schedule, now) or slot), next_send_time(schedule, now)


def claim_all(
    db: Database, timed: Sequence[tuple[Due, dt.date, dt.datetime]], now: dt.datetime, lease: dt.timedelta
) -> list[Claim]:
    """Take the lease on those of the due rows (with their digest date and next slot, ``timing``) still due
    and free, with one conditional UPDATE; the claims this process won (another one may have taken some
    first). A row whose next send time changed since it was read is let go at once."""
    if not timed:
        return []
    until, holder, ids = now + lease, this_process(), [d.id for d, _, _ in timed]
    with db.session() as session:
        session.execute(
            update(Subscriber)
            .where(
                Subscriber.id.in_(ids),
                Subscriber.status == SubscriberStatus.ACTIVE,
                Subscriber.next_send_at <= now,
                unclaimed(now),  # nobody holds a live lease on it
            )
            .values(claimed_until=until, claimed_by=holder)
            .execution_options(synchronize_session=False)
        )
        query = select(Subscriber.id, Subscriber.next_send_at).where(
            Subscriber.id.in_(ids), Subscriber.claimed_until == until, Subscriber.claimed_by == holder
        )
        held = {sid: slot for sid, slot in session.execute(query)}
        moved = [d.id for d, _, _ in timed if d.id in held and held[d.id] != d.slot]
        if moved:
            session.execute(
                update(Subscriber)
                .where(Subscriber.id.in_(moved), Subscriber.claimed_until == until)
                .values(claimed_until=None, claimed_by=None)
                .execution_options(synchronize_session=False)
            )
    return [Claim(d, until, day, following) for d, day, following in timed if held.get(d.id) == d.slot]


def claim_one(db: Database, due: Due, now: dt.datetime, lease: dt.timedelta) -> bool:
    """Take the lease on one row; False if another process got it first or it changed since read."""
    statement = (
        update(Subscriber)
        .where(
            Subscriber.id == due.id,
            Subscriber.next_send_at == due.slot,  # unchanged since we read it…
            Subscriber.status == SubscriberStatus.ACTIVE,
            unclaimed(now),  # …and nobody holds a live lease on it
        )
        .values(claimed_until=now + lease, claimed_by=this_process())
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        return session.execute(statement).rowcount == 1


def release_all(db: Database, claims: Sequence[Claim]) -> None:
    """Clear our leases and move each next_send_at on — unless a preferences change or a failed send's
    retry moved it already."""
    if not claims:
        return
    table = Subscriber.__table__  # executemany through Core: the ORM would want each row's primary key
    statement = (
        update(table)
        .where(table.c.id == bindparam("sid"), table.c.claimed_until == bindparam("until"))
        .values(
            next_send_at=case(
                (table.c.next_send_at == bindparam("slot"), bindparam("following")),
                else_=table.c.next_send_at,
            ),
            claimed_until=None,
            claimed_by=None,
        )
    )
    rows = [{"sid": c.due.id, "until": c.until, "slot": c.due.slot, "following": c.following} for c in claims]
    with db.session() as session:
        session.execute(statement, rows)


def park(db: Database, due: Due, error: str) -> None:
    """Take a row whose schedule cannot be computed (e.g. a time zone removed from the tz database) off the
    schedule and say why, instead of failing every minute."""
    log.error("dispatch: subscriber %s taken off the schedule: %s", due.id, error)
    statement = (
        update(Subscriber)
        .where(and_(Subscriber.id == due.id, Subscriber.next_send_at == due.slot))
        .values(next_send_at=None, last_error=f"schedule: {error}")
        .execution_options(synchronize_session=False)
    )
    with db.session() as session:
        session.execute(statement)


def reschedule_failed(session: Session, failed: DeliveryOutcome, now: dt.datetime) -> None:
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
