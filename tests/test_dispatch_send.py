"""Sending one digest and a batch: at most once, never a paper twice, empty digests skipped, the outbox."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from email import message_from_bytes, policy

import pytest
from click.testing import CliRunner
from common import TEST_SECRET
from deliver_support import DAY, NOW, PAPERS, add_papers
from sqlalchemy import func, select

from digest.cli import main
from digest.deliver.base import Transport
from digest.deliver.repair import stuck_claims
from digest.deliver.transports import Transports
from digest.dispatch import send_digest, send_many
from digest.models import Delivery, DeliveryItem, Subscriber
from digest.subscribers import create_subscriber


def subscriber(db, settings, papers=PAPERS, **fields) -> int:  # type: ignore[no-untyped-def]
    with db.session() as session:
        if papers:
            add_papers(session, papers)
        fields = {"email": "ada@example.org", "keywords": "diffusion, speech", **fields}
        return create_subscriber(session, settings, **fields).id


def outbox_files(settings, suffix: str) -> list:  # type: ignore[no-untyped-def]
    return sorted(settings.outbox.glob(f"*{suffix}")) if settings.outbox.exists() else []


def test_without_smtp_the_digest_lands_in_the_outbox_as_eml(db, settings):
    sid = subscriber(db, settings)
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    (path,) = outbox_files(settings, ".eml")
    assert outcome.status == "sent" and outcome.receipt == str(path)
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "ada@example.org" and message["List-Unsubscribe-Post"]
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_without_a_bot_token_slack_digests_land_in_the_outbox_as_json(db, settings):
    sid = subscriber(db, settings, email=None, slack_channel="C0123ABCD")
    assert send_digest(db, settings, sid, DAY, now=NOW).status == "sent"
    (path,) = outbox_files(settings, ".json")
    payload = json.loads(path.read_text())
    assert payload["channel"] == "C0123ABCD" and payload["blocks"] and payload["text"]


def test_an_empty_digest_is_not_sent_and_its_reason_is_recorded(db, settings):
    sid = subscriber(db, settings, papers=None)
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "skipped_empty" and "no new paper" in outcome.reason
    assert outbox_files(settings, ".eml") == []
    with db.session() as session:
        row = session.scalars(select(Delivery)).one()
        assert (row.status, row.reason) == ("skipped_empty", outcome.reason)
    assert send_digest(db, settings, sid, DAY, now=NOW).status == "already_sent"


def test_no_paper_is_ever_sent_twice_to_the_same_subscriber(db, settings):
    sid = subscriber(db, settings, PAPERS[:3])
    first = send_digest(db, settings, sid, DAY, now=NOW)
    with db.session() as session:
        add_papers(session, PAPERS[3:], seen=NOW + dt.timedelta(days=1))
    second = send_digest(db, settings, sid, DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert first.paper_ids and second.paper_ids
    assert not set(first.paper_ids) & set(second.paper_ids)
    third = send_digest(db, settings, sid, DAY + dt.timedelta(days=2), now=NOW + dt.timedelta(days=2))
    assert third.status == "skipped_empty"  # everything recent was sent already


def test_dry_run_records_and_sends_nothing(db, settings):
    sid = subscriber(db, settings)
    outcome = send_digest(db, settings, sid, DAY, now=NOW, dry_run=True)
    assert outcome.status == "dry_run" and outcome.paper_ids
    assert outbox_files(settings, ".eml") == []
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_inactive_subscribers_get_nothing(db, settings):
    sid = subscriber(db, settings, status="paused")
    outcome = send_digest(db, settings, sid, DAY, now=NOW)
    assert outcome.status == "failed" and "paused" in outcome.reason
    assert outbox_files(settings, ".eml") == []


class Explodes(Transport):
    """Raises something that is not a TransportError: the message may or may not have gone out."""

    def send(self, message):  # type: ignore[no-untyped-def]
        raise RuntimeError("socket timed out after DATA")


def test_an_error_of_unknown_outcome_keeps_the_claim_and_never_resends(db, settings):
    sid = subscriber(db, settings)
    other = subscriber(db, settings, papers=None, email="bob@example.org")
    transports = Transports(settings)
    transports.use("email", Explodes())
    with pytest.raises(RuntimeError):
        send_digest(db, settings, sid, DAY, now=NOW, transports=transports)
    with db.session() as session:
        (row,) = stuck_claims(session)
        assert row.status == "sending" and "outcome unknown" in row.reason
        assert session.scalar(select(func.count()).select_from(DeliveryItem)) > 0  # papers stay recorded
    report = send_many(db, settings, [sid, other], digest_date=DAY, now=NOW)
    assert [o.status for o in report.outcomes] == ["already_sent", "sent"]
    assert "never confirmed" in report.outcomes[0].reason
    (only,) = outbox_files(settings, ".eml")
    assert "bob@example.org" in only.read_text()


CRASH = """
import datetime as dt, os, sys
from digest.config import load_settings
from digest.db import Database
from digest.deliver.outbox import OutboxTransport
from digest.deliver.transports import Transports
from digest.dispatch import send_digest

class DiesAfterSending(OutboxTransport):
    def send(self, message):
        super().send(message)
        os._exit(9)  # killed after the transport accepted the message, before the ledger says "sent"

settings = load_settings(data_dir=sys.argv[1], secret_key=sys.argv[2])
transports = Transports(settings)
transports.use("email", DiesAfterSending(settings.outbox))
send_digest(Database(settings), settings, int(sys.argv[3]), dt.date(2025, 6, 30),
            now=dt.datetime(2025, 6, 30, 6, 0), transports=transports)
"""


def test_a_process_killed_between_sending_and_recording_never_sends_that_digest_again(db, settings, data_dir):
    sid = subscriber(db, settings)
    script = textwrap.dedent(CRASH)
    done = subprocess.run([sys.executable, "-c", script, str(data_dir), TEST_SECRET, str(sid)], timeout=120)
    assert done.returncode == 9
    assert len(outbox_files(settings, ".eml")) == 1
    with db.session() as session:
        assert [row.status for row in stuck_claims(session)] == ["sending"]
    again = send_digest(db, settings, sid, DAY, now=NOW)
    assert again.status == "already_sent" and "never confirmed" in again.reason
    assert len(outbox_files(settings, ".eml")) == 1  # at most once: no duplicate


# --- the commands ----------------------------------------------------------------------------------------


def cli(args: list[str], data_dir):  # type: ignore[no-untyped-def]
    env = {
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_RECENCY_DAYS": "100000",
    }
    return CliRunner().invoke(main, args, env=env)


def test_send_command_reports_counts_as_json_and_a_second_run_sends_nothing(db, settings, data_dir):
    sid = subscriber(db, settings)
    subscriber(db, settings, papers=None, email="bob@example.org", keywords="zzzunmatched")
    first = cli(["send", "--date", "2025-06-30", "--json"], data_dir)
    assert first.exit_code == 0, first.output
    counts = json.loads(first.output.strip().splitlines()[-1])
    assert (counts["sent"], counts["failed"]) == (2, 0) or (counts["sent"], counts["skipped_empty"]) == (1, 1)
    second = cli(["send", "--subscriber", "ada@example.org", "--date", "2025-06-30", "--json"], data_dir)
    again = json.loads(second.output.strip().splitlines()[-1])
    assert (again["sent"], again["already_sent"]) == (0, 1)
    assert again["outcomes"][0]["subscriber_id"] == sid
    assert len(outbox_files(settings, ".eml")) == counts["sent"]


def test_send_command_names_an_unknown_subscriber_and_a_bad_date(db, data_dir):
    assert "no subscriber matches" in cli(["send", "--subscriber", "nobody@example.org"], data_dir).output
    result = cli(["send", "--date", "30/06/2025"], data_dir)
    assert result.exit_code != 0 and "YYYY-MM-DD" in result.output


def test_preview_writes_html_text_eml_and_slack_json_and_records_nothing(db, settings, data_dir, tmp_path):
    sid = subscriber(db, settings)
    result = cli(
        ["preview", "--subscriber", str(sid), "--out", str(tmp_path / "p"), "--date", "2025-06-30"], data_dir
    )
    assert result.exit_code == 0, result.output
    assert "warning: DIGEST_BASE_URL is not set" in result.output  # a preview only shows the links
    names = sorted(path.name.split(".", 1)[1] for path in (tmp_path / "p").iterdir())
    assert names == ["eml", "html", "slack.json", "txt"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.get(Subscriber, sid).failure_count == 0


def test_send_refuses_to_mail_links_to_a_guessed_address_when_the_base_url_is_unset(db, settings, data_dir):
    subscriber(db, settings)
    env = {
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_RECENCY_DAYS": "100000",
    }
    smtp = env | {"DIGEST_SMTP_HOST": "mail.invalid"}  # refused before any connection is tried
    refused = CliRunner().invoke(main, ["send", "--date", "2025-06-30"], env=smtp)
    assert refused.exit_code == 1
    assert "Error: DIGEST_BASE_URL is not set" in refused.output and "http://127.0.0.1:8000" in refused.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    dry = CliRunner().invoke(main, ["send", "--date", "2025-06-30", "--dry-run"], env=smtp)
    assert dry.exit_code == 0 and "warning: DIGEST_BASE_URL is not set" in dry.output
    outbox = CliRunner().invoke(main, ["send", "--date", "2025-06-30", "--json"], env=env)
    assert outbox.exit_code == 0 and "warning: DIGEST_BASE_URL is not set" in outbox.output
    assert json.loads(outbox.output.strip().splitlines()[-1])["sent"] == 1


def test_send_with_the_base_url_set_says_nothing_about_it(db, settings, data_dir):
    subscriber(db, settings)
    env = {
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_SECRET_KEY": TEST_SECRET,
        "DIGEST_RECENCY_DAYS": "100000",
    }
    result = CliRunner().invoke(
        main, ["send", "--date", "2025-06-30"], env=env | {"DIGEST_BASE_URL": "https://d.example"}
    )
    assert result.exit_code == 0 and "DIGEST_BASE_URL" not in result.output
    (mail,) = outbox_files(settings, ".eml")
    text = message_from_bytes(mail.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
    assert "https://d.example/feedback/" in text
