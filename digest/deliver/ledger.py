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
from digest.deliver.base import OutcomeUnknown, Transport, TransportError, delivery_key
from digest.models import (
    Channel,
    Delivery,
    DeliveryItem,
    DeliveryStatus,
    Outcome,
    Subscriber,
    SubscriberStatus,
)
from digest.owner import Holder, holder_state, this_process

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


@dataclasses.dataclass(frozen=True)
class Stuck:
    """A ``sending`` claim and why it is stuck: ``unknown`` (reason recorded), ``gone`` (its process died
    mid-send), ``running`` (a live process is sending it now) or ``elsewhere`` (a process on another host)."""

    delivery: Delivery
    state: str


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


def stuck_states(session: Session) -> list[Stuck]:
    """Every ``sending`` claim with its state; only ``running`` ones may still settle by themselves."""
    return [Stuck(row, _stuck_state(row)) for row in stuck_claims(session)]


def _stuck_state(row: Delivery) -> str:
    if row.reason and row.reason.startswith("outcome unknown"):
        return "unknown"
    return str(holder_state(row.claimed_by))


def orphaned_leases(session: Session, now: dt.datetime) -> list[Subscriber]:
    """Subscribers whose dispatch lease is still live but held by a process of this host that is gone.

    Such a lease hides the subscriber from every dispatcher until it runs out; ``break_lease`` ends it."""
    query = select(Subscriber).where(Subscriber.claimed_until > now).order_by(Subscriber.id)
    return [row for row in session.scalars(query) if holder_state(row.claimed_by) == Holder.GONE]


def break_lease(session: Session, subscriber_id: int, now: dt.datetime, *, force: bool = False) -> Subscriber:
    """End a live dispatch lease whose holder is gone (``force``: whatever its holder), so the next dispatch
    run takes the subscriber up at once. Safe: the ledger row, not the lease, guards against a second send."""
    row = session.get(Subscriber, subscriber_id)
    if row is None:
        raise NotStuck(f"no subscriber with id {subscriber_id}")
    if row.claimed_until is None or row.claimed_until <= now:
        raise NotStuck(f"subscriber {subscriber_id} holds no live lease; left as it is")
    state = holder_state(row.claimed_by)
    if state != Holder.GONE and not force:
        where = "runs" if state == Holder.RUNNING else "may run (another host)"
        raise NotStuck(f"the lease holder {row.claimed_by} {where}; --force to break it anyway")
    row.claimed_until, row.claimed_by = None, None
    return row


def settle_claim(
    db: Database, transport: Transport, delivery_id: int, now: dt.datetime
) -> DeliveryOutcome | None:
    """Look a stuck claim's message up where the channel keeps history (a Slack bot's conversation).

    Found: the row becomes ``sent``. Not there: the claim is released, so sending that date again posts it
    once. Returns the outcome, or None when the channel cannot tell (``OutcomeUnknown`` is raised)."""
    with db.session() as session:
        row = session.get(Delivery, delivery_id)
        if row is None or row.status != DeliveryStatus.SENDING or row.channel != Channel.SLACK_BOT:
            raise NotStuck(f"delivery {delivery_id} is not a stuck Slack bot claim; left as it is")
        subscriber = session.get(Subscriber, row.subscriber_id)
        destination, since = (subscriber.slack_channel if subscriber else None) or "", row.created_at
        outcome = DeliveryOutcome(row.subscriber_id, row.digest_date, Outcome.SENT)
    receipt = transport.find(destination, delivery_key(outcome.subscriber_id, outcome.digest_date), since)
    if receipt is not None:
        return record_sent(db, outcome, receipt, now)
    with db.session() as session:
        release_claim(session, delivery_id)
    return dataclasses.replace(outcome, status=Outcome.FAILED, reason="not in the channel: released")


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
