"""Fault suite, kill -9: `digest send` killed at a random moment (seeded), again and again, then run to the
end. Per recipient: exactly one message, or a stuck row naming them (at most one message) — never two,
and never zero without a record. `digest deliveries stuck` names the stuck ones, their process gone."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from common import TEST_SECRET
from deliver_support import add_papers
from fault_support import LATE, always, faulty_smtp, smtp_environment
from sqlalchemy import select

from digest.cli import main
from digest.config import load_settings
from digest.db import Database
from digest.models import Delivery, utcnow
from digest.subscribers import create_subscriber

RECIPIENTS = [f"k{n}@example.org" for n in range(10)]
KILLS = 4


def digest_send(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "send"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def sending(process: subprocess.Popen[bytes], server, timeout: float = 60) -> None:
    """Wait until this run offers the server a message (or ends)."""
    offered, deadline = server.offered.total(), time.monotonic() + timeout
    while server.offered.total() == offered and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_then_restart_never_sends_twice_or_loses_silently(data_dir, seed):
    rng = random.Random(seed)
    with faulty_smtp(always(LATE), late_seconds=0.2) as server:  # every message: stored, 250 after 0.2 s
        env = smtp_environment(data_dir, server, timeout=5)
        settings = load_settings(data_dir=data_dir, secret_key=TEST_SECRET)
        db = Database(settings, migrate=True)
        with db.session() as session:
            add_papers(session, seen=utcnow())
            ids = {
                create_subscriber(session, settings, email=e, keywords="diffusion").id: e for e in RECIPIENTS
            }
        for _ in range(KILLS):
            process = digest_send(env)
            sending(process, server)  # past start-up (imports), so the kill lands among the sends
            time.sleep(rng.uniform(0.0, 1.0))
            process.send_signal(signal.SIGKILL)
            process.wait()
        final = digest_send(env)
        assert final.wait(120) in (0, 1)
        received = server.received()
    with db.session() as session:
        rows = {row.subscriber_id: row.status for row in session.scalars(select(Delivery))}
    stuck = json.loads(
        CliRunner().invoke(main, ["deliveries", "stuck", "--json"], env=env).output.splitlines()[-1]
    )
    db.dispose()
    stuck_ids = {row["subscriber"]: row["state"] for row in stuck["stuck"]}
    for sid, address in ids.items():
        assert received[address] <= 1, f"{address}: {received[address]} copies"
        if rows.get(sid) != "sent":
            assert stuck_ids.get(sid) == "gone", (
                f"{address}: {received[address]} messages, row {rows.get(sid)}"
            )
        else:
            assert received[address] == 1, f"{address}: recorded sent, {received[address]} messages"
    assert set(stuck_ids) == {sid for sid, status in rows.items() if status == "sending"}
