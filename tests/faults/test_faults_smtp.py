"""Fault suite, SMTP: a real server on loopback that stores the message and then drops the connection,
answers after the client's timeout, drops before DATA, or refuses with 451 and 550. Per recipient: exactly
one message, or a stuck row naming them — never two, and never zero without a record."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from common import TEST_SECRET
from deliver_support import DAY, NOW, add_papers
from fault_support import (
    BUSY,
    DATA_451,
    DROP_AFTER_DATA,
    DROP_BEFORE_DATA,
    LATE,
    OK,
    REFUSED,
    always,
    faulty_smtp,
    first_time,
    smtp_environment,
)
from sqlalchemy import select

from digest.cli import main
from digest.config import load_settings
from digest.deliver.repair import stuck_states
from digest.dispatch import send_digest, send_many
from digest.models import Delivery, Subscriber, utcnow
from digest.subscribers import create_subscriber

RECIPIENTS = [f"r{n}@example.org" for n in range(5)]


def mail_settings(data_dir, server, **extra):
    return load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        smtp_host=server.host,
        smtp_port=server.port,
        smtp_security="none",
        smtp_timeout=1,
        **extra,
    )


def subscribe_all(db, settings, seen=NOW) -> dict[int, str]:
    with db.session() as session:
        add_papers(session, seen=seen)
        ids = [create_subscriber(session, settings, email=e, keywords="diffusion").id for e in RECIPIENTS]
    return dict(zip(ids, RECIPIENTS, strict=True))


def retry_until_settled(db, settings, outcomes) -> None:
    """What the dispatch loop does: come back at each retry time until nothing is due."""
    for outcome in outcomes:
        while outcome.status == "failed" and outcome.retry_at:
            outcome = send_digest(db, settings, outcome.subscriber_id, DAY, now=outcome.retry_at)


def assert_once_or_stuck(db, server, recipients: dict[int, str]) -> dict[str, str]:
    """Per recipient: one message and a `sent` row, or at most one message and a stuck row naming them."""
    with db.session() as session:
        stuck = {s.delivery.subscriber_id: s.state for s in stuck_states(session)}
        rows = {row.subscriber_id: row.status for row in session.scalars(select(Delivery))}
    got = server.received()
    verdicts = {}
    for sid, address in recipients.items():
        assert got[address] <= 1, f"{address} got {got[address]} copies"
        if got[address] == 1 and rows.get(sid) == "sent":
            verdicts[address] = "sent"
        else:
            assert sid in stuck, f"{address}: {got[address]} messages, row {rows.get(sid)}, and not stuck"
            verdicts[address] = f"stuck:{stuck[sid]}"
    return verdicts


@pytest.mark.parametrize("fault", [DROP_AFTER_DATA, LATE])
def test_a_message_handed_over_then_unanswered_is_never_sent_again(db, data_dir, fault):
    with faulty_smtp(first_time(fault), late_seconds=1.5) as server:
        settings = mail_settings(data_dir, server)
        recipients = subscribe_all(db, settings)
        report = send_many(db, settings, list(recipients), digest_date=DAY, now=NOW)
        assert {o.status for o in report.outcomes} == {"unknown"}
        retry_until_settled(db, settings, report.outcomes)
        again = send_many(db, settings, list(recipients), digest_date=DAY, now=NOW)  # `digest send` again
        assert {o.status for o in again.outcomes} == {"already_sent"}
        verdicts = assert_once_or_stuck(db, server, recipients)
    assert set(verdicts.values()) == {"stuck:unknown"}
    assert sum(server.received().values()) == len(RECIPIENTS)


def test_a_reused_connection_dropped_after_data_is_not_resent_on_a_fresh_one(db, data_dir):
    script = lambda rcpt, n: OK if rcpt == RECIPIENTS[0] or n else DROP_AFTER_DATA  # noqa: E731
    with faulty_smtp(script) as server:
        settings = mail_settings(data_dir, server)
        recipients = subscribe_all(db, settings)
        report = send_many(db, settings, list(recipients), digest_date=DAY, now=NOW)
        verdicts = assert_once_or_stuck(db, server, recipients)
    assert [o.status for o in report.outcomes] == ["sent"] + ["unknown"] * 4
    assert verdicts[RECIPIENTS[0]] == "sent" and server.received().total() == 5


@pytest.mark.parametrize("fault", [DROP_BEFORE_DATA, BUSY, DATA_451])
def test_a_message_certainly_not_taken_is_retried_and_arrives_once(db, data_dir, fault):
    with faulty_smtp(first_time(fault)) as server:
        settings = mail_settings(data_dir, server)
        recipients = subscribe_all(db, settings)
        report = send_many(db, settings, list(recipients), digest_date=DAY, now=NOW)
        assert {o.status for o in report.outcomes} == {"failed"}
        assert all(o.reason.startswith("transient:") and o.retry_at for o in report.outcomes)
        retry_until_settled(db, settings, report.outcomes)
        verdicts = assert_once_or_stuck(db, server, recipients)
    assert set(verdicts.values()) == {"sent"}


def test_a_permanent_refusal_is_not_retried_by_reruns_the_same_day(db, data_dir):
    with faulty_smtp(always(REFUSED)) as server:
        settings = mail_settings(data_dir, server)
        (sid,) = list(subscribe_all(db, settings, seen=utcnow()))[:1]
        env = smtp_environment(data_dir, server)
        results = [CliRunner().invoke(main, ["send", "--subscriber", str(sid)], env=env) for _ in range(5)]
        offered = sum(server.offered.values())
    assert offered == 1 and all(r.exit_code == 1 for r in results)  # failed, each time: said why
    assert "not retried for this date" in results[-1].output
    with db.session() as session:
        subscriber = session.get(Subscriber, sid)
        row = session.scalars(select(Delivery)).one()
        assert (subscriber.failure_count, subscriber.status, row.status) == (1, "active", "refused")
