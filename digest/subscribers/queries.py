"""Finding and describing subscribers: by id or address, lists, one subscriber's details and votes."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.calendar import digest_date_for
from digest.models import Channel, Feedback, Paper, Subscriber, SubscriberStatus
from digest.subscribers.fields import STATUSES, clean_choice


def active_subscriber_ids(session: Session) -> list[int]:
    query = select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ACTIVE).order_by(Subscriber.id)
    return list(session.scalars(query))


def subscriber_channels(session: Session, ids: list[int]) -> set[str]:
    """The channels ``ids`` use (for a long list: every channel in use, rather than a huge IN list)."""
    query = select(Subscriber.channel).distinct()
    if len(ids) <= 1000:
        query = query.where(Subscriber.id.in_(ids))
    return {str(channel) for channel in session.scalars(query)}


def find_subscriber_ids(session: Session, reference: str | None) -> list[int]:
    """``None``: every active subscriber. Else an id, an email address or a Slack channel id (any status)."""
    if reference is None:
        return active_subscriber_ids(session)
    text = reference.strip()
    if text.isdigit():
        match = select(Subscriber.id).where(Subscriber.id == int(text))
    else:
        match = select(Subscriber.id).where(
            (func.lower(Subscriber.email) == text.lower()) | (Subscriber.slack_channel == text)
        )
    return list(session.scalars(match.order_by(Subscriber.id)))


def local_date(session: Session, subscriber_id: int, now: dt.datetime) -> dt.date:
    """The subscriber's own calendar date at ``now`` (UTC date for an unknown subscriber)."""
    subscriber = session.get(Subscriber, subscriber_id)
    return digest_date_for(subscriber, now) if subscriber is not None else now.date()


def find_subscriber(session: Session, reference: str) -> Subscriber:
    """The one subscriber an id, email address or Slack channel id names (LookupError otherwise)."""
    ids = find_subscriber_ids(session, reference)
    if len(ids) != 1:
        found = "no subscriber" if not ids else f"{len(ids)} subscribers (ids {', '.join(map(str, ids))})"
        raise LookupError(f"{reference!r} matches {found}")
    subscriber = session.get(Subscriber, ids[0])
    assert subscriber is not None
    return subscriber


def list_subscribers(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    """One summary per subscriber (oldest first), optionally only those with ``status``."""
    query = select(Subscriber).order_by(Subscriber.id)
    if status is not None:
        query = query.where(Subscriber.status == clean_choice("status", status, STATUSES))
    return [summary(subscriber) for subscriber in session.scalars(query)]


def summary(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "status": str(subscriber.status),
        "channel": str(subscriber.channel),
        "address": shown_address(subscriber),
        "keywords": list(subscriber.keywords or []),
        "next_send_at": _iso(subscriber.next_send_at),
    }


def shown_address(subscriber: Subscriber) -> str:
    """Where digests go, fit to print: a webhook URL is a credential, so only its host is shown."""
    if subscriber.channel == Channel.SLACK_WEBHOOK:
        return f"webhook {urlsplit(subscriber.slack_webhook_url or '').hostname}/…"
    return subscriber.address


def details(session: Session, subscriber: Subscriber, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything an operator asks about one subscriber; ``deliveries`` are their latest ledger rows."""
    votes = _latest_votes(session, subscriber.id)
    return summary(subscriber) | {
        "excluded_keywords": list(subscriber.excluded_keywords or []),
        "schedule": {
            "time": subscriber.send_time,
            "timezone": subscriber.timezone,
            "weekdays": subscriber.weekdays,
            "cadence": str(subscriber.cadence),
            "size": subscriber.digest_size,
        },
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "failure_count": subscriber.failure_count,
        "last_error": subscriber.last_error,
        "votes": {"up": sum(v > 0 for v in votes.values()), "down": sum(v < 0 for v in votes.values())},
        "deliveries": deliveries,
    }


def _latest_votes(session: Session, subscriber_id: int) -> dict[int, int]:
    """paper id → the subscriber's current vote on it (history is kept; the newest wins)."""
    query = (
        select(Feedback.paper_id, Feedback.value)
        .where(Feedback.subscriber_id == subscriber_id)
        .order_by(Feedback.created_at, Feedback.id)
    )
    return dict(session.execute(query).tuples().all())


def feedback_of(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """Every 👍/👎 the subscriber gave, newest first, with the paper it was about."""
    query = (
        select(Feedback, Paper.arxiv_id, Paper.title)
        .join(Paper, Paper.id == Feedback.paper_id)
        .where(Feedback.subscriber_id == subscriber_id)
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
    )
    return [
        {
            "at": _iso(row.created_at),
            "vote": "up" if row.value > 0 else "down",
            "source": str(row.source),
            "paper_id": row.paper_id,
            "arxiv_id": arxiv_id,
            "title": title,
        }
        for row, arxiv_id, title in session.execute(query).tuples()
    ]


def _iso(value: dt.datetime | None) -> str | None:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else None
