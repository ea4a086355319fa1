"""Celery workers on Redis: `digest serve`'s dispatcher queues claims, `digest worker` processes send them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from common import TEST_SECRET
from sqlalchemy import func, select

from digest.dispatch import Claim, Dispatcher, Due
from digest.models import Delivery, Subscriber, utcnow
from digest.workers import claim_from_json, claim_to_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WAIT_LIMIT = 180.0  # a guard against hanging, not a speed assertion


def test_a_claim_crosses_the_broker_as_json_and_comes_back_the_same():
    due = Due(7, dt.datetime(2025, 3, 5, 8, 0), "Europe/Berlin", "09:00", "01234", "daily")
    claim = Claim(due, dt.datetime(2025, 3, 5, 8, 10), dt.date(2025, 3, 5), dt.datetime(2025, 3, 6, 8))
    assert claim_from_json(claim_to_json(claim)) == claim


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "digest", "worker", "--concurrency", "1"]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(count)
    ]


def wait_until_settled(db, expected: int) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_LIMIT
    settled = 0
    while time.monotonic() < deadline:
        with db.session() as session:
            settled = session.scalar(
                select(func.count()).select_from(Subscriber).where(Subscriber.claimed_until.is_(None))
            )
        if settled == expected:
            return settled
        time.sleep(0.5)
    return settled


@pytest.mark.postgres
def test_two_workers_send_every_queued_digest_exactly_once_and_release_the_claims(
    pg_db, redis_server, data_dir
):
    from test_dispatch import add_papers, make_due, outbox_files, subscribe

    queue = f"digest-test-{uuid.uuid4().hex[:8]}"  # test runs sharing this Redis stay apart
    settings = pg_db.settings.model_copy(update={"celery_broker_url": redis_server, "celery_queue": queue})
    add_papers(pg_db, 8, seen=utcnow())
    past = utcnow() - dt.timedelta(minutes=5)
    ids = [subscribe(pg_db, settings, f"u{n}@example.org", at=past) for n in range(20)]
    for sid in ids:
        make_due(pg_db, sid, past)

    from digest.workers import CeleryQueue

    report = Dispatcher(pg_db, settings, queue=CeleryQueue(settings)).run()
    assert report.claimed == 20 and report.outcomes == {"queued": 20}
    with pg_db.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0  # nothing sent by serve

    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DIGEST_DATABASE_URL": settings.db_url,
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_CELERY_BROKER_URL": redis_server,
        "DIGEST_CELERY_QUEUE": queue,
    }
    workers = start_workers(2, env)
    try:
        assert wait_until_settled(pg_db, 20) == 20
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        errors = [process.communicate(timeout=60)[1].decode() for process in workers]
    assert all(process.returncode == 0 for process in workers), errors
    with pg_db.session() as session:
        rows = session.execute(select(Delivery.subscriber_id, Delivery.status)).all()
        assert session.scalar(select(func.count()).where(Subscriber.next_send_at <= past)) == 0
    assert sorted(sid for sid, _ in rows) == sorted(ids)
    assert {status for _, status in rows} == {"sent"} and len(outbox_files(settings)) == 20


def test_worker_command_explains_that_it_needs_a_broker(data_dir):
    from click.testing import CliRunner

    from digest.cli import main

    env = {"DIGEST_DATA_DIR": str(data_dir), "DIGEST_SECRET_KEY": TEST_SECRET}
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code != 0 and "DIGEST_CELERY_BROKER_URL is not set" in result.output
