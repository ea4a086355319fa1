"""The operator's view of the ledger: `digest deliveries stuck|release`."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap

from click.testing import CliRunner
from common import TEST_SECRET
from deliver_support import DAY, NOW, PAPERS, add_papers
from sqlalchemy import func, select

from digest.cli import main
from digest.dispatch import Dispatcher, send_digest
from digest.models import Delivery, DeliveryItem, Subscriber, utcnow
from digest.owner import this_process
from digest.subscribers import create_subscriber


def run(args: list[str], data_dir) -> object:  # type: ignore[no-untyped-def]
    env = {"DIGEST_DATA_DIR": str(data_dir), "DIGEST_SECRET_KEY": TEST_SECRET}
    return CliRunner().invoke(main, args, env=env)


def stuck_delivery(db, settings) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A digest sent and then left 'sending', as a process killed between send and record leaves it."""
    with db.session() as session:
        add_papers(session, PAPERS)
        sid = create_subscriber(session, settings, email="ada@example.org", keywords="diffusion").id
    send_digest(db, settings, sid, DAY, now=NOW)
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        row.status = "sending"
        return sid, row.id


def test_stuck_lists_the_claims_a_stopped_process_left_behind(db, settings, data_dir):
    sid, delivery_id = stuck_delivery(db, settings)
    result = run(["deliveries", "stuck", "--json"], data_dir)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output.splitlines()[-1])["stuck"]
    assert (row["id"], row["subscriber"], row["digest_date"]) == (delivery_id, sid, str(DAY))


def test_release_forgets_the_claim_so_the_next_send_delivers_that_day_again(db, settings, data_dir):
    sid, delivery_id = stuck_delivery(db, settings)
    assert send_digest(db, settings, sid, DAY, now=NOW).status == "already_sent"
    result = run(["deliveries", "release", str(delivery_id)], data_dir)
    assert result.exit_code == 0, result.output
    assert send_digest(db, settings, sid, DAY, now=NOW).status == "sent"


def test_release_refuses_a_delivery_that_is_not_stuck_and_changes_nothing(db, settings, data_dir):
    sid, delivery_id = stuck_delivery(db, settings)
    with db.session() as session:
        session.get(Delivery, delivery_id).status = "sent"
    result = run(["deliveries", "release", str(delivery_id)], data_dir)
    assert result.exit_code != 0 and "'sent', not a stuck 'sending' claim" in result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryItem)) > 0
    assert "no delivery with id 999" in run(["deliveries", "release", "999"], data_dir).output


def test_stuck_tells_a_dead_claimant_from_a_live_one_and_an_unknown_outcome(db, settings, data_dir):
    from test_owner import finished_process

    sid, delivery_id = stuck_delivery(db, settings)
    states = []
    for holder, reason in [(None, None), (finished_process(), None), (this_process(), None)]:
        with db.session() as session:
            row = session.get(Delivery, delivery_id)
            row.claimed_by, row.reason = holder, reason
        (row,) = json.loads(run(["deliveries", "stuck", "--json"], data_dir).output.splitlines()[-1])["stuck"]
        states.append(row["state"])
    with db.session() as session:
        session.get(Delivery, delivery_id).reason = "outcome unknown: SMTP connection lost after the message…"
    result = run(["deliveries", "stuck"], data_dir)
    assert states == ["elsewhere", "gone", "running"]
    assert "unknown (outcome unknown: SMTP connection lost" in result.output and "release ID" in result.output


def claim_then_die(settings) -> int:  # type: ignore[no-untyped-def]
    """A process takes a due subscriber's dispatch lease and is killed (-9) before it sends."""
    child = textwrap.dedent(f"""
        import time
        from digest.config import load_settings
        from digest.db import Database
        from digest.dispatch import Dispatcher, DispatchReport
        from digest.models import utcnow
        settings = load_settings(data_dir={str(settings.data_dir)!r}, secret_key={TEST_SECRET!r})
        dispatcher = Dispatcher(Database(settings), settings)
        (due,) = dispatcher.find_due(utcnow())
        assert dispatcher.claim(due, utcnow(), DispatchReport()) is not None
        print("claimed", flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "claimed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.pid


def test_a_lease_held_by_a_killed_process_is_listed_and_unlock_makes_it_due_at_once(db, settings, data_dir):
    with db.session() as session:
        add_papers(session, PAPERS, seen=utcnow())
        sid = create_subscriber(session, settings, email="ada@example.org", keywords="diffusion").id
        session.get(Subscriber, sid).next_send_at = utcnow()
    pid = claim_then_die(settings)
    result = run(["deliveries", "stuck", "--json"], data_dir)
    (lease,) = json.loads(result.output.splitlines()[-1])["leases"]
    assert lease["subscriber"] == sid and f":{pid}:" in lease["claimed_by"]
    assert Dispatcher(db, settings).find_due(utcnow()) == []  # hidden until the lease runs out…
    assert run(["deliveries", "unlock", str(sid)], data_dir).exit_code == 0
    assert [due.id for due in Dispatcher(db, settings).find_due(utcnow())] == [sid]  # …or is unlocked


def test_unlock_refuses_a_lease_whose_holder_still_runs_unless_forced(db, settings, data_dir):
    with db.session() as session:
        add_papers(session, PAPERS)
        sid = create_subscriber(session, settings, email="ada@example.org", keywords="diffusion").id
        row = session.get(Subscriber, sid)
        row.claimed_until, row.claimed_by = utcnow() + dt.timedelta(minutes=5), this_process()
    refused = run(["deliveries", "unlock", str(sid)], data_dir)
    assert refused.exit_code != 0 and "runs; --force" in refused.output
    assert run(["deliveries", "unlock", str(sid), "--force"], data_dir).exit_code == 0
    assert "holds no live lease" in run(["deliveries", "unlock", str(sid)], data_dir).output
