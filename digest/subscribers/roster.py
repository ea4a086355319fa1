"""The subscriber list as a CSV file: a bulk import checked row by row before one bulk INSERT, and the export
it reads back."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from digest.calendar import next_send_time
from digest.config import Settings
from digest.models import LIVE_STATUSES, Subscriber, SubscriberStatus, utcnow
from digest.subscribers.fields import (
    COLUMNS,
    DEFAULTS,
    DESTINATION_FIELDS,
    FLAGS,
    IMPORT_STATUSES,
    InvalidSubscription,
    clean_all,
    clean_choice,
    clean_subscription,
)


@dataclasses.dataclass
class ImportReport:
    rows: int = 0
    stored: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)  # "line N, column: message"


SCHEDULE = ("timezone", "send_time", "weekdays", "cadence")


def import_csv(
    session: Session, settings: Settings, lines: Iterable[str], *, dry_run: bool = False
) -> ImportReport:
    """Add one active subscription per CSV row (header: the `digest subscribe` flags without dashes).

    Every row is checked first, as `digest subscribe` checks one; if any row is bad nothing is stored
    and each bad row is named by line and column. The good rows then go in as one bulk INSERT.
    """
    report = ImportReport()
    reader = csv.DictReader(lines)
    report.errors += _header_errors(reader.fieldnames or [])
    if report.errors:
        return report
    taken = _live_destinations(session)
    rows = []
    for line, row in _numbered(reader):
        report.rows += 1
        try:
            rows.append(_import_row(settings, row, taken))
        except InvalidSubscription as exc:
            report.errors += [
                f"line {line}, {_column(field)}: {message}" for field, message in exc.errors.items()
            ]
    if rows and not report.errors and not dry_run:
        session.execute(insert(Subscriber), rows)
        report.stored = len(rows)
    return report


def _header_errors(names: list[str]) -> list[str]:
    columns = [_normal(name) for name in names]
    unknown = [name for name, column in zip(names, columns, strict=True) if column not in COLUMNS]
    errors = [f"line 1: unknown column {name!r} (known: {', '.join(COLUMNS)})" for name in unknown]
    if "keywords" not in columns:
        errors.append("line 1: the header needs a 'keywords' column")
    return errors


def _normal(column: str | None) -> str:
    return (column or "").strip().lower().replace("_", "-")


def _column(field: str) -> str:
    return FLAGS.get(field, field).removeprefix("--") if field != "channel" else "email"


def _numbered(reader: csv.DictReader) -> Iterator[tuple[int, dict[str, str]]]:
    for row in reader:
        yield (
            reader.line_num,
            {COLUMNS[_normal(name)]: (value or "").strip() for name, value in row.items() if name},
        )


def _live_destinations(session: Session) -> set[tuple[str, str]]:
    """(channel, destination) of every live subscription, emails lower-cased: one query for the import."""
    query = select(
        Subscriber.channel, Subscriber.email, Subscriber.slack_webhook_url, Subscriber.slack_channel
    )
    taken = set()
    for channel, email, webhook, slack_channel in session.execute(
        query.where(Subscriber.status.in_(LIVE_STATUSES))
    ):
        taken.add((str(channel), (email or "").lower() or webhook or slack_channel or ""))
    return taken


def _import_row(settings: Settings, row: dict[str, str], taken: set[tuple[str, str]]) -> dict[str, Any]:
    given = {name: row[name] for name in row if name not in DESTINATION_FIELDS and row[name] != ""}
    values = DEFAULTS | given
    status = values.pop("status", SubscriberStatus.ACTIVE)
    checks = {"status": lambda: clean_choice("status", status, IMPORT_STATUSES)}
    checks["subscription"] = lambda: clean_subscription(settings, row, values)
    cleaned = clean_all(checks)
    channel, destination, prefs = cleaned["subscription"]
    ((field, value),) = destination.items()
    key = (str(channel), value.lower() if field == "email" else value)
    if key in taken:
        raise InvalidSubscription(field, f"{value} already has a subscription (here or earlier in the file)")
    taken.add(key)
    subscriber = {"channel": channel, **destination, **prefs, "status": cleaned["status"]}
    now = utcnow()
    # The calendar reads four attributes: a namespace, far cheaper to make than an ORM row.
    schedule = SimpleNamespace(**{name: subscriber[name] for name in SCHEDULE})
    active = subscriber["status"] == SubscriberStatus.ACTIVE
    return subscriber | {
        "failure_count": 0,
        "created_at": now,
        "confirmed_at": now,
        "next_send_at": next_send_time(schedule, now) if active else None,
    }


def export_rows(session: Session) -> Iterator[dict[str, str]]:
    """Every live subscription as a CSV row that `import_csv` reads back (webhook URLs included; ``id`` is
    for the JSON export only)."""
    query = select(Subscriber).where(Subscriber.status.in_(LIVE_STATUSES)).order_by(Subscriber.id)
    for subscriber in session.scalars(query):
        yield {
            "id": str(subscriber.id),
            "email": subscriber.email or "",
            "slack-webhook": subscriber.slack_webhook_url or "",
            "slack-channel": subscriber.slack_channel or "",
            "keywords": ", ".join(subscriber.keywords or []),
            "exclude": ", ".join(subscriber.excluded_keywords or []),
            "time": subscriber.send_time,
            "timezone": subscriber.timezone,
            "size": str(subscriber.digest_size),
            "weekdays": subscriber.weekdays,
            "cadence": str(subscriber.cadence),
            # An unconfirmed web sign-up comes back paused: nobody has agreed to receive it yet.
            "status": str(subscriber.status) if subscriber.status in IMPORT_STATUSES else "paused",
        }
