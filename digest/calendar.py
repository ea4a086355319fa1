"""Send-time and digest-date arithmetic: local send time, weekdays and cadence, DST-correct. Pure functions.

All datetimes in and out are naive UTC (like every column in ``digest.models``); the subscriber's
``timezone`` (an IANA name) is only used to place the local ``send_time`` on the calendar.

Rules (the contract ``create_subscriber`` and the dispatch job rely on):

* ``weekdays`` is a string of digits, Monday=0 … Sunday=6 (``"01234"`` = weekdays only).
* ``cadence="daily"`` sends on every allowed weekday. ``cadence="weekly"`` sends once a week, on the
  *first* allowed weekday of the week (the lowest digit: ``"0123456"`` weekly means Mondays,
  ``"24"`` weekly means Wednesdays). This keeps the rule a pure function of the calendar — no
  "last sent" state — so a restart or a missed week can never shift or double the weekly day.
* A local time that does not exist (spring forward: 02:30 in Europe/Berlin on the last Sunday of
  March) is moved forward by the length of the gap (02:30 → 03:30 CEST). That is what ``zoneinfo``
  does for ``fold=0`` (PEP 495: a missing time is read with the offset from *before* the transition),
  so the day still gets exactly one send.
* A local time that happens twice (fall back: 02:30 on the last Sunday of October) means its first
  occurrence (``fold=0``, PEP 495). The second occurrence is never a slot, so the repeated hour
  cannot send twice.
* A whole calendar day that a zone skipped (Pacific/Apia jumped from 29 to 31 December 2011) has no
  slot: its normalised time lands on the next day, which gets its own slot anyway.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.models import Cadence

UTC = dt.UTC
# Any allowed weekday comes round within a week; a skipped date (Apia 2011) can push a weekly slot
# one more week out. Counted from the day before ``after``'s local date, 16 days cover both.
_SEARCH_DAYS = 16


class Schedulable(Protocol):
    """The Subscriber fields the arithmetic reads (a Subscriber row, or anything shaped like one)."""

    timezone: str
    send_time: str
    weekdays: str
    cadence: str


def next_send_time(subscriber: Schedulable, after: dt.datetime) -> dt.datetime:
    """The first send slot strictly after ``after`` (naive UTC), as naive UTC."""
    zone = _zone(subscriber.timezone)
    send_at = parse_send_time(subscriber.send_time)
    days = send_weekdays(subscriber.weekdays, subscriber.cadence)
    after_utc = after.replace(tzinfo=UTC)
    start = after_utc.astimezone(zone).date() - dt.timedelta(days=1)
    for offset in range(_SEARCH_DAYS):
        day = start + dt.timedelta(days=offset)
        if day.weekday() not in days:
            continue
        slot = local_slot(day, send_at, zone)
        if slot is not None and slot > after_utc:
            return slot.replace(tzinfo=None)
    raise AssertionError(f"no send slot within {_SEARCH_DAYS} days of {after}")  # unreachable by design


def previous_send_time(subscriber: Schedulable, at: dt.datetime) -> dt.datetime | None:
    """The latest slot at or before ``at`` (naive UTC): the one a late dispatch is catching up on.

    Looks back two weeks, enough for a weekly cadence even across a skipped date; None if no slot.
    """
    slot, cursor = None, at - dt.timedelta(days=15)
    while (following := next_send_time(subscriber, cursor)) <= at:
        slot = cursor = following
    return slot


def local_slot(day: dt.date, send_at: dt.time, zone: ZoneInfo) -> dt.datetime | None:
    """The aware UTC instant of ``send_at`` on local ``day`` (gap → forward, fold → first), or None."""
    wall = dt.datetime.combine(day, send_at, tzinfo=zone)  # fold=0: see the module docstring
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).date() != day:
        return None  # the zone skipped this date (or the gap pushed the time past midnight)
    return instant


def digest_date_for(subscriber: Schedulable, slot: dt.datetime) -> dt.date:
    """The digest date of a slot: the subscriber's local calendar date at that (naive UTC) instant."""
    return slot.replace(tzinfo=UTC).astimezone(_zone(subscriber.timezone)).date()


def parse_send_time(value: str) -> dt.time:
    """``"HH:MM"`` (24-hour) → time; ValueError naming the problem otherwise."""
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"send_time must be HH:MM (24-hour), got {value!r}") from None


def send_weekdays(weekdays: str, cadence: str) -> frozenset[int]:
    """The weekdays (Monday=0) on which slots exist for this weekday string and cadence."""
    days = {int(ch) for ch in weekdays if ch in "0123456"}
    if not days or len(days) != len(set(weekdays)):
        raise ValueError(f"weekdays must be digits 0-6 (Monday=0), at least one, got {weekdays!r}")
    if cadence == Cadence.WEEKLY:
        return frozenset({min(days)})
    if cadence != Cadence.DAILY:
        raise ValueError(f"cadence must be 'daily' or 'weekly', got {cadence!r}")
    return frozenset(days)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone must be an IANA name such as Europe/Berlin, got {name!r}") from None
