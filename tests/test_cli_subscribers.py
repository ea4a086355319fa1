"""`digest subscribers …`, `digest deliveries list` and `digest feedback list`: an operator managing people
without SQL, run through click's CliRunner on a migrated SQLite file."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from common import TEST_SECRET
from library_support import add_topic_papers, speech_library
from sqlalchemy import func, select

from digest.cli import main
from digest.db import Database
from digest.dispatch import send_digest
from digest.models import Delivery, DeliveryItem, Feedback, Paper, Subscriber
from digest.rank import record_feedback
from digest.subscribers import create_subscriber

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXSECRET"
HEADER = ["email", "keywords", "exclude", "time", "timezone", "size", "weekdays", "cadence"]


@pytest.fixture
def run(db: Database, data_dir: Path):  # type: ignore[no-untyped-def]
    env = {"DIGEST_DATA_DIR": str(data_dir), "DIGEST_SECRET_KEY": TEST_SECRET}

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), env=env, input=stdin)

    return invoke


def last_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def add(db: Database, settings, **fields) -> int:  # type: ignore[no-untyped-def]
    values = {"email": "ada@example.org", "keywords": "diffusion, robotics"} | fields
    with db.session() as session:
        return create_subscriber(session, settings, **values).id


def count(db: Database, table: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table))


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def good_rows(n: int) -> list[list[str]]:
    return [
        [
            f"reader{i}@example.org",
            f"topic {i % 7}, diffusion",
            "",
            "07:30",
            "Europe/Paris",
            "5",
            "01234",
            "daily",
        ]
        for i in range(n)
    ]


# --- import, list, export --------------------------------------------------------------------------------


def test_import_of_a_thousand_rows_then_list_json_shows_a_thousand(run, db, tmp_path) -> None:
    result = run("subscribers", "import", str(write_csv(tmp_path / "people.csv", good_rows(1000))))
    assert result.exit_code == 0, result.output
    assert "imported 1000 subscribers" in result.output
    listed = last_json(run("subscribers", "list", "--json"))
    assert listed["count"] == 1000 and len(listed["subscribers"]) == 1000
    first = listed["subscribers"][0]
    assert (first["status"], first["channel"], first["address"]) == ("active", "email", "reader0@example.org")
    assert first["next_send_at"] is not None


def test_import_with_one_bad_row_stores_nothing_and_names_the_line_and_column(run, db, tmp_path) -> None:
    rows = good_rows(10)
    rows[6][3] = "25:00"  # the 8th line of the file (the header is line 1)
    result = run("subscribers", "import", str(write_csv(tmp_path / "people.csv", rows)))
    assert result.exit_code == 1
    assert "line 8, time: '25:00' is not a time of day" in result.output
    assert "nothing imported" in result.output and "Traceback" not in result.output
    assert count(db, Subscriber) == 0


def test_import_names_every_bad_field_of_every_bad_row(run, db, tmp_path) -> None:
    rows = good_rows(4)
    rows[0][0] = "not-an-address"
    rows[2][4], rows[2][5] = "Mars/Olympus", "99"
    result = run("subscribers", "import", str(write_csv(tmp_path / "people.csv", rows)))
    assert result.exit_code == 1
    for expected in ("line 2, email:", "line 4, timezone:", "line 4, size:"):
        assert expected in result.output
    assert count(db, Subscriber) == 0


def test_import_refuses_addresses_already_subscribed_or_repeated_in_the_file(
    run, db, settings, tmp_path
) -> None:
    add(db, settings, email="reader1@example.org")
    rows = good_rows(3) + [good_rows(3)[2]]
    result = run("subscribers", "import", str(write_csv(tmp_path / "people.csv", rows)))
    assert result.exit_code == 1
    assert "line 3, email: reader1@example.org already has a subscription" in result.output
    assert "line 5, email: reader2@example.org already has a subscription" in result.output
    assert count(db, Subscriber) == 1


def test_import_names_an_unknown_column_and_a_dry_run_stores_nothing(run, db, tmp_path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [["a@example.org", "x"]], header=["email", "interests"])
    result = run("subscribers", "import", str(bad))
    assert result.exit_code == 1 and "line 1: unknown column 'interests'" in result.output
    dry = run("subscribers", "import", "--dry-run", str(write_csv(tmp_path / "ok.csv", good_rows(3))))
    assert dry.exit_code == 0 and "would import 3 subscribers" in dry.output
    assert count(db, Subscriber) == 0


def test_import_reads_slack_destinations_and_a_paused_status(run, db, tmp_path) -> None:
    header = ["slack-webhook", "slack_channel", "keywords", "status"]
    rows = [[WEBHOOK, "", "graphs", "paused"], ["", "C0123ABCD", "graphs", ""]]
    result = run("subscribers", "import", str(write_csv(tmp_path / "slack.csv", rows, header)))
    assert result.exit_code == 0, result.output
    with db.session() as session:
        stored = [(s.channel, s.status, s.next_send_at is None) for s in session.scalars(select(Subscriber))]
    assert stored == [("slack_webhook", "paused", True), ("slack_bot", "active", False)]


def test_export_is_a_csv_that_import_reads_back(run, db, settings, tmp_path) -> None:
    add(db, settings, excluded_keywords="medical, surveys", send_time="18:45", timezone="Asia/Tokyo")
    add(db, settings, email=None, slack_webhook_url=WEBHOOK, keywords="graphs", status="paused")
    exported = run("subscribers", "export")
    assert exported.exit_code == 0, exported.output
    (tmp_path / "export.csv").write_text(exported.output)
    second = Database(settings.model_copy(update={"data_dir": tmp_path / "other"}), migrate=True)
    env = {"DIGEST_DATA_DIR": str(tmp_path / "other"), "DIGEST_SECRET_KEY": TEST_SECRET}
    result = CliRunner().invoke(main, ["subscribers", "import", str(tmp_path / "export.csv")], env=env)
    assert result.exit_code == 0, result.output
    fields = lambda s: (s.email, s.slack_webhook_url, s.keywords, s.excluded_keywords, s.send_time, s.status)  # noqa: E731
    with db.session() as session, second.session() as copy:
        assert [fields(s) for s in copy.scalars(select(Subscriber))] == [
            fields(s) for s in session.scalars(select(Subscriber))
        ]
    second.dispose()
    as_json = last_json(run("subscribers", "export", "--json"))
    assert as_json["count"] == 2 and as_json["subscribers"][0]["time"] == "18:45"


def test_list_filters_by_status_and_hides_webhook_urls(run, db, settings) -> None:
    add(db, settings)
    add(db, settings, email=None, slack_webhook_url=WEBHOOK, status="paused")
    paused = last_json(run("subscribers", "list", "--status", "paused", "--json"))
    assert [s["address"] for s in paused["subscribers"]] == ["webhook hooks.slack.com/…"]
    plain = run("subscribers", "list")
    assert (
        "ada@example.org" in plain.output and "SECRET" not in plain.output and "2 subscribers" in plain.output
    )
    assert run("subscribers", "list", "--status", "sleeping").exit_code == 2


# --- show, edit, pause, resume, remove ---------------------------------------------------------------------


def paper(db: Database, n: int) -> int:
    with db.session() as session:
        row = Paper(
            key=f"arxiv:2501.{n:05d}", arxiv_id=f"2501.{n:05d}", title_key=f"p{n}", title=f"Paper {n}"
        )
        session.add(row)
        session.flush()
        return row.id


def deliver(db: Database, sid: int, day: dt.date, papers: list[int], status: str = "sent") -> None:
    with db.session() as session:
        delivery = Delivery(subscriber_id=sid, digest_date=day, channel="email", status=status, reason=None)
        session.add(delivery)
        session.flush()
        for position, pid in enumerate(papers):
            session.add(
                DeliveryItem(delivery_id=delivery.id, subscriber_id=sid, paper_id=pid, position=position)
            )


def vote(db: Database, sid: int, pid: int, value: int) -> None:
    with db.session() as session:
        record_feedback(session, session.get(Subscriber, sid), pid, value, "web")


def test_show_gives_channel_keywords_schedule_status_votes_and_last_deliveries(run, db, settings) -> None:
    sid = add(db, settings, excluded_keywords="medical", send_time="06:15", timezone="Europe/Berlin")
    papers = [paper(db, n) for n in range(1, 5)]
    deliver(db, sid, dt.date(2025, 6, 29), papers[:2])
    deliver(db, sid, dt.date(2025, 6, 30), papers[2:])
    vote(db, sid, papers[0], 1)
    vote(db, sid, papers[1], 1)
    vote(db, sid, papers[1], -1)  # changed their mind: the newest vote counts
    vote(db, sid, papers[2], -1)
    shown = last_json(run("subscribers", "show", "ada@example.org", "--json"))
    assert shown["channel"] == "email" and shown["keywords"] == ["diffusion", "robotics"]
    assert shown["excluded_keywords"] == ["medical"] and shown["status"] == "active"
    assert shown["schedule"] == {
        "time": "06:15",
        "timezone": "Europe/Berlin",
        "weekdays": "0123456",
        "cadence": "daily",
        "size": 10,
    }
    assert shown["next_send_at"].endswith("UTC") and shown["votes"] == {"up": 1, "down": 2}
    assert [(d["digest_date"], d["papers"]) for d in shown["deliveries"]] == [
        ("2025-06-30", 2),
        ("2025-06-29", 2),
    ]
    text = run("subscribers", "show", str(sid))
    assert text.exit_code == 0 and "👍 1  👎 2" in text.output and "2025-06-30 sent, 2 papers" in text.output


def test_show_of_an_unknown_subscriber_is_one_line_and_exit_1(run, db) -> None:
    result = run("subscribers", "show", "nobody@example.org")
    assert result.exit_code == 1 and result.output == "Error: 'nobody@example.org' matches no subscriber\n"


def test_edit_takes_the_subscribe_flags_and_checks_them_the_same_way(run, db, settings) -> None:
    sid = add(db, settings)
    result = run("subscribers", "edit", str(sid), "--keywords", "graphs", "--time", "21:05", "--size", "3")
    assert result.exit_code == 0, result.output
    with db.session() as session:
        stored = session.get(Subscriber, sid)
        assert (stored.keywords, stored.send_time, stored.digest_size) == (["graphs"], "21:05", 3)
    bad = run("subscribers", "edit", str(sid), "--time", "25:00", "--timezone", "Mars/Olympus", "--size", "0")
    assert bad.exit_code == 1
    assert "--time: '25:00' is not a time of day as HH:MM" in bad.output
    assert (
        "--timezone: 'Mars/Olympus' is not a time zone" in bad.output
        and "--size: must be between" in bad.output
    )
    assert "send_time" not in bad.output and "digest_size" not in bad.output
    with db.session() as session:
        assert session.get(Subscriber, sid).send_time == "21:05"


def test_edit_can_move_a_subscription_to_another_address_but_not_onto_a_taken_one(run, db, settings) -> None:
    sid = add(db, settings)
    add(db, settings, email="bo@example.org")
    moved = run("subscribers", "edit", str(sid), "--slack-channel", "C0123ABCD")
    assert moved.exit_code == 0, moved.output
    with db.session() as session:
        stored = session.get(Subscriber, sid)
        assert (stored.channel, stored.slack_channel, stored.email) == ("slack_bot", "C0123ABCD", None)
    taken = run("subscribers", "edit", str(sid), "--email", "bo@example.org", "--keywords", "x")
    assert taken.exit_code == 1 and "--email: this address already has a subscription" in taken.output
    with db.session() as session:
        stored = session.get(Subscriber, sid)
        assert (stored.channel, stored.keywords) == ("slack_bot", ["diffusion", "robotics"])
    assert run("subscribers", "edit", str(sid)).exit_code == 2  # nothing to change


def test_pause_and_resume_move_the_schedule(run, db, settings) -> None:
    sid = add(db, settings)
    assert run("subscribers", "pause", str(sid)).output == f"subscriber {sid} is paused\n"
    with db.session() as session:
        assert session.get(Subscriber, sid).next_send_at is None
    again = run("subscribers", "pause", str(sid))
    assert again.exit_code == 1 and "is paused: nothing to change" in again.output
    assert run("subscribers", "resume", "ada@example.org").exit_code == 0
    with db.session() as session:
        stored = session.get(Subscriber, sid)
        assert stored.status == "active" and stored.next_send_at is not None


def test_remove_asks_unless_yes_and_erases_the_persons_data(run, db, settings) -> None:
    sid, other = add(db, settings), add(db, settings, email="bo@example.org")
    pid = paper(db, 1)
    for who in (sid, other):
        deliver(db, who, dt.date(2025, 6, 30), [pid])
        vote(db, who, pid, 1)
    refused = run("subscribers", "remove", str(sid))  # no terminal to ask: refused, nothing removed
    assert refused.exit_code == 1 and "--yes" in refused.output and count(db, Subscriber) == 2
    done = run("subscribers", "remove", str(sid), "--yes")
    assert done.exit_code == 0 and f"removed subscriber {sid}" in done.output
    with db.session() as session:
        for table in (Feedback, Delivery, DeliveryItem):
            assert session.scalar(select(func.count()).where(table.subscriber_id == sid)) == 0
            assert session.scalar(select(func.count()).where(table.subscriber_id == other)) == 1
        assert session.get(Subscriber, sid) is None


# --- deliveries and feedback -------------------------------------------------------------------------------


def test_deliveries_list_filters_by_subscriber_and_date(run, db, settings) -> None:
    ada, bo = add(db, settings), add(db, settings, email="bo@example.org")
    pids = [paper(db, n) for n in range(1, 4)]
    deliver(db, ada, dt.date(2025, 6, 29), pids[:1])
    deliver(db, ada, dt.date(2025, 6, 30), pids[1:])
    deliver(db, bo, dt.date(2025, 6, 30), [], status="skipped_empty")
    every = last_json(run("deliveries", "list", "--json"))
    assert every["count"] == 3 and every["deliveries"][0]["digest_date"] == "2025-06-30"
    ada_only = last_json(run("deliveries", "list", "--subscriber", "ada@example.org", "--json"))
    assert [(d["digest_date"], d["papers"]) for d in ada_only["deliveries"]] == [
        ("2025-06-30", 2),
        ("2025-06-29", 1),
    ]
    day = last_json(run("deliveries", "list", "--date", "2025-06-30", "--json"))
    assert sorted(d["subscriber"] for d in day["deliveries"]) == [ada, bo]
    bad_date = run("deliveries", "list", "--date", "30/06/2025")
    assert bad_date.exit_code == 2 and "--date" in bad_date.output


def test_feedback_list_shows_every_vote_newest_first(run, db, settings) -> None:
    sid = add(db, settings)
    first, second = paper(db, 1), paper(db, 2)
    vote(db, sid, first, 1)
    vote(db, sid, second, -1)
    listed = last_json(run("feedback", "list", "--subscriber", str(sid), "--json"))
    assert [(f["paper_id"], f["vote"], f["title"]) for f in listed["feedback"]] == [
        (second, "down", "Paper 2"),
        (first, "up", "Paper 1"),
    ]
    text = run("feedback", "list", "--subscriber", "ada@example.org")
    assert "👎" in text.output and "2501.00002" in text.output and "2 votes" in text.output


def test_help_lists_every_command_with_its_purpose_uncut() -> None:
    groups = [([], main)] + [
        ([name], cmd) for name, cmd in main.commands.items() if isinstance(cmd, click.Group)
    ]
    for path, group in groups:
        result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
        listing = " ".join(result.output.split("Commands:")[1].split())
        for name, command in group.commands.items():
            purpose = " ".join((command.help or "").split("\n\n")[0].split())
            assert purpose and f"{name} {purpose}" in listing, (path, name)
        assert "..." not in listing


# --- a library as the cold start -------------------------------------------------------------------------


def test_a_bibtex_library_of_20_entries_given_at_subscribe_time_ranks_the_first_digest(
    run, db, settings, tmp_path
) -> None:
    ids = add_topic_papers(db, per_topic=16)
    library = tmp_path / "library.bib"
    library.write_text(speech_library(matched=8, texts=12))
    result = run("subscribe", "--email", "ada@example.org", "--library", str(library))
    assert result.exit_code == 0, result.output
    sid = int(result.stdout.strip())
    assert "library: 20 entries: 8 stored papers liked (8 newly), 12 liked texts" in result.stderr
    other = int(run("subscribe", "--email", "bo@example.org", "--keywords", "lattice signatures").stdout)

    outcome = send_digest(db, settings, sid, dt.date.today())
    assert outcome.status == "sent", outcome.reason
    with db.session() as session:
        items = session.scalars(
            select(DeliveryItem).where(DeliveryItem.subscriber_id == sid).order_by(DeliveryItem.position)
        ).all()
    assert {item.paper_id for item in items[:8]} == set(ids["speech"][8:])  # the speech papers not yet liked
    assert all(item.why.endswith("in your library") for item in items[:8])
    assert not {item.paper_id for item in items} & set(ids["speech"][:8])  # the library's own papers: never
    # The same day's digest for keywords on another topic starts elsewhere: the library made the ranking.
    send_digest(db, settings, other, dt.date.today())
    with db.session() as session:
        first = session.scalar(
            select(DeliveryItem.paper_id).where(
                DeliveryItem.subscriber_id == other, DeliveryItem.position == 1
            )
        )
    assert first in ids["crypto"]


def test_a_bad_library_stores_nothing_and_names_every_bad_entry(run, db, tmp_path) -> None:
    library = tmp_path / "library.bib"
    library.write_text(
        speech_library(2, 2) + "@misc{empty, year = {2020}}\n@article{x, title = {A}}\n@article{x,}\n"
    )
    result = run("subscribe", "--email", "ada@example.org", "--library", str(library))
    assert result.exit_code == 1
    assert "entry 'empty' (line 21): no title, arXiv id or DOI" in result.stderr
    assert "entry 'x' (line 23): the key is used twice" in result.stderr
    assert "--library: 2 problems in" in result.stderr and "nothing stored" in result.stderr
    assert count(db, Subscriber) == 0 and count(db, Feedback) == 0


def test_without_a_library_keywords_are_still_required(run, db) -> None:
    result = run("subscribe", "--email", "ada@example.org")
    assert result.exit_code == 1 and "--keywords: give at least one keyword" in result.stderr
    assert count(db, Subscriber) == 0


def test_edit_imports_a_library_and_show_counts_it(run, db, settings, tmp_path) -> None:
    add_topic_papers(db, per_topic=4)
    sid = add(db, settings)
    library = tmp_path / "zotero.json"
    library.write_text(json.dumps([{"id": "a", "title": "A paper we do not have", "abstract": "On speech."}]))
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("2501.10000\narXiv:2501.10001v2\n2412.00001\n")
    assert run("subscribers", "edit", str(sid), "--library", str(library)).exit_code == 0
    result = run("subscribers", "edit", str(sid), "--library", str(ids_file), "--keywords", "")
    assert result.exit_code == 0, result.output
    assert "left aside: line 3: arXiv 2412.00001 is not among the stored papers" in result.stderr
    shown = run("subscribers", "show", str(sid))
    assert "library    2 stored papers, 0 liked texts" in shown.stdout  # the id list replaced the texts
    with db.session() as session:
        assert session.get(Subscriber, sid).keywords == []  # with a library, keywords may go
    assert last_json(run("subscribers", "show", str(sid), "--json"))["library"] == {"papers": 2, "texts": 0}
