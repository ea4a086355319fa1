"""The inbox watcher: files are ingested once they stopped changing, temporary names never."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.db import Database
from digest.ingest.inbox import InboxWatcher
from digest.models import DigestFile, Paper


def hf_json(prefix: str, count: int = 3) -> bytes:
    """A small digest in the Hugging Face daily-papers API layout."""
    items = [
        {
            "paper": {
                "id": f"2501.{prefix}{n:03d}",
                "title": f"Paper {prefix} number {n} on sparse attention",
                "summary": f"We study sparse attention variant {prefix}{n} for long-context language models.",
                "authors": [{"name": "Ada Lovelace"}],
                "publishedAt": "2025-01-02T00:00:00.000Z",
                "upvotes": n,
            },
            "title": f"Paper {prefix} number {n} on sparse attention",
        }
        for n in range(count)
    ]
    return json.dumps(items).encode()


def count(db: Database, table: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table))


class FakeClock:
    """Wall-clock seconds for the watcher's "not modified for a while" rule."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def fresh_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_new_file_is_ingested_on_the_second_poll_once_its_size_and_mtime_held_still(db, inbox):
    path = fresh_file(inbox / "day1.json", hf_json("1"))
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=FakeClock(path.stat().st_mtime + 1))
    assert watcher.poll() == []  # just appeared: might still be growing
    assert watcher.poll() == [path]
    assert count(db, Paper) == 3


def test_file_still_growing_is_not_read_until_it_stops(db, inbox):
    path = fresh_file(inbox / "day1.json", hf_json("1")[:40])  # half a JSON document
    clock = FakeClock(path.stat().st_mtime + 1)
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=clock)
    assert watcher.poll() == []
    path.write_bytes(hf_json("1"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert watcher.poll() == []  # changed since the last poll
    assert watcher.poll() == [path]
    assert count(db, DigestFile) == 1 and count(db, Paper) == 3


@pytest.mark.parametrize("name", [".day1.json", "day1.json.part", "day1.json.tmp", "~day1.json"])
def test_temporary_names_are_never_read(db, inbox, name):
    path = fresh_file(inbox / name, hf_json("1"))
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=FakeClock(path.stat().st_mtime + 3600))
    assert watcher.poll() == [] and watcher.poll() == []
    assert count(db, DigestFile) == 0


def test_file_renamed_into_place_is_ingested(db, inbox):
    part = fresh_file(inbox / "day1.json.part", hf_json("1"))
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=FakeClock(part.stat().st_mtime + 1))
    watcher.poll()
    final = part.rename(inbox / "day1.json")
    assert watcher.poll() == [] and watcher.poll() == [final]


def test_files_already_there_at_start_are_ingested_on_the_first_poll(db, inbox):
    path = fresh_file(inbox / "old.json", hf_json("1"))
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=FakeClock(path.stat().st_mtime + 31))
    assert watcher.poll() == [path]


def test_an_ingested_file_is_not_read_again_and_a_restart_adds_nothing(db, inbox):
    path = fresh_file(inbox / "old.json", hf_json("1"))
    clock = FakeClock(path.stat().st_mtime + 31)
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=clock)
    watcher.poll()
    assert watcher.poll() == [] and watcher.poll() == []
    restarted = InboxWatcher(db, inbox, settle_seconds=30, clock=clock)
    assert restarted.poll() == [path]  # offered once more; ingestion skips it by content hash
    assert count(db, DigestFile) == 1 and count(db, Paper) == 3


def test_a_bad_file_is_recorded_as_rejected_and_does_not_stop_the_good_one(db, inbox):
    bad = fresh_file(inbox / "a-bad.json", b"\x00\x01 not a digest")
    good = fresh_file(inbox / "b-good.json", hf_json("2"))
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=FakeClock(good.stat().st_mtime + 31))
    assert watcher.poll() == [bad, good]
    with db.session() as session:
        statuses = dict(session.execute(select(DigestFile.name, DigestFile.status)).all())
    assert statuses == {"a-bad.json": "rejected", "b-good.json": "ingested"}


def test_missing_inbox_folder_is_not_an_error(db, tmp_path):
    assert InboxWatcher(db, tmp_path / "nowhere", settle_seconds=30).poll() == []


def test_a_symlink_loop_in_the_inbox_is_skipped_and_the_other_files_are_ingested(db, tmp_path, caplog):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for prefix in ("1", "2", "3"):
        (inbox / f"2025-01-0{prefix}.json").write_bytes(hf_json(prefix))
    os.symlink(inbox / "loop-b.json", inbox / "loop-a.json")
    os.symlink(inbox / "loop-a.json", inbox / "loop-b.json")
    watcher = InboxWatcher(db, inbox, settle_seconds=0)
    assert len(watcher.poll()) == 3
    assert count(db, DigestFile) == 3 and count(db, Paper) == 9
    watcher.poll()
    assert sum("skipping loop-a.json" in r.message for r in caplog.records) == 1  # said once, not every poll


ARXIV = Path(__file__).parent / "fixtures" / "arxiv"


def test_an_arxiv_rss_file_and_an_api_response_dropped_in_the_inbox_are_ingested_once(db, inbox):
    feed = fresh_file(inbox / "cs.AI-2025-04-01.xml", (ARXIV / "rss-cs.AI-2025-04-01.xml").read_bytes())
    api = fresh_file(inbox / "query.atom", (ARXIV / "api-query-cs.AI-2025-04-03.xml").read_bytes())
    watcher = InboxWatcher(db, inbox, settle_seconds=30, clock=FakeClock(api.stat().st_mtime + 3600))
    assert watcher.poll() == [feed, api]
    with db.session() as session:
        formats = session.execute(select(DigestFile.name, DigestFile.status, DigestFile.format)).all()
    assert sorted(formats) == [
        ("cs.AI-2025-04-01.xml", "ingested", "arxiv/rss"),
        ("query.atom", "ingested", "arxiv/api"),
    ]
    papers = count(db, Paper)
    assert papers == 50 + 8  # the API response's ninth paper is one of the feed's, its tenth a replacement

    # The same feed again, under another name: nothing changes.
    copy = fresh_file(inbox / "again.xml", feed.read_bytes())
    assert watcher.poll() == [copy]
    assert (count(db, Paper), count(db, DigestFile)) == (papers, 2)
