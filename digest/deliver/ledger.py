"""The delivery ledger: what was sent to whom, claimed before it is sent, so a digest goes out at most once.

``deliveries`` holds one row per (subscriber, digest date), unique in the database; ``delivery_items`` one
row per paper sent, unique per (subscriber, paper), so no paper is ever sent to the same subscriber twice
(the ranker also skips them). An empty digest is not sent: its row says ``skipped_empty`` with the reason,
and that day is done.

**Claim first, then send: at most once.** Before any transport is called, one transaction inserts the row
as ``sending`` together with its items; a second transaction marks it ``sent``. So a second run for the
same day (another process, a lease that ran out, ``digest send`` again) finds the row and does nothing,
and two racing processes cannot both insert it. A row left ``sending`` (the process died mid-send, or the
transport's outcome is unknown: the SMTP server or Slack may already hold the message) is **never resent
automatically**; ``stuck_claims`` lists it for an operator, who may ``release_claim`` it once they know
it was lost.

**Failures.** A ``TransportError`` means "certainly not delivered": the row becomes ``failed``, its items
are released (those papers may be picked again), and a transient failure gets a retry time from the retry
policy (``retry_time``); a permanent one counts towards disabling the channel after
``DIGEST_MAX_FAILURES`` in a row (a success resets the count).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import Database
from digest.deliver.base import TransportError
from digest.models import Delivery, DeliveryItem, DeliveryStatus, Outcome, Subscriber, SubscriberStatus

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
    if subscriber is None:
        return dataclasses.replace(outcome, reason="no such subscriber")
    if subscriber.status != SubscriberStatus.ACTIVE:
        return dataclasses.replace(outcome, reason=f"subscription is {subscriber.status}, not active")
    row = ledger_row(session, subscriber.id, outcome.digest_date)
    if row is None or (row.status == DeliveryStatus.FAILED and row.attempts < MAX_ATTEMPTS):
        return None
    paper_ids = [item.paper_id for item in row.items]
    if row.status == DeliveryStatus.FAILED:
        reason = f"gave up after {row.attempts} attempts: {row.reason}"
        return dataclasses.replace(outcome, reason=reason)
    if row.status == DeliveryStatus.SENDING:
        reason = f"claimed at {row.created_at:%Y-%m-%d %H:%M} UTC, never confirmed (stopped mid-send?)"
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
            row.attempts = (row.attempts or 0) + 1
            session.flush()
            session.add_all(_items(row.id, outcome.subscriber_id, items))
    except IntegrityError:
        return False
    return True


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
    """Mark the claim ``failed`` and release its papers; count a permanent failure against the channel
    (disabling it after too many); give a transient one its retry time."""
    kind = "permanent" if exc.permanent else "transient"
    reason = f"{kind}: {exc.message}"
    log.warning("delivery to subscriber %s failed (%s)", outcome.subscriber_id, reason)
    row = ledger_row(session, outcome.subscriber_id, outcome.digest_date)
    assert row is not None
    row.status, row.reason = DeliveryStatus.FAILED, reason
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


def note_unknown(db: Database, outcome: DeliveryOutcome, exc: Exception) -> None:
    """Not a TransportError: it may have gone out. The claim stays ``sending`` (at most once), with a note."""
    with db.session() as session:
        row = ledger_row(session, outcome.subscriber_id, outcome.digest_date)
        if row is not None:
            row.reason = f"outcome unknown: {exc!r}"[:1000]


def stuck_claims(session: Session) -> list[Delivery]:
    """Ledger rows left ``sending`` (the process stopped between claim and record); never resent by itself."""
    query = select(Delivery).where(Delivery.status == DeliveryStatus.SENDING).order_by(Delivery.id)
    return list(session.scalars(query))


def list_deliveries(
    session: Session, subscriber_id: int | None = None, day: dt.date | None = None, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest ledger rows (optionally one subscriber's, one digest date's), with how many papers each."""
    papers = (
        select(func.count(DeliveryItem.id)).where(DeliveryItem.delivery_id == Delivery.id).scalar_subquery()
    )
    query = select(Delivery, papers).order_by(Delivery.digest_date.desc(), Delivery.id.desc()).limit(limit)
    if subscriber_id is not None:
        query = query.where(Delivery.subscriber_id == subscriber_id)
    if day is not None:
        query = query.where(Delivery.digest_date == day)
    return [
        {
            "id": row.id,
            "subscriber": row.subscriber_id,
            "digest_date": str(row.digest_date),
            "channel": str(row.channel),
            "status": str(row.status),
            "papers": count,
            "attempts": row.attempts,
            "sent_at": f"{row.sent_at:%Y-%m-%d %H:%M} UTC" if row.sent_at else None,
            "reason": row.reason,
        }
        for row, count in session.execute(query).tuples()
    ]


def release_claim(session: Session, delivery_id: int) -> Delivery:
    """Delete one stuck claim (and, by cascade, its papers) so that day's digest can be sent again.

    Only an operator who has checked (mail log, the Slack channel) can say a claim was lost.
    """
    row = session.get(Delivery, delivery_id)
    if row is None:
        raise NotStuck(f"no delivery with id {delivery_id}")
    if row.status != DeliveryStatus.SENDING:
        raise NotStuck(
            f"delivery {delivery_id} is '{row.status}', not a stuck 'sending' claim; left as it is"
        )
    session.delete(row)
    session.flush()
    return row
