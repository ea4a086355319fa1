"""The dispatch loop: conditional-UPDATE claims, leases, catch-up after downtime, exactly-once sends."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import time_machine
from common import TEST_SECRET
from sqlalchemy import func, select, update

from digest.config import Settings, load_settings
from digest.db import Database
from digest.dispatch import Dispatcher, DispatchReport
from digest.models import Delivery, Paper, Subscriber, utcnow
from digest.subscribers import create_subscriber

PROJECT_ROOT = Path(__file__).resolve().parent.parent

NOW = dt.datetime(2025, 3, 5, 12, 0)  # a Wednesday, naive UTC


def add_papers(db: Database, count: int = 12, *, seen: dt.datetime = NOW) -> list[int]:
    topics = ["sparse attention", "diffusion models", "speech recognition", "robot grasping"]
    with db.session() as session:
        papers = [
            Paper(
                key=f"arxiv:2503.{n:05d}",
                arxiv_id=f"2503.{n:05d}",
                title_key=f"paper {n} {topics[n % 4]}",
                title=f"Paper {n} about {topics[n % 4]}",
                abstract=f"We improve {topics[n % 4]} with method {n} and report results on benchmarks.",
                authors=["Ada Lovelace"],
                first_seen_at=seen - dt.timedelta(hours=1),
            )
            for n in range(count)
        ]
        session.add_all(papers)
        session.flush()
        return [p.id for p in papers]


def subscribe(db: Database, settings: Settings, email: str, **fields: object) -> int:
    with time_machine.travel(fields.pop("at", NOW - dt.timedelta(days=1)), tick=False):
        with db.session() as session:
            values = {"keywords": ["attention", "diffusion"], **fields}
            return create_subscriber(session, settings, email=email, **values).id


def make_due(db: Database, subscriber_id: int, when: dt.datetime) -> None:
    with db.session() as session:
        session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(next_send_at=when))


def row(db: Database, subscriber_id: int) -> Subscriber:
    with db.session() as session:
        return session.get(Subscriber, subscriber_id)


def deliveries(db: Database) -> list[tuple[int, dt.date, str]]:
    with db.session() as session:
        query = select(Delivery.subscriber_id, Delivery.digest_date, Delivery.status).order_by(Delivery.id)
        return [tuple(r) for r in session.execute(query)]


def dispatcher(db: Database, settings: Settings, now: dt.datetime = NOW, **kwargs: object) -> Dispatcher:
    return Dispatcher(db, settings, clock=lambda: now, **kwargs)


def outbox_files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.outbox.glob("*") if not p.name.startswith("."))


# --- claiming ---------------------------------------------------------------------------------------------


def test_a_due_subscription_is_claimed_by_exactly_one_of_two_dispatchers(settings, db):
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(minutes=5))
    other_db = Database(settings)  # a second engine, as a second process would have
    try:
        first, second = dispatcher(db, settings), dispatcher(other_db, settings)
        (due,) = first.find_due(NOW)
        (seen_by_second,) = second.find_due(NOW)
        reports = DispatchReport(), DispatchReport()
        claims = [first.claim(due, NOW, reports[0]), second.claim(seen_by_second, NOW, reports[1])]
    finally:
        other_db.dispose()
    assert [c is not None for c in claims] == [True, False]
    assert (reports[0].claimed, reports[1].lost) == (1, 1)


def test_a_live_lease_hides_the_row_and_an_expired_one_makes_it_claimable_again(settings, db):
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(minutes=5))
    crashed = dispatcher(db, settings, lease=dt.timedelta(minutes=10))
    (due,) = crashed.find_due(NOW)
    assert crashed.claim(due, NOW, DispatchReport()) is not None  # …and the process dies here
    assert crashed.find_due(NOW + dt.timedelta(minutes=9)) == []
    later = NOW + dt.timedelta(minutes=11)
    (again,) = dispatcher(db, settings, later).find_due(later)
    assert again.slot == due.slot  # next_send_at never moved: the day is not lost
    assert dispatcher(db, settings, later).claim(again, later, DispatchReport()) is not None


def test_after_days_of_downtime_the_digest_is_dated_by_the_latest_missed_slot(settings, db):
    sid = subscribe(db, settings, "ada@example.org", send_time="08:00", timezone="Europe/Berlin")
    make_due(db, sid, dt.datetime(2025, 3, 2, 7, 0))  # Sunday 08:00 Berlin; down until Wednesday noon
    work = dispatcher(db, settings)
    (due,) = work.find_due(NOW)
    claim = work.claim(due, NOW, DispatchReport())
    assert claim.digest_date == dt.date(2025, 3, 5)  # one digest, for Wednesday, not four
    assert claim.following == dt.datetime(2025, 3, 6, 7, 0)  # Thursday 08:00: the first slot after now


def test_a_retry_pulled_forward_past_midnight_keeps_the_digest_date_of_the_failed_slot(settings, db):
    sid = subscribe(db, settings, "ada@example.org", send_time="23:50")
    make_due(db, sid, dt.datetime(2025, 3, 5, 0, 5))  # retry_at set by the delivery service
    now = dt.datetime(2025, 3, 5, 0, 6)
    work = dispatcher(db, settings, now)
    claim = work.claim(work.find_due(now)[0], now, DispatchReport())
    assert claim.digest_date == dt.date(2025, 3, 4)
    assert claim.following == dt.datetime(2025, 3, 5, 23, 50)


def test_release_moves_next_send_time_on_and_clears_the_lease(settings, db):
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(hours=4))  # today's 08:00 UTC slot
    work = dispatcher(db, settings)
    claim = work.claim(work.find_due(NOW)[0], NOW, DispatchReport())
    assert row(db, sid).claimed_until == claim.until
    work.release(claim)
    assert (row(db, sid).next_send_at, row(db, sid).claimed_until) == (dt.datetime(2025, 3, 6, 8), None)


def test_release_keeps_a_send_time_changed_by_the_subscriber_during_the_send(settings, db):
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(hours=4))
    work = dispatcher(db, settings)
    claim = work.claim(work.find_due(NOW)[0], NOW, DispatchReport())
    changed = dt.datetime(2025, 3, 6, 18, 30)
    make_due(db, sid, changed)  # the preferences page rescheduled it meanwhile
    work.release(claim)
    assert (row(db, sid).next_send_at, row(db, sid).claimed_until) == (changed, None)


def test_a_subscription_whose_schedule_cannot_be_computed_is_parked_with_the_reason(settings, db):
    sid = subscribe(db, settings, "ada@example.org")
    with db.session() as session:
        session.execute(update(Subscriber).where(Subscriber.id == sid).values(timezone="Mars/Olympus"))
    make_due(db, sid, NOW - dt.timedelta(hours=1))
    report = dispatcher(db, settings).run()
    assert report.parked == 1 and report.claimed == 0
    parked = row(db, sid)
    assert parked.next_send_at is None and "timezone" in parked.last_error


def test_paused_and_unsubscribed_rows_are_never_due(settings, db):
    for n, status in enumerate(["paused", "unsubscribed", "pending"]):
        sid = subscribe(db, settings, f"u{n}@example.org")
        make_due(db, sid, NOW - dt.timedelta(hours=1))
        with db.session() as session:
            session.execute(update(Subscriber).where(Subscriber.id == sid).values(status=status))
    assert dispatcher(db, settings).find_due(NOW) == []


# --- sending ----------------------------------------------------------------------------------------------


def test_each_due_digest_is_sent_once_and_the_next_send_time_follows(settings, db):
    add_papers(db)
    ids = [subscribe(db, settings, f"u{n}@example.org") for n in range(3)]
    for sid in ids:
        make_due(db, sid, NOW - dt.timedelta(hours=4))
    report = dispatcher(db, settings).run()
    assert report.claimed == 3 and report.outcomes == {"sent": 3}
    assert sorted(deliveries(db)) == [(sid, NOW.date(), "sent") for sid in ids]
    assert len(outbox_files(settings)) == 3
    assert {row(db, sid).next_send_at for sid in ids} == {dt.datetime(2025, 3, 6, 8)}
    assert dispatcher(db, settings, NOW + dt.timedelta(hours=1)).run().claimed == 0


def test_downtime_gives_at_most_one_digest_for_the_missed_period(settings, db):
    add_papers(db)
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(days=3, hours=4))  # missed Sunday … Wednesday
    assert dispatcher(db, settings).run().outcomes == {"sent": 1}
    assert dispatcher(db, settings, NOW + dt.timedelta(minutes=1)).run().claimed == 0
    assert deliveries(db) == [(sid, NOW.date(), "sent")]


def test_a_retried_claim_after_a_crash_following_the_send_does_not_send_twice(settings, db):
    add_papers(db)
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(hours=4))
    crashed = dispatcher(db, settings, lease=dt.timedelta(minutes=10))
    claim = crashed.claim(crashed.find_due(NOW)[0], NOW, DispatchReport())
    from digest.dispatch import send_digest

    assert send_digest(db, settings, sid, claim.digest_date, now=NOW).status == "sent"
    # …the process dies before releasing. After the lease another process picks the row up again:
    report = dispatcher(db, settings, NOW + dt.timedelta(minutes=11)).run()
    assert report.claimed == 1 and report.outcomes == {"already_sent": 1}
    assert len(outbox_files(settings)) == 1
    assert row(db, sid).next_send_at == dt.datetime(2025, 3, 6, 8)


def test_one_failing_channel_does_not_stop_the_others(data_dir):
    settings = load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        slack_webhook_hosts="127.0.0.1",
    )
    db = Database(settings, migrate=True)
    try:
        add_papers(db)
        with time_machine.travel(NOW - dt.timedelta(days=1), tick=False), db.session() as session:
            # Port 9 (discard) is closed on loopback: the webhook POST fails at once.
            broken = create_subscriber(
                session, settings, slack_webhook_url="http://127.0.0.1:9/hook", keywords=["attention"]
            ).id
            fine = create_subscriber(session, settings, email="ada@example.org", keywords=["attention"]).id
        for sid in (broken, fine):
            make_due(db, sid, NOW - dt.timedelta(hours=4))
        report = dispatcher(db, settings).run()
        assert report.claimed == 2
        assert report.outcomes["sent"] == 1 and report.outcomes["failed"] + report.errors == 1
        assert row(db, fine).next_send_at == dt.datetime(2025, 3, 6, 8)
        # The delivery service pulled the failed one's next send forward to its retry time; release kept it.
        retry_at = row(db, broken).next_send_at
        assert NOW < retry_at < dt.datetime(2025, 3, 6, 8) and row(db, broken).claimed_until is None
        retry = dispatcher(db, settings, retry_at)
        claim = retry.claim(retry.find_due(retry_at)[0], retry_at, DispatchReport())
        assert (claim.due.id, claim.digest_date) == (broken, NOW.date())
    finally:
        db.dispose()


def test_stop_request_ends_the_loop_between_two_sends(settings, db):
    add_papers(db)
    ids = [subscribe(db, settings, f"u{n}@example.org") for n in range(3)]
    for sid in ids:
        make_due(db, sid, NOW - dt.timedelta(hours=4))
    stop = threading.Event()
    work = dispatcher(db, settings, stop=stop)
    report = DispatchReport()
    assert work.handle_one(report)
    stop.set()
    work.run()  # returns at once
    assert report.claimed == 1 and len(deliveries(db)) == 1
    assert sum(row(db, sid).claimed_until is not None for sid in ids) == 0  # nothing left half-claimed


def test_a_row_due_again_at_once_waits_for_the_next_run(settings, db):
    add_papers(db)
    sid = subscribe(db, settings, "ada@example.org")
    make_due(db, sid, NOW - dt.timedelta(hours=4))
    calls = []

    def clock() -> dt.datetime:
        calls.append(NOW)
        if len(calls) == 2:  # during the send: as if its retry time had been set in the past
            make_due(db, sid, NOW - dt.timedelta(minutes=1))
        return NOW

    report = Dispatcher(db, settings, clock=clock).run()
    assert report.claimed == 1
    assert row(db, sid).next_send_at == NOW - dt.timedelta(minutes=1)  # the next run's business


# --- two processes, one PostgreSQL database ---------------------------------------------------------------

DISPATCH_SCRIPT = """
import json, sys, time
from digest.config import load_settings
from digest.db import Database
from digest.dispatch import Dispatcher
settings = load_settings()
db = Database(settings, migrate=False)
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # both start together
print(json.dumps(Dispatcher(db, settings).run().as_dict()))
"""


@pytest.mark.postgres
def test_two_processes_on_one_postgres_database_send_every_due_digest_exactly_once(pg_db, data_dir):
    settings = pg_db.settings
    add_papers(pg_db, 8, seen=utcnow())  # few papers: this test is about claims, not ranking
    past = utcnow() - dt.timedelta(minutes=5)
    ids = [subscribe(pg_db, settings, f"u{n}@example.org", at=past) for n in range(50)]
    for sid in ids:
        make_due(pg_db, sid, past)
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DIGEST_DATABASE_URL": settings.db_url,
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_DATA_DIR": str(data_dir),
    }
    start_at = str(time.time() + 3)
    workers = [
        subprocess.Popen([sys.executable, "-c", DISPATCH_SCRIPT, start_at], env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    reports = [json.loads(w.communicate(timeout=240)[0].decode().strip().splitlines()[-1]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert sum(r["claimed"] for r in reports) == 50
    rows = deliveries(pg_db)
    assert len(rows) == 50 and len({r[0] for r in rows}) == 50
    sent = sum(1 for r in rows if r[2] == "sent")
    assert sent == len(outbox_files(settings)) > 0
    with pg_db.session() as session:
        assert session.scalar(select(func.count()).where(Subscriber.next_send_at <= past)) == 0
