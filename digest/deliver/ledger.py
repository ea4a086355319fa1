"""The delivery ledger: what was sent to whom, claimed before it is sent, so a digest goes out at most once.

``deliveries`` holds one row per (subscriber, digest date), unique in the database; ``delivery_items`` one
row per paper sent, unique per (subscriber, paper), so no paper is ever sent to the same subscriber twice
(the ranker also skips them). An empty digest is not sent: its row says ``skipped_empty`` with the reason,
and that day is done.

**Claim first, then send: at most once.** Before any transport is called, one transaction inserts the row
as ``sending`` together with its items and the claiming process (``digest.owner``); a second transaction
marks it ``sent``. So a second run for the same day (another process, a lease that ran out, ``digest
send`` again) finds the row and does nothing, and two racing processes cannot both insert it.

**Three outcomes** (``digest.deliver.base``). Sent: ``record_sent``. Not sent (``TransportError``):
``record_failure`` releases the items (those papers may be picked again); a transient failure becomes
``failed`` with a retry time from the retry policy (``retry_time``), a permanent one ``refused``, which is
not retried for that date (not even by ``digest send`` run again) and counts towards disabling the channel
after ``DIGEST_MAX_FAILURES`` in a row (a success resets the count). Unknown (``OutcomeUnknown``: the
SMTP server or Slack may hold the message): ``record_unknown`` keeps the row ``sending`` with the reason.

**Stuck claims** — ``sending`` rows whose outcome is unknown or whose process is gone — are **never resent
automatically**; ``stuck_claims`` lists them (and ``orphaned_leases`` the schedule leases of processes that
are gone) for an operator, who may ``release_claim`` one once they know it was lost. A Slack bot message
carries its delivery key, so ``settle_claim`` can look it up in the channel's history instead of asking.

Over 400 lines because every write of a ``deliveries`` row is here, one at a time and in bulk: the
at-most-once rule has one home.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from digest.config import Settings
from digest.db import Database
from digest.deliver.base import OutcomeUnknown, TransportError
from digest.models import (
    Channel,
    Delivery,
    DeliveryItem,
    DeliveryStatus,
    Outcome,
    Subscriber,
    SubscriberStatus,
)
from digest.owner import this_process

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_FIRST = dt.timedelta(minutes=5)
BACKOFF_MAX = dt.timedelta(hours=2)


@dataclasses.dataclass
class DeliveryOutcome:
    subscriber_id: int
    digest_date: dt.date
    status: Outcome
    reason: str | None = None
    paper_ids: list[int] = dataclasses.field(default_factory=list)
    receipt: str | None = None  # Message-ID, Slack ts, or outbox file
    retry_at: dt.datetime | None = None  # transient failure: when to try this digest date again

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Item:
    """A paper listed in a claimed delivery."""

    paper_id: int
    score: float
    why: str


class NotStuck(Exception):
    """The ledger row does not exist or is not a stuck ``sending`` claim; the message says which."""


def ledger_row(session: Session, subscriber_id: int, digest_date: dt.date) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(Delivery.subscriber_id == subscriber_id, Delivery.digest_date == digest_date)
    )


def settled(
    session: Session, subscriber: Subscriber | None, outcome: DeliveryOutcome
) -> DeliveryOutcome | None:
    """An outcome when nothing is to be sent: unknown or inactive subscriber, or the day already settled."""
    row = None if subscriber is None else ledger_row(session, subscriber.id, outcome.digest_date)
    return settled_by(subscriber, row, outcome)


def ledger_rows(session: Session, pairs: Sequence[tuple[int, dt.date]]) -> dict[int, Delivery]:
    """The ledger rows of these (subscriber, digest date) pairs, with their papers, by subscriber."""
    wanted = set(pairs)
    query = (
        select(Delivery)
        .where(
            Delivery.subscriber_id.in_({sid for sid, _ in pairs}),
            Delivery.digest_date.in_({day for _, day in pairs}),
        )
        .options(selectinload(Delivery.items))
    )
    return {r.subscriber_id: r for r in session.scalars(query) if (r.subscriber_id, r.digest_date) in wanted}


def settled_by(
    subscriber: Subscriber | None, row: Delivery | None, outcome: DeliveryOutcome
) -> DeliveryOutcome | None:
    """``settled``, given the subscriber's ledger row for that date (None: there is none)."""
    if subscriber is None:
        return dataclasses.replace(outcome, reason="no such subscriber")
    if subscriber.status != SubscriberStatus.ACTIVE:
        return dataclasses.replace(outcome, reason=f"subscription is {subscriber.status}, not active")
    if row is None or (row.status == DeliveryStatus.FAILED and row.attempts < MAX_ATTEMPTS):
        return None
    paper_ids = [item.paper_id for item in row.items]
    if row.status == DeliveryStatus.FAILED:
        reason = f"gave up after {row.attempts} attempts: {row.reason}"
        return dataclasses.replace(outcome, reason=reason)
    if row.status == DeliveryStatus.REFUSED:
        return dataclasses.replace(outcome, reason=f"{row.reason} (not retried for this date)")
    if row.status == DeliveryStatus.SENDING:
        detail = row.reason or "stopped mid-send?"
        reason = f"claimed at {row.created_at:%Y-%m-%d %H:%M} UTC, never confirmed ({detail})"
    elif row.status == DeliveryStatus.SKIPPED_EMPTY:
        reason = f"skipped_empty: {row.reason}"
    else:
        reason = str(row.status)
    return dataclasses.replace(outcome, status=Outcome.ALREADY_SENT, reason=reason, paper_ids=paper_ids)


def record_empty(
    db: Database, settings: Settings, subscriber_id: int, outcome: DeliveryOutcome, now: dt.datetime
) -> DeliveryOutcome:
    reason = f"no new paper for your keywords in the last {settings.recency_days} days"
    try:
        with db.session() as session:
            channel = session.get(Subscriber, subscriber_id).channel  # type: ignore[union-attr]
            row = ledger_row(session, subscriber_id, outcome.digest_date)
            if row is None:
                row = Delivery(subscriber_id=subscriber_id, digest_date=outcome.digest_date, created_at=now)
                session.add(row)
            row.channel, row.status, row.reason, row.sent_at = (
                channel,
                DeliveryStatus.SKIPPED_EMPTY,
                reason,
                None,
            )
    except IntegrityError:
        return dataclasses.replace(
            outcome, status=Outcome.ALREADY_SENT, reason="another process settled it first"
        )
    return dataclasses.replace(outcome, status=Outcome.SKIPPED_EMPTY, reason=reason)


def claim(
    db: Database, channel: str, items: Sequence[Item], outcome: DeliveryOutcome, now: dt.datetime
) -> bool:
    """Insert (or take back a failed) ledger row as ``sending``, with its items, in one transaction."""
    try:
        with db.session() as session:
            row = ledger_row(session, outcome.subscriber_id, outcome.digest_date)
            if row is None:
                row = Delivery(
                    subscriber_id=outcome.subscriber_id, digest_date=outcome.digest_date, attempts=0
                )
                session.add(row)
            elif not _take_back(session, row):
                return False
            row.channel, row.status, row.reason, row.created_at = channel, DeliveryStatus.SENDING, None, now
            row.attempts, row.claimed_by = (row.attempts or 0) + 1, this_process()
            session.flush()
            session.add_all(_items(row.id, outcome.subscriber_id, items))
    except IntegrityError:
        return False
    return True


def claim_many(
    db: Database, entries: Sequence[tuple[DeliveryOutcome, Channel, Sequence[Item]]], now: dt.datetime
) -> set[int]:
    """``claim`` for many subscribers that have no ledger row for their date yet, in one transaction: the
    rows inserted unless another process inserted one first (those lose), then their items. Returns the
    subscribers whose claim this was. Falls back to one claim at a time if a paper was claimed meanwhile."""
    if not entries:
        return set()
    try:
        with db.session() as session:
            won = _insert_rows(session, entries, now)
            session.execute(
                insert(DeliveryItem),
                [
                    item
                    for e in entries
                    if e[0].subscriber_id in won
                    for item in _item_rows(won[e[0].subscriber_id], e)
                ],
            )
        return set(won)
    except IntegrityError:
        return {e[0].subscriber_id for e in entries if claim(db, e[1], e[2], e[0], now)}


def _insert_rows(
    session: Session, entries: Sequence[tuple[DeliveryOutcome, Channel, Sequence[Item]]], now: dt.datetime
) -> dict[int, int]:
    """Insert ``sending`` rows; the subscriber → row id of those inserted (a row that exists is left)."""
    values = [
        {
            "subscriber_id": outcome.subscriber_id,
            "digest_date": outcome.digest_date,
            "channel": channel,
            "status": DeliveryStatus.SENDING,
            "attempts": 1,
            "created_at": now,
            "claimed_by": this_process(),
        }
        for outcome, channel, _ in entries
    ]
    statement = _insert_ignoring(session, Delivery, ["subscriber_id", "digest_date"])
    returned = session.execute(statement.returning(Delivery.subscriber_id, Delivery.id), values)
    return {subscriber_id: row_id for subscriber_id, row_id in returned}


def _item_rows(
    delivery_id: int, entry: tuple[DeliveryOutcome, Channel, Sequence[Item]]
) -> list[dict[str, Any]]:
    return [
        {
            "delivery_id": delivery_id,
            "subscriber_id": entry[0].subscriber_id,
            "paper_id": item.paper_id,
            "position": position,
            "score": float(item.score),
            "why": item.why,
        }
        for position, item in enumerate(entry[2])
    ]


def _insert_ignoring(session: Session, table: type, unique: list[str]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING on the ``unique`` columns, in the session's dialect."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=unique)


def record_empty_many(
    db: Database,
    settings: Settings,
    entries: Sequence[tuple[DeliveryOutcome, Channel]],
    now: dt.datetime,
) -> list[DeliveryOutcome]:
    """``record_empty`` for many subscribers without a ledger row for their date, in one statement."""
    if not entries:
        return []
    reason = f"no new paper for your keywords in the last {settings.recency_days} days"
    values = [
        {
            "subscriber_id": o.subscriber_id,
            "digest_date": o.digest_date,
            "channel": channel,
            "status": DeliveryStatus.SKIPPED_EMPTY,
            "reason": reason,
            "attempts": 0,
            "created_at": now,
        }
        for o, channel in entries
    ]
    with db.session() as session:
        statement = _insert_ignoring(session, Delivery, ["subscriber_id", "digest_date"])
        won = set(session.scalars(statement.returning(Delivery.subscriber_id), values))
    settled = dataclasses.replace
    return [
        settled(o, status=Outcome.SKIPPED_EMPTY, reason=reason)
        if o.subscriber_id in won
        else settled(o, status=Outcome.ALREADY_SENT, reason="another process settled it first")
        for o, _ in entries
    ]


def record_sent_many(
    db: Database, sent: Sequence[tuple[DeliveryOutcome, str]], now: dt.datetime
) -> list[DeliveryOutcome]:
    """``record_sent`` for many deliveries: two statements, whatever their number."""
    if not sent:
        return []
    rows = [{"sid": o.subscriber_id, "day": o.digest_date, "receipt": receipt[:255]} for o, receipt in sent]
    table = Delivery.__table__  # executemany through Core: the ORM would want each row's primary key
    with db.session() as session:
        session.execute(
            update(table)
            .where(table.c.subscriber_id == bindparam("sid"), table.c.digest_date == bindparam("day"))
            .values(status=DeliveryStatus.SENT, sent_at=now, message_id=bindparam("receipt"), reason=None),
            rows,
        )
        session.execute(
            update(Subscriber)
            .where(
                Subscriber.id.in_([o.subscriber_id for o, _ in sent]),
                (Subscriber.failure_count != 0) | Subscriber.last_error.is_not(None),
            )
            .values(failure_count=0, last_error=None)
            .execution_options(synchronize_session=False)
        )
    return [dataclasses.replace(o, status=Outcome.SENT, receipt=receipt) for o, receipt in sent]


def _take_back(session: Session, row: Delivery) -> bool:
    # Conditional UPDATE: of two processes retrying the same failed row, exactly one wins.
    won = session.execute(
        update(Delivery)
        .where(Delivery.id == row.id, Delivery.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.SENDING)
        .execution_options(synchronize_session=False)
    ).rowcount
    return won == 1


def _items(delivery_id: int, subscriber_id: int, items: Sequence[Item]) -> list[DeliveryItem]:
    return [
        DeliveryItem(
            delivery_id=delivery_id,
            subscriber_id=subscriber_id,
            paper_id=item.paper_id,
            position=position,
            score=float(item.score),
            why=item.why,
        )
        for position, item in enumerate(items)
    ]


def record_sent(db: Database, outcome: DeliveryOutcome, receipt: str, now: dt.datetime) -> DeliveryOutcome:
    with db.session() as session:
        row = ledger_row(session, outcome.subscriber_id, outcome.digest_date)
        assert row is not None
        row.status, row.sent_at, row.message_id, row.reason = DeliveryStatus.SENT, now, receipt[:255], None
        subscriber = session.get(Subscriber, outcome.subscriber_id)
        if subscriber is not None:
            subscriber.failure_count, subscriber.last_error = 0, None
    return dataclasses.replace(outcome, status=Outcome.SENT, receipt=receipt)


def record_failure(
    session: Session, settings: Settings, outcome: DeliveryOutcome, exc: TransportError, now: dt.datetime
) -> DeliveryOutcome:
    """Mark the claim ``failed`` (transient) or ``refused`` (permanent) and release its papers; count a
    permanent failure against the channel (disabling it after too many); give a transient one a retry time."""
    kind = "permanent" if exc.permanent else "transient"
    reason = f"{kind}: {exc.message}"
    log.warning("delivery to subscriber %s failed (%s)", outcome.subscriber_id, reason)
    row = ledger_row(session, outcome.subscriber_id, outcome.digest_date)
    assert row is not None
    row.status = DeliveryStatus.REFUSED if exc.permanent else DeliveryStatus.FAILED
    row.reason = reason
    # Not delivered, so these papers were not sent: release them for a retry or a later digest.
    session.execute(delete(DeliveryItem).where(DeliveryItem.delivery_id == row.id))
    subscriber = session.get(Subscriber, outcome.subscriber_id)
    assert subscriber is not None
    subscriber.last_error = reason
    if exc.permanent:
        _count_permanent(settings, subscriber)
        return dataclasses.replace(outcome, reason=reason)
    return dataclasses.replace(outcome, reason=reason, retry_at=retry_time(row.attempts, now))


def _count_permanent(settings: Settings, subscriber: Subscriber) -> None:
    subscriber.failure_count = (subscriber.failure_count or 0) + 1
    if subscriber.failure_count >= settings.max_failures:
        subscriber.status = SubscriberStatus.DISABLED
        log.warning(
            "subscriber %s disabled after %s permanent failures", subscriber.id, subscriber.failure_count
        )


def retry_time(attempts: int, now: dt.datetime) -> dt.datetime | None:
    """The retry policy: exponential backoff after a transient failure; None after ``MAX_ATTEMPTS``."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)


def record_unknown(db: Database, outcome: DeliveryOutcome, exc: OutcomeUnknown) -> DeliveryOutcome:
    """Handed over, reply lost: the claim stays ``sending`` (never resent by itself), with the reason."""
    reason = f"outcome unknown: {exc.message}"
    log.warning("delivery to subscriber %s: %s", outcome.subscriber_id, reason)
    _note(db, outcome, reason)
    return dataclasses.replace(outcome, status=Outcome.UNKNOWN, reason=reason)


def note_unknown(db: Database, outcome: DeliveryOutcome, exc: Exception) -> None:
    """Not a TransportError: it may have gone out. The claim stays ``sending`` (at most once), with a note."""
    _note(db, outcome, f"outcome unknown: {exc!r}")


def _note(db: Database, outcome: DeliveryOutcome, reason: str) -> None:
    with db.session() as session:
        row = ledger_row(session, outcome.subscriber_id, outcome.digest_date)
        if row is not None:
            row.reason = reason[:1000]
