"""Next-send-time arithmetic: local send times, weekdays, weekly cadence, across DST changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.calendar import digest_date_for, next_send_time, previous_send_time

UTC = dt.UTC


@dataclass
class Sub:
    timezone: str = "UTC"
    send_time: str = "08:00"
    weekdays: str = "0123456"
    cadence: str = "daily"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args)


def local(zone: str, when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))


def slots(sub: Sub, start: dt.datetime, count: int) -> list[dt.datetime]:
    found, after = [], start
    for _ in range(count):
        after = next_send_time(sub, after)
        found.append(after)
    return found


def test_utc_subscriber_gets_todays_slot_when_it_is_still_ahead():
    assert next_send_time(Sub(), utc(2025, 3, 3, 7, 59)) == utc(2025, 3, 3, 8, 0)


def test_the_slot_itself_is_not_after_itself_so_the_next_day_follows():
    assert next_send_time(Sub(), utc(2025, 3, 3, 8, 0)) == utc(2025, 3, 4, 8, 0)


def test_result_is_naive_utc():
    assert next_send_time(Sub(timezone="Europe/Berlin"), utc(2025, 1, 1)).tzinfo is None


def test_berlin_winter_send_time_is_one_hour_before_in_utc():
    sub = Sub(timezone="Europe/Berlin", send_time="08:00")
    assert next_send_time(sub, utc(2025, 1, 6, 0, 0)) == utc(2025, 1, 6, 7, 0)


def test_berlin_summer_send_time_is_two_hours_before_in_utc():
    sub = Sub(timezone="Europe/Berlin", send_time="08:00")
    assert next_send_time(sub, utc(2025, 7, 7, 0, 0)) == utc(2025, 7, 7, 6, 0)


def test_local_time_stays_at_eight_across_the_berlin_spring_change():
    sub = Sub(timezone="Europe/Berlin", send_time="08:00")
    found = slots(sub, utc(2025, 3, 28), 4)  # 30 March 2025 is the change
    assert [local(sub.timezone, s).strftime("%d %H:%M") for s in found] == [
        "28 08:00",
        "29 08:00",
        "30 08:00",
        "31 08:00",
    ]
    assert [s.hour for s in found] == [7, 7, 6, 6]


def test_berlin_spring_forward_0230_is_sent_once_at_0330_summer_time():
    sub = Sub(timezone="Europe/Berlin", send_time="02:30")
    found = slots(sub, utc(2025, 3, 29, 12), 2)
    assert found[0] == utc(2025, 3, 30, 1, 30)  # 03:30 CEST: forward by the one-hour gap
    assert local(sub.timezone, found[0]).strftime("%Y-%m-%d %H:%M %Z") == "2025-03-30 03:30 CEST"
    assert found[1] == utc(2025, 3, 31, 0, 30)  # next day back to 02:30 local


def test_berlin_autumn_repeated_0230_sends_only_at_its_first_occurrence():
    sub = Sub(timezone="Europe/Berlin", send_time="02:30")
    first = next_send_time(sub, utc(2025, 10, 25, 12))
    assert first == utc(2025, 10, 26, 0, 30)  # 02:30 CEST (+2), the first of the two
    # The second 02:30 (CET, 01:30 UTC) lies after the first, yet the next slot is the next day.
    assert next_send_time(sub, first) == utc(2025, 10, 27, 1, 30)
    assert next_send_time(sub, utc(2025, 10, 26, 1, 0)) == utc(2025, 10, 27, 1, 30)


def test_new_york_spring_forward_gap_and_autumn_repeat():
    sub = Sub(timezone="America/New_York", send_time="02:15")
    spring = next_send_time(sub, utc(2025, 3, 9, 0))  # 9 March 2025: 02:00 EST → 03:00 EDT
    assert local(sub.timezone, spring).strftime("%d %H:%M %Z") == "09 03:15 EDT"
    autumn = slots(sub, utc(2025, 11, 2, 0), 2)  # 2 November 2025: 02:00 EDT → 01:00 EST
    assert local(sub.timezone, autumn[0]).strftime("%d %H:%M %Z") == "02 02:15 EST"
    assert autumn[1] - autumn[0] == dt.timedelta(hours=24)


def test_new_york_repeated_one_am_uses_first_occurrence():
    sub = Sub(timezone="America/New_York", send_time="01:30")
    found = slots(sub, utc(2025, 11, 1, 12), 2)
    assert found[0] == utc(2025, 11, 2, 5, 30)  # 01:30 EDT (-4)
    assert found[1] == utc(2025, 11, 3, 6, 30)  # not 01:30 EST on the 2nd


def test_lord_howe_half_hour_spring_gap_moves_forward_by_thirty_minutes():
    # Lord Howe Island: 02:00 +10:30 → 02:30 +11 on 6 October 2024.
    sub = Sub(timezone="Australia/Lord_Howe", send_time="02:15")
    slot = next_send_time(sub, utc(2024, 10, 5, 0))
    assert local(sub.timezone, slot).strftime("%Y-%m-%d %H:%M") == "2024-10-06 02:45"
    assert next_send_time(sub, slot) == utc(2024, 10, 6, 15, 15)  # 7 Oct 02:15 (+11)


def test_lord_howe_half_hour_autumn_repeat_sends_once():
    # 7 April 2024: 02:00 +11 → 01:30 +10:30, so 01:45 happens twice.
    sub = Sub(timezone="Australia/Lord_Howe", send_time="01:45")
    found = slots(sub, utc(2024, 4, 5, 12), 3)  # local 5 April 23:00
    assert [local(sub.timezone, s).date().day for s in found] == [6, 7, 8]
    assert found[1] == utc(2024, 4, 6, 14, 45)  # first 01:45 (+11)


def test_kiritimati_plus_fourteen_sends_on_the_previous_utc_day():
    sub = Sub(timezone="Pacific/Kiritimati", send_time="08:00")
    assert next_send_time(sub, utc(2025, 6, 1, 0)) == utc(2025, 6, 1, 18, 0)
    assert digest_date_for(sub, utc(2025, 6, 1, 18, 0)) == dt.date(2025, 6, 2)


def test_tonga_plus_thirteen_weekdays_only_follow_the_local_calendar():
    sub = Sub(timezone="Pacific/Tongatapu", send_time="07:00", weekdays="01234")
    found = slots(sub, utc(2025, 6, 5, 0), 3)  # local Thursday 5 June 13:00
    assert [local(sub.timezone, s).strftime("%a %d") for s in found] == ["Fri 06", "Mon 09", "Tue 10"]


def test_apia_skipped_day_has_no_slot_and_the_next_day_sends_once():
    # Samoa skipped Friday 30 December 2011 when it crossed the date line.
    sub = Sub(timezone="Pacific/Apia", send_time="08:00")
    found = slots(sub, utc(2011, 12, 28, 0), 3)
    assert [local(sub.timezone, s).strftime("%d") for s in found] == ["28", "29", "31"]


def test_weekdays_only_skips_the_weekend():
    sub = Sub(weekdays="01234")
    found = slots(sub, utc(2025, 3, 7, 9), 2)  # Friday after the slot
    assert found == [utc(2025, 3, 10, 8), utc(2025, 3, 11, 8)]


def test_weekly_cadence_sends_on_the_first_allowed_weekday_only():
    sub = Sub(weekdays="24", cadence="weekly")  # Wednesday and Friday → Wednesdays
    found = slots(sub, utc(2025, 3, 3), 3)
    assert [s.strftime("%a %d") for s in found] == ["Wed 05", "Wed 12", "Wed 19"]


def test_weekly_cadence_across_dst_keeps_the_local_time():
    sub = Sub(timezone="Europe/Berlin", cadence="weekly", send_time="09:00")
    found = slots(sub, utc(2025, 3, 20), 2)
    assert [local(sub.timezone, s).strftime("%a %d %H:%M") for s in found] == ["Mon 24 09:00", "Mon 31 09:00"]


def test_digest_date_is_the_local_date_of_the_slot():
    sub = Sub(timezone="America/New_York", send_time="23:30")
    slot = next_send_time(sub, utc(2025, 1, 1, 12))
    assert slot == utc(2025, 1, 2, 4, 30)
    assert digest_date_for(sub, slot) == dt.date(2025, 1, 1)


def test_previous_send_time_is_the_latest_slot_at_or_before():
    weekdays = Sub(weekdays="01234")
    assert previous_send_time(weekdays, utc(2025, 3, 2, 23)) == utc(2025, 2, 28, 8)  # Sunday → Friday
    assert previous_send_time(weekdays, utc(2025, 3, 3, 8)) == utc(2025, 3, 3, 8)  # the slot itself
    weekly = Sub(timezone="Pacific/Apia", weekdays="4", cadence="weekly")  # Fridays; 30 Dec 2011 skipped
    assert local("Pacific/Apia", previous_send_time(weekly, utc(2012, 1, 5))).day == 23


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "timezone"),
        ("send_time", "8am", "send_time"),
        ("send_time", "25:00", "send_time"),
        ("weekdays", "", "weekdays"),
        ("weekdays", "78", "weekdays"),
        ("cadence", "hourly", "cadence"),
    ],
)
def test_bad_subscriber_fields_raise_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        next_send_time(Sub(**{field: value}), utc(2025, 1, 1))


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Apia",
    "America/Santiago",
    "Asia/Kolkata",
]


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    weekdays=st.sets(st.integers(0, 6), min_size=1).map(lambda s: "".join(map(str, sorted(s)))),
    cadence=st.sampled_from(["daily", "weekly"]),
    after=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)),
)
def test_slots_are_strictly_later_on_allowed_days_and_at_most_one_per_local_date(
    zone, hour, minute, weekdays, cadence, after
):
    sub = Sub(timezone=zone, send_time=f"{hour:02d}:{minute:02d}", weekdays=weekdays, cadence=cadence)
    found = slots(sub, after, 4)
    assert found[0] > after
    dates = [digest_date_for(sub, s) for s in found]
    assert dates == sorted(set(dates))  # strictly increasing local dates: never twice a day
    allowed = {int(d) for d in weekdays}
    assert all(d.weekday() in allowed for d in dates)
    if cadence == "weekly":
        assert all((b - a).days == 7 for a, b in zip(dates, dates[1:], strict=False))
