"""The operator's view of the ledger: `digest deliveries stuck|release`."""

from __future__ import annotations

import json

from click.testing import CliRunner
from common import TEST_SECRET
from deliver_support import DAY, NOW, PAPERS, add_papers
from sqlalchemy import func, select

from digest.cli import main
from digest.dispatch import send_digest
from digest.models import Delivery, DeliveryItem
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
