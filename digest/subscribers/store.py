"""Storing subscriptions: create, change, pause or resume, delete; scheduling rows that lack a send time.

The same address may not hold two live subscriptions (pending, active or paused); an unsubscribed one may
sign up again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.calendar import next_send_time
from digest.config import Settings
from digest.models import (
    LIVE_STATUSES,
    Channel,
    Delivery,
    DeliveryItem,
    Feedback,
    Subscriber,
    SubscriberModel,
    SubscriberStatus,
    utcnow,
)
from digest.subscribers.fields import (
    DESTINATION_FIELDS,
    PAUSE_FROM,
    RESUME_FROM,
    SCHEDULE_FIELDS,
    InvalidSubscription,
    clean_all,
    clean_channel,
    clean_preference,
    clean_subscription,
)


class WrongStatus(ValueError):
    """A pause or resume that does not apply to the subscription's current status."""


def create_subscriber(
    session: Session,
    settings: Settings,
    *,
    email: str | None = None,
    slack_webhook_url: str | None = None,
    slack_channel: str | None = None,
    keywords: str | Iterable[str] = (),
    excluded_keywords: str | Iterable[str] = (),
    send_time: str = "08:00",
    timezone: str = "UTC",
    digest_size: int | str | None = None,
    weekdays: str | Iterable[int | str] = "0123456",
    cadence: str = "daily",
    status: str = SubscriberStatus.ACTIVE,
    keywords_required: bool = True,
) -> Subscriber:
    """Check every field, store the subscription and schedule its first digest; nothing is stored on error.

    ``keywords_required=False``: a sign-up that brings a library instead (``digest.subscribers.library``).
    """
    values = {
        "keywords": keywords,
        "excluded_keywords": excluded_keywords,
        "send_time": send_time,
        "timezone": timezone,
        "digest_size": digest_size,
        "weekdays": weekdays,
        "cadence": cadence,
        "status": status,
    }
    destinations = {"email": email, "slack_webhook_url": slack_webhook_url, "slack_channel": slack_channel}
    channel, destination, prefs = clean_subscription(settings, destinations, values, keywords_required)
    _refuse_duplicate(session, channel, destination)
    subscriber = Subscriber(channel=channel, failure_count=0, created_at=utcnow(), **destination, **prefs)
    subscriber.next_send_at = _next_send(subscriber)
    session.add(subscriber)
    session.flush()
    return subscriber


def _refuse_duplicate(
    session: Session, channel: Channel, destination: dict[str, str], *, other_than: int | None = None
) -> None:
    ((column_name, value),) = destination.items()
    column = getattr(Subscriber, column_name)
    match = func.lower(column) == value.lower() if column_name == "email" else column == value
    query = select(Subscriber.id).where(
        match, Subscriber.channel == channel, Subscriber.status.in_(LIVE_STATUSES)
    )
    if other_than is not None:
        query = query.where(Subscriber.id != other_than)
    clash = session.scalar(query.limit(1))
    if clash is not None:
        raise InvalidSubscription(
            column_name,
            "this address already has a subscription (pending, active or paused)",
        )


def update_preferences(
    session: Session, subscriber: Subscriber, *, keywords_required: bool = True, **fields: Any
) -> Subscriber:
    """Change preference fields (same checks as sign-up); all or nothing. Reschedules when timing changed.

    ``keywords_required=False`` lets a subscriber with a library clear their keywords."""
    default = subscriber.digest_size
    cleaned = clean_all(
        {
            name: lambda name=name, value=value: clean_preference(name, value, default, keywords_required)
            for name, value in fields.items()
        }
    )
    for name, value in cleaned.items():
        setattr(subscriber, name, value)
    if cleaned.get("status") == SubscriberStatus.ACTIVE:
        # Re-activating a disabled channel gives it a fresh run of allowed failures.
        subscriber.failure_count, subscriber.last_error = 0, None
    if SCHEDULE_FIELDS & cleaned.keys():
        subscriber.next_send_at = _next_send(subscriber)
    session.flush()
    return subscriber


def edit_subscriber(
    session: Session, settings: Settings, subscriber: Subscriber, **fields: Any
) -> Subscriber:
    """The operator's edit: preferences and, if given, a new destination (which may change the channel).

    Every field is checked as at sign-up and all errors are named; nothing changes unless all are good.
    """
    destination = {name: fields.pop(name, None) for name in DESTINATION_FIELDS}
    given = {name: value for name, value in destination.items() if value not in (None, "")}
    checks: dict[str, Callable[[], Any]] = {
        "preferences": lambda: update_preferences(session, subscriber, **fields)
    }
    if given:
        checks["channel"] = lambda: clean_channel(settings, *(given.get(name) for name in DESTINATION_FIELDS))
    with session.begin_nested():  # a savepoint: a bad field leaves the row as it was
        cleaned = clean_all(checks)
        if given:
            _move(session, subscriber, *cleaned["channel"])
    return subscriber


def _move(session: Session, subscriber: Subscriber, channel: Channel, destination: dict[str, str]) -> None:
    _refuse_duplicate(session, channel, destination, other_than=subscriber.id)
    subscriber.channel = channel
    for name in DESTINATION_FIELDS:
        setattr(subscriber, name, destination.get(name))
    subscriber.failure_count, subscriber.last_error = 0, None
    session.flush()


def set_status(session: Session, subscriber: Subscriber, status: SubscriberStatus) -> Subscriber:
    """Pause (from active) or resume (from any stopped state: the operator's word replaces an opt-in)."""
    allowed = PAUSE_FROM if status == SubscriberStatus.PAUSED else RESUME_FROM
    if subscriber.status not in allowed:
        raise WrongStatus(f"subscriber {subscriber.id} is {subscriber.status}: nothing to change")
    update_preferences(session, subscriber, status=status)
    if status == SubscriberStatus.ACTIVE and subscriber.confirmed_at is None:
        subscriber.confirmed_at = utcnow()
    return subscriber


def delete_subscriber(session: Session, subscriber: Subscriber) -> None:
    """Erase the subscription and everything recorded about it (feedback, ledger, model)."""
    sid = subscriber.id
    for table in (DeliveryItem, Delivery, Feedback, SubscriberModel):
        session.execute(delete(table).where(table.subscriber_id == sid))
    session.delete(subscriber)
    session.flush()


def purge_unconfirmed(session: Session, max_age: dt.timedelta, *, now: dt.datetime | None = None) -> int:
    """Erase web sign-ups never confirmed within ``max_age`` (their confirmation link has expired by then).

    Double opt-in means an unconfirmed address is not ours to keep: someone may have typed another
    person's address, so it is deleted rather than left pending for ever.
    """
    cutoff = (now or utcnow()) - max_age
    stale = select(Subscriber).where(
        Subscriber.status == SubscriberStatus.PENDING, Subscriber.created_at < cutoff
    )
    rows = list(session.scalars(stale))
    for subscriber in rows:
        delete_subscriber(session, subscriber)
    return len(rows)


def _next_send(subscriber: Subscriber) -> dt.datetime | None:
    if subscriber.status != SubscriberStatus.ACTIVE:
        return None
    return next_send_time(subscriber, utcnow())


def schedule_unscheduled(session: Session, *, now: dt.datetime | None = None) -> int:
    """Give active subscribers without a next send time one (e.g. a row added by hand); return how many."""
    now = now or utcnow()
    query = select(Subscriber).where(
        Subscriber.status == SubscriberStatus.ACTIVE,
        Subscriber.next_send_at.is_(None),
        Subscriber.claimed_until.is_(None),
    )
    count = 0
    for subscriber in session.scalars(query):
        if (subscriber.last_error or "").startswith("schedule:"):
            continue  # parked by dispatch; a preferences change reschedules it
        try:
            subscriber.next_send_at = next_send_time(subscriber, now)
            count += 1
        except ValueError as exc:
            subscriber.last_error = f"schedule: {exc}"
    return count
