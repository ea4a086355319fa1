"""Subscriptions: create, change and delete them, with every field checked the same way everywhere; and
the queries that find subscribers.

The CLI (`digest subscribe`) and the web form both come through here, so a bad value gets the same clear
:class:`InvalidSubscription` (``field`` = the keyword argument / form field name) and nothing is stored.

Choices worth knowing:

* Email addresses are checked offline (RFC 5322 addr-spec via :mod:`email.headerregistry`, plus a domain
  that looks routable); no DNS lookup, because sign-up must work without network.
* Slack incoming-webhook URLs must be ``https`` and point at a host in ``DIGEST_SLACK_WEBHOOK_HOSTS``
  (Slack's own hosts by default). Digest POSTs to that URL on a schedule, so an open URL field would let any
  visitor aim the server at internal services (SSRF). Plain ``http`` is accepted only for loopback hosts that
  are on the list, which is how tests and a local relay are configured.
* Slack channel / member ids are the uppercase ids Slack shows (``C…`` channel, ``G…`` private channel,
  ``D…`` direct message, ``U…``/``W…`` member), not ``#names``: names change, ids do not.
* The same address may not hold two live subscriptions (pending, active or paused); an unsubscribed one
  may sign up again.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from email.errors import HeaderParseError
from email.headerregistry import Address
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.calendar import digest_date_for, next_send_time
from digest.config import Settings
from digest.models import (
    LIVE_STATUSES,
    Cadence,
    Channel,
    Delivery,
    DeliveryItem,
    Feedback,
    Subscriber,
    SubscriberModel,
    SubscriberStatus,
    utcnow,
)

STATUSES = tuple(SubscriberStatus)
CADENCES = tuple(Cadence)
MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 100
MAX_DIGEST_SIZE = 50
SLACK_ID = re.compile(r"^[CGDUW][A-Z0-9]{6,20}$")
SEND_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Fields a subscriber (or the preferences page) may change; the channel itself is fixed at sign-up.
PREFERENCE_FIELDS = frozenset(
    {"keywords", "excluded_keywords", "send_time", "timezone", "digest_size", "weekdays", "cadence", "status"}
)
SCHEDULE_FIELDS = frozenset({"send_time", "timezone", "weekdays", "cadence", "status"})


class InvalidSubscription(ValueError):
    """A subscription field is invalid; ``field`` names it as the form / keyword argument does."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- field checks (each returns the cleaned value or raises InvalidSubscription) -------------------------


def clean_email(value: str) -> str:
    text = (value or "").strip()
    if not text or len(text) > 254 or any(ch.isspace() for ch in text):
        raise InvalidSubscription("email", "enter an email address such as ada@example.org")
    try:
        address = Address(addr_spec=text)
    except (HeaderParseError, ValueError, IndexError):
        raise InvalidSubscription("email", f"{text!r} is not a valid email address") from None
    if not address.username or not _routable_domain(address.domain):
        raise InvalidSubscription("email", f"{text!r} is not a valid email address (check the domain)")
    # Domains are case-insensitive (RFC 5321 §2.4); the local part is kept as typed.
    return f"{address.username}@{address.domain.lower()}"


def _routable_domain(domain: str) -> bool:
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) < 2 or not labels[-1].isalpha():
        return False
    try:
        ascii_labels = [label.encode("idna").decode("ascii") for label in labels]
    except UnicodeError:
        return False
    return all(DOMAIN_LABEL.match(label) for label in ascii_labels)


def clean_webhook_url(value: str, settings: Settings) -> str:
    text = (value or "").strip()
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    allowed = settings.slack_webhook_host_list
    if parts.scheme not in {"http", "https"} or not host or not parts.path.strip("/"):
        raise InvalidSubscription(
            "slack_webhook_url", "enter a Slack incoming-webhook URL (https://hooks.slack.com/…)"
        )
    if host not in allowed:
        raise InvalidSubscription(
            "slack_webhook_url",
            f"host {host!r} is not an allowed webhook host ({', '.join(sorted(allowed))})",
        )
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        raise InvalidSubscription("slack_webhook_url", "must start with https://")
    if host.endswith("slack.com") and not parts.path.startswith(("/services/", "/workflows/", "/triggers/")):
        raise InvalidSubscription("slack_webhook_url", "expected https://hooks.slack.com/services/T…/B…/…")
    return text


def clean_slack_channel(value: str) -> str:
    text = (value or "").strip()
    if not SLACK_ID.match(text):
        raise InvalidSubscription(
            "slack_channel",
            f"{text!r} is not a Slack channel or member id (like C0123ABCD or U0123ABCD; not a #name)",
        )
    return text


def clean_keywords(
    value: str | Iterable[str] | None, field: str = "keywords", required: bool = True
) -> list[str]:
    raw = value.split(",") if isinstance(value, str) else list(value or [])
    cleaned: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise InvalidSubscription(field, "keywords must be text")
        keyword = " ".join(item.split())
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise InvalidSubscription(field, f"keyword {keyword[:30]!r}… is longer than {MAX_KEYWORD_CHARS}")
        if keyword and keyword.casefold() not in {k.casefold() for k in cleaned}:
            cleaned.append(keyword)
    if required and not cleaned:
        raise InvalidSubscription(field, "give at least one keyword, e.g. 'diffusion, retrieval'")
    if len(cleaned) > MAX_KEYWORDS:
        raise InvalidSubscription(field, f"at most {MAX_KEYWORDS} keywords")
    return cleaned


def clean_send_time(value: str) -> str:
    match = SEND_TIME.match((value or "").strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidSubscription("send_time", f"{value!r} is not a time of day as HH:MM (00:00-23:59)")
    return f"{int(match[1]):02d}:{match[2]}"


def clean_timezone(value: str) -> str:
    text = (value or "").strip()
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSubscription(
            "timezone", f"{text!r} is not a time zone name such as Europe/Paris"
        ) from None
    return text


def clean_digest_size(value: int | str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidSubscription("digest_size", f"{value!r} is not a whole number") from None
    if not 1 <= size <= MAX_DIGEST_SIZE:
        raise InvalidSubscription("digest_size", f"must be between 1 and {MAX_DIGEST_SIZE}")
    return size


def clean_weekdays(value: str | Iterable[int | str]) -> str:
    items = list(value) if not isinstance(value, str) else list(value.replace(",", "").replace(" ", ""))
    days = {str(item) for item in items}
    if not days or not days <= set("0123456"):
        raise InvalidSubscription("weekdays", "choose at least one day, as digits 0 (Monday) … 6 (Sunday)")
    return "".join(sorted(days))


def clean_choice(field: str, value: str, choices: tuple[StrEnum, ...]) -> StrEnum:
    for choice in choices:
        if value == choice:
            return choice
    raise InvalidSubscription(field, f"{value!r} is not one of {', '.join(choices)}")


def _clean_preference(field: str, value: Any, default_size: int) -> Any:
    cleaners = {
        "keywords": lambda v: clean_keywords(v),
        "excluded_keywords": lambda v: clean_keywords(v, "excluded_keywords", required=False),
        "send_time": clean_send_time,
        "timezone": clean_timezone,
        "digest_size": lambda v: clean_digest_size(v, default_size),
        "weekdays": clean_weekdays,
        "cadence": lambda v: clean_choice("cadence", v, CADENCES),
        "status": lambda v: clean_choice("status", v, STATUSES),
    }
    if field not in cleaners:
        raise InvalidSubscription(field, "this field cannot be changed")
    return cleaners[field](value)


# --- the operations -----------------------------------------------------------------------------------


def create_subscriber(
    session: Session,
    settings: Settings,
    *,
    email: str | None = None,
    slack_webhook_url: str | None = None,
    slack_channel: str | None = None,
    keywords: str | Iterable[str],
    excluded_keywords: str | Iterable[str] = (),
    send_time: str = "08:00",
    timezone: str = "UTC",
    digest_size: int | str | None = None,
    weekdays: str | Iterable[int | str] = "0123456",
    cadence: str = "daily",
    status: str = SubscriberStatus.ACTIVE,
) -> Subscriber:
    """Check every field, store the subscription and schedule its first digest; nothing is stored on error."""
    channel, destination = _channel(settings, email, slack_webhook_url, slack_channel)
    prefs = {
        name: _clean_preference(name, value, settings.default_digest_size)
        for name, value in {
            "keywords": keywords,
            "excluded_keywords": excluded_keywords,
            "send_time": send_time,
            "timezone": timezone,
            "digest_size": digest_size,
            "weekdays": weekdays,
            "cadence": cadence,
            "status": status,
        }.items()
    }
    _refuse_duplicate(session, channel, destination)
    subscriber = Subscriber(channel=channel, failure_count=0, created_at=utcnow(), **destination, **prefs)
    subscriber.next_send_at = _next_send(subscriber)
    session.add(subscriber)
    session.flush()
    return subscriber


def _channel(
    settings: Settings, email: str | None, webhook: str | None, channel: str | None
) -> tuple[Channel, dict[str, str]]:
    given = [
        name
        for name, value in (("email", email), ("slack_webhook_url", webhook), ("slack_channel", channel))
        if value not in (None, "")
    ]
    if len(given) != 1:
        raise InvalidSubscription(
            given[1] if len(given) > 1 else "email",
            "give exactly one of: an email address, a Slack webhook URL, a Slack channel id",
        )
    if email:
        return Channel.EMAIL, {"email": clean_email(email)}
    if webhook:
        return Channel.SLACK_WEBHOOK, {"slack_webhook_url": clean_webhook_url(webhook, settings)}
    return Channel.SLACK_BOT, {"slack_channel": clean_slack_channel(channel or "")}


def _refuse_duplicate(session: Session, channel: Channel, destination: dict[str, str]) -> None:
    ((column_name, value),) = destination.items()
    column = getattr(Subscriber, column_name)
    match = func.lower(column) == value.lower() if column_name == "email" else column == value
    clash = session.scalar(
        select(Subscriber.id).where(
            match, Subscriber.channel == channel, Subscriber.status.in_(LIVE_STATUSES)
        )
    )
    if clash is not None:
        raise InvalidSubscription(
            column_name,
            "this address already has a subscription (see your last digest's 'manage preferences' link)",
        )


def update_preferences(session: Session, subscriber: Subscriber, **fields: Any) -> Subscriber:
    """Change preference fields (same checks as sign-up); all or nothing. Reschedules when timing changed."""
    cleaned = {name: _clean_preference(name, value, subscriber.digest_size) for name, value in fields.items()}
    for name, value in cleaned.items():
        setattr(subscriber, name, value)
    if cleaned.get("status") == SubscriberStatus.ACTIVE:
        # Re-activating a disabled channel gives it a fresh run of allowed failures.
        subscriber.failure_count, subscriber.last_error = 0, None
    if SCHEDULE_FIELDS & cleaned.keys():
        subscriber.next_send_at = _next_send(subscriber)
    session.flush()
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


# --- queries ------------------------------------------------------------------------------------------


def active_subscriber_ids(session: Session) -> list[int]:
    query = select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ACTIVE).order_by(Subscriber.id)
    return list(session.scalars(query))


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
