"""The ledger as operators see and repair it: deliveries listed, claims never confirmed (``sending``
rows whose outcome is unknown or whose process is gone) and schedule leases of processes that are gone,
and what may be done about each. Nothing here resends by itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.db import Database
from digest.deliver.base import Transport, delivery_key
from digest.deliver.ledger import DeliveryOutcome, NotStuck, record_sent
from digest.models import Channel, Delivery, DeliveryItem, DeliveryStatus, Outcome, Subscriber
from digest.owner import Holder, holder_state


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
