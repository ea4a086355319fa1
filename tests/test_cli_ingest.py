"""`digest ingest` and `digest papers`, run through click's CliRunner against a SQLite file in tmp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ingest_support import abstract, api_entry, api_json, blank_lines_dump

from digest.cli import main

TITLE = "Acoustic Prompt Tuning: Empowering Large Language Models"


@pytest.fixture
def run(tmp_path: Path):
    env = {
        "DIGEST_DATA_DIR": str(tmp_path / "var"),
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
    }

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "2024-03-13.txt").write_text(
        blank_lines_dump([(TITLE, abstract("audio")), ("Grounded Objects", None)])
    )
    (folder / "2024-03-14.json").write_bytes(api_json(api_entry("2403.07937", TITLE)))
    return folder


def last_json(result: Result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ingest_json_reports_new_papers_and_a_second_run_reports_none(run, inbox):
    first = run("ingest", str(inbox), "--json")
    assert first.exit_code == 0
    report = last_json(first)
    assert (report["files"], report["files_rejected"], report["papers_new"], report["papers_duplicate"]) == (
        2,
        0,
        2,
        1,
    )
    second = last_json(run("ingest", str(inbox), "--json"))
    assert (second["files_already_seen"], second["papers_new"], second["papers_duplicate"]) == (2, 0, 0)


def test_ingest_prints_a_one_line_summary(run, inbox):
    result = run("ingest", str(inbox))
    assert result.stdout.strip() == (
        "2 files: 2 ingested, 0 rejected, 0 already seen (0 ignored); papers: 2 new, 1 duplicate, 1 enriched"
    )


def test_a_rejected_file_makes_the_exit_status_non_zero_and_is_named_on_stderr(run, inbox):
    (inbox / "broken.json").write_text('[{"paper": {"id": "2401.00001"}}]')
    result = run("ingest", str(inbox), "--json")
    assert result.exit_code == 1
    assert f"rejected {inbox / 'broken.json'}: entry 1 (2401.00001): no title" in result.stderr
    report = last_json(result)
    assert (report["files_rejected"], report["papers_new"]) == (1, 2)
    assert report["errors"] == [
        {"file": str(inbox / "broken.json"), "reason": "entry 1 (2401.00001): no title"}
    ]


def test_ingest_of_a_path_that_does_not_exist_is_a_usage_error(run, tmp_path):
    result = run("ingest", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_stats_counts_what_ingest_stored(run, inbox):
    run("ingest", str(inbox))
    stats = last_json(run("stats", "--json"))
    assert (stats["papers"], stats["digest_files"]) == (2, 2)


def test_papers_list_shows_newest_first_and_searches(run, inbox):
    run("ingest", str(inbox))
    listed = last_json(run("papers", "list", "--json"))
    assert [p["title"] for p in listed["papers"]] == ["Grounded Objects", TITLE]
    found = last_json(run("papers", "list", "--search", "2403.079", "--json"))
    assert [p["arxiv_id"] for p in found["papers"]] == ["2403.07937"]
    assert last_json(run("papers", "list", "--search", "100%", "--json"))["count"] == 0
    assert last_json(run("papers", "list", "--limit", "1", "--json"))["count"] == 1
    assert TITLE in run("papers", "list").stdout


def test_papers_show_by_arxiv_id_or_id_lists_the_files_that_listed_it(run, inbox):
    run("ingest", str(inbox))
    shown = last_json(run("papers", "show", "arxiv:2403.07937v2", "--json"))
    assert shown["title"] == TITLE and shown["url"] == "https://huggingface.co/papers/2403.07937"
    assert shown["appearances"] == [
        {"file": "2024-03-13.txt", "digest_date": "2024-03-13"},
        {"file": "2024-03-14.json", "digest_date": "2024-03-14"},
    ]
    text = run("papers", "show", str(shown["id"])).stdout
    assert "listed in     2024-03-14.json (2024-03-14)" in text and abstract("audio") in text


def test_papers_show_of_an_unknown_paper_fails_with_a_message(run, inbox):
    run("ingest", str(inbox))
    result = run("papers", "show", "9999.99999")
    assert result.exit_code == 1 and "no paper with id or arXiv id '9999.99999'" in result.stderr


@pytest.mark.parametrize("command", [["ingest"], ["papers"], ["papers", "list"], ["papers", "show"]])
def test_every_command_has_help(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_seeds_through_the_cli_give_440_new_papers_then_none(run, shared_dir):
    first = last_json(run("ingest", str(shared_dir / "seeds"), "--json"))
    second = last_json(run("ingest", str(shared_dir / "seeds"), "--json"))
    assert (first["papers_new"], first["files_rejected"]) == (440, 0)
    assert (second["papers_new"], second["files_already_seen"]) == (0, 4)
