"""The ingestion service on a real migrated database: dedupe, enrichment, idempotence, rejections."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from common import TEST_SECRET
from ingest_support import (
    abstract,
    alternating_dump,
    api_entry,
    api_json,
    appearances,
    blank_lines_dump,
    digest_files,
    paper_rows,
    papers_by_title,
)
from sqlalchemy import func, select

from digest.config import load_settings
from digest.db import Database
from digest.ingest.papers import find_paper, list_papers
from digest.ingest.service import collect, ingest_bytes, ingest_file, ingest_paths, name_date
from digest.models import Appearance, DigestFile, Paper

TITLE = "Acoustic Prompt Tuning: Empowering Large Language Models"
OTHER = "UCF: Uncovering Common Features for Deepfake Detection"


def write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- dedupe -----------------------------------------------------------------------------------------


def test_a_text_entry_and_a_json_entry_of_the_same_paper_are_one_paper_enriched(db, tmp_path):
    text = write(
        tmp_path, "2024-03-13.txt", blank_lines_dump([(TITLE.upper(), None), (OTHER, abstract("x"))])
    )
    api = write(tmp_path, "2024-03-14.json", api_json(api_entry("2403.07937", TITLE.replace(" ", "\n  ", 1))))
    report = ingest_paths(db, [text, api])
    assert (report.papers_new, report.papers_duplicate, report.papers_enriched) == (2, 1, 1)
    paper = papers_by_title(db)[TITLE.upper()]  # the first listing's title stays
    assert (paper.key, paper.arxiv_id, paper.abstract) == (
        "arxiv:2403.07937",
        "2403.07937",
        abstract(TITLE.lower()),
    )
    assert paper.authors == ["Ada Lovelace", "Alan Turing"] and paper.upvotes == 7
    assert [(f, d) for t, f, d in appearances(db) if t == paper.title] == [
        ("2024-03-13.txt", dt.date(2024, 3, 13)),
        ("2024-03-14.json", dt.date(2024, 3, 14)),
    ]


def test_a_later_listing_never_overwrites_what_is_stored(db, tmp_path):
    ingest_paths(
        db, [write(tmp_path, "a.json", api_json(api_entry("2403.07937", TITLE, "The stored abstract.")))]
    )
    before = paper_rows(db)
    dump = blank_lines_dump([(TITLE, abstract("something else entirely")), (OTHER, None)])
    report = ingest_paths(db, [write(tmp_path, "b.txt", dump)])
    assert (report.papers_new, report.papers_duplicate, report.papers_enriched) == (1, 1, 0)
    assert {key: row for key, row in paper_rows(db).items() if key in before} == before


def test_duplicates_within_one_file_are_one_paper_listed_once(db, tmp_path):
    dump = alternating_dump([(TITLE, abstract("a")), (OTHER, abstract("b")), (TITLE + "!", abstract("a"))])
    report = ingest_paths(db, [write(tmp_path, "dup.txt", dump)])
    assert (report.papers_new, report.papers_duplicate) == (2, 1)
    assert count(db, Paper) == 2 and count(db, Appearance) == 2
    (row,) = digest_files(db)
    assert (row.papers_total, row.papers_new, row.papers_duplicate) == (3, 2, 1)


def test_the_same_arxiv_id_is_one_paper_even_when_the_title_was_revised(db):
    ingest_bytes(db, "a.json", api_json(api_entry("2403.07937v1", TITLE)))
    report = ingest_bytes(db, "b.json", api_json(api_entry("2403.07937v2", TITLE + ": Revised")))
    assert (report.papers_new, report.papers_duplicate) == (0, 1)
    assert list(papers_by_title(db)) == [TITLE]


def test_one_title_with_two_arxiv_ids_is_two_papers_with_distinct_title_keys(db):
    ingest_bytes(db, "a.json", api_json(api_entry("2401.00001", "Scaling Laws")))
    report = ingest_bytes(db, "b.json", api_json(api_entry("2402.00002", "Scaling laws")))
    assert report.papers_new == 1
    with db.session() as session:
        keys = sorted(session.scalars(select(Paper.title_key)))
    assert keys == ["scalinglaws", "scalinglaws~arxiv:2402.00002"]


def test_a_file_with_more_entries_than_one_lookup_chunk_still_finds_every_known_paper(db):
    entries = [api_entry(f"2401.{n:05d}", f"Paper number {n}", "Short.") for n in range(1, 1201)]
    ingest_bytes(db, "a.json", api_json(*entries[:700]))
    untitled_ids = [{"paper": {"title": f"Paper number {n}"}} for n in range(1, 11)]  # matched by title
    report = ingest_bytes(db, "b.json", api_json(*entries, *untitled_ids))
    assert (report.papers_new, report.papers_duplicate) == (500, 710)
    assert count(db, Paper) == 1200


# --- idempotence ------------------------------------------------------------------------------------


def test_the_same_file_again_changes_nothing_and_says_so(db, tmp_path):
    path = write(tmp_path, "day.txt", blank_lines_dump([(TITLE, abstract("a"))]))
    first = ingest_paths(db, [path])
    before = (paper_rows(db), count(db, DigestFile), count(db, Appearance))
    again = ingest_paths(db, [path, write(tmp_path, "copy/renamed.txt", path.read_bytes())])
    assert (first.files_ingested, again.files_already_seen, again.papers_new, again.papers_duplicate) == (
        1,
        2,
        0,
        0,
    )
    assert "same content as day.txt, ingested on" in again.results[0].reason
    assert (paper_rows(db), count(db, DigestFile), count(db, Appearance)) == before


def test_ingest_bytes_uses_the_given_digest_date_and_is_idempotent(db):
    day = dt.date(2025, 6, 30)
    data = api_json(api_entry("2506.00001", TITLE))
    first = ingest_bytes(db, "hf-daily.json", data, digest_date=day)
    again = ingest_bytes(db, "hf-daily.json", data, digest_date=day)
    assert (first.files_ingested, first.papers_new, again.files_already_seen) == (1, 1, 1)
    assert [(f.digest_date, f.format) for f in digest_files(db)] == [(day, "json/api")]
    assert appearances(db) == [(TITLE, "hf-daily.json", day)]


# --- bad input --------------------------------------------------------------------------------------

BAD_FILES = {
    "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00", "binary data, not text: NUL byte at offset 8 (line 3)"),
    "empty.txt": (b"", "empty file"),
    "shape.json": (b'{"answer": 42}', "wrong JSON shape: an object with no list under 'data' or 'papers'"),
    "untitled.json": (api_json(api_entry("2401.00001", "Fine"), {"paper": {"id": "2401.00002"}}), "entry 2"),
    "orphan.txt": (f"new\nSubscribe\n{abstract('orphans')}\n".encode(), "no papers found"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_recorded_as_rejected_with_a_clear_reason_and_the_batch_goes_on(db, tmp_path, name):
    ingest_paths(db, [write(tmp_path, "first.json", api_json(api_entry("2301.00001", OTHER)))])
    before = paper_rows(db)
    data, reason = BAD_FILES[name]
    report = ingest_paths(
        db, [write(tmp_path, name, data), write(tmp_path, "z.txt", blank_lines_dump([(TITLE, None)]))]
    )
    assert (report.files_rejected, report.files_ingested, report.papers_new) == (1, 1, 1)
    assert report.errors[0]["file"].endswith(name) and reason in report.errors[0]["reason"]
    rejected = [f for f in digest_files(db) if f.status == "rejected"]
    assert [(f.name, f.papers_total) for f in rejected] == [(name, 0)] and reason in rejected[0].error
    assert {key: row for key, row in paper_rows(db).items() if key in before} == before


def test_an_entry_without_a_title_names_the_entry_and_stores_nothing_from_the_file(db):
    data = api_json(api_entry("2401.00001", TITLE), {"paper": {"id": "2401.00002", "title": " "}})
    report = ingest_bytes(db, "x.json", data)
    assert report.errors == [{"file": "x.json", "reason": "entry 2 (2401.00002): no title"}]
    assert count(db, Paper) == 0 and count(db, Appearance) == 0


def test_a_rejected_file_offered_again_is_already_seen_with_its_reason(db, tmp_path):
    path = write(tmp_path, "bad.json", b"[1, 2")
    first, again = ingest_paths(db, [path]), ingest_paths(db, [path])
    assert (first.files_rejected, again.files_rejected, again.files_already_seen) == (1, 0, 1)
    assert "rejected on" in again.results[0].reason and "invalid JSON" in again.results[0].reason
    assert count(db, DigestFile) == 1


def test_a_file_over_the_size_limit_is_rejected_without_being_read(tmp_path, data_dir):
    small = Database(
        load_settings(data_dir=data_dir, secret_key=TEST_SECRET, max_file_bytes=1000), migrate=True
    )
    path = write(tmp_path, "big.txt", blank_lines_dump([(TITLE, abstract("a" * 900))]))
    result = ingest_file(small, path)
    assert result.status == "rejected"
    assert (
        result.reason == f"too big: {path.stat().st_size} bytes (limit 1000, DIGEST_MAX_FILE_BYTES); not read"
    )
    assert ingest_file(small, path).status == "already_seen"
    assert count(small, Paper) == 0 and count(small, DigestFile) == 1
    small.dispose()


def test_a_sparse_gigabyte_file_is_rejected_from_its_size_alone(db, tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)  # sparse: no disk used, and the default limit is 50 MB
    result = ingest_file(db, path)
    assert result.status == "rejected" and result.reason.startswith(f"too big: {1 << 30} bytes")


def test_ingest_bytes_applies_the_size_limit_too(tmp_path, data_dir):
    small = Database(
        load_settings(data_dir=data_dir, secret_key=TEST_SECRET, max_file_bytes=10), migrate=True
    )
    report = ingest_bytes(small, "x.json", api_json(api_entry("2401.00001", TITLE)))
    assert report.files_rejected == 1 and report.errors[0]["reason"].startswith("too big:")
    small.dispose()


def test_nul_characters_and_lone_surrogates_in_json_are_dropped_not_stored(db):
    data = b'[{"paper": {"id": "2401.00001", "title": "Mamba\\u0000 \\ud800Out", "summary": "Fast.\\udc00",'
    data += b' "authors": [{"name": "Ada\\u0000 \\ud83d"}]}}]'
    assert ingest_bytes(db, "x.json", data).files_ingested == 1
    (paper,) = papers_by_title(db).values()
    assert (paper.title, paper.abstract, paper.authors) == ("Mamba Out", "Fast.", ["Ada"])


def test_messages_quoting_nul_or_surrogates_and_undecodable_file_names_are_stored_escaped(db, tmp_path):
    report = ingest_bytes(db, "x.json", b'{"\\ud800k\\u0000": 1}')
    assert report.errors[0]["reason"].endswith("(keys: \\ud800k\\x00)")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / os.fsdecode(b"\xff.json")).write_bytes(b"[1")
    report = ingest_paths(db, [folder])
    assert report.errors[0]["file"].endswith("in/\\udcff.json")
    assert [f.name for f in digest_files(db)] == ["x.json", "\\udcff.json"]


def test_a_missing_path_is_reported_and_not_recorded(db, tmp_path):
    report = ingest_paths(db, [tmp_path / "nowhere.txt"])
    assert report.files_rejected == 1 and report.errors[0]["reason"].startswith("cannot read:")
    assert count(db, DigestFile) == 0


# --- walking folders --------------------------------------------------------------------------------


def test_folders_are_walked_for_txt_and_json_skipping_licences_hidden_and_other_files(tmp_path):
    for name in (
        "a.txt",
        "b.JSON",
        "sub/c.txt",
        "LICENSE-archive-repo.txt",
        "README.txt",
        ".hidden.txt",
        ".git/x.json",
        "notes.md",
        "data.csv",
    ):
        write(tmp_path / "in", name, "x")
    explicit = write(tmp_path, "LICENSE.txt", "x")
    files, ignored = collect([tmp_path / "in", explicit])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "in/a.txt",
        "in/b.JSON",
        "in/sub/c.txt",
        "LICENSE.txt",
    ]
    assert len(ignored) == 6


def test_a_json_file_without_the_json_suffix_is_still_read_as_json(db, tmp_path):
    report = ingest_paths(db, [write(tmp_path, "feed.dat", api_json(api_entry("2401.00001", TITLE)))])
    assert report.files_ingested == 1 and digest_files(db)[0].format == "json/api"


def test_a_text_dump_whose_first_title_starts_with_a_bracket_is_still_a_page_dump(db, tmp_path):
    dump = "\n".join(["[CLS] Tokens Tell Everything", abstract("cls tokens"), OTHER, abstract("x")])
    report = ingest_paths(db, [write(tmp_path, "day.txt", dump)])
    assert report.papers_new == 2 and digest_files(db)[0].format == "text/alternating"


def test_a_year_less_date_is_inferred_from_the_date_in_the_file_name_else_its_mtime(db, tmp_path):
    named = write(tmp_path, "digest-2025-03-12.txt", blank_lines_dump([(TITLE, None)], date="Mar 13"))
    plain = write(tmp_path, "digest.txt", blank_lines_dump([(OTHER, None)], date="Dec 31"))
    mtime = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC).timestamp()
    os.utime(plain, (mtime, mtime))
    ingest_paths(db, [named, plain])
    assert [f.digest_date for f in digest_files(db)] == [dt.date(2024, 3, 13), dt.date(2025, 12, 31)]


def test_name_date_finds_an_iso_date_in_a_file_name():
    assert name_date("hf-daily-2025-06-30.json") == dt.date(2025, 6, 30)
    assert name_date("2025-02-30.json") is None and name_date("000_736990bd188fc5c1.txt") is None


def test_the_report_has_the_documented_json_keys(db, tmp_path):
    report = ingest_paths(db, [write(tmp_path, "a.txt", blank_lines_dump([(TITLE, None)]))])
    payload = json.loads(json.dumps(report.as_dict()))
    assert {
        "files",
        "files_rejected",
        "papers_new",
        "papers_duplicate",
        "files_already_seen",
        "errors",
    } <= set(payload)
    assert report.summary().startswith("1 files: 1 ingested, 0 rejected, 0 already seen")


# --- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_ingest_dedupes_enriches_and_rejects_the_same_way_on_postgresql(pg_db, tmp_path):
    text = write(tmp_path, "a.txt", blank_lines_dump([(TITLE, None), (OTHER, abstract("x"))]))
    api = write(tmp_path, "2024-03-14.json", api_json(api_entry("2403.07937", TITLE)))
    bad = write(tmp_path, "bad.json", b'{"nope": 1}')
    report = ingest_paths(pg_db, [text, api, bad])
    assert (report.files_ingested, report.files_rejected, report.papers_new, report.papers_enriched) == (
        2,
        1,
        2,
        1,
    )
    assert papers_by_title(pg_db)[TITLE].key == "arxiv:2403.07937"
    nul = b'[{"paper": {"id": "2401.00001", "title": "Nul\\u0000 Title", "summary": "\\u0000"}}]'
    assert ingest_bytes(pg_db, "nul.json", nul).files_ingested == 1  # PostgreSQL refuses NUL in text
    with pg_db.session() as session:
        assert [p.title for p in list_papers(session, search="UNCOVERING")] == [OTHER]
        assert find_paper(session, "2403.07937v1").title == TITLE
    assert ingest_paths(pg_db, [text, api, bad]).files_already_seen == 3


# --- the real data in ../shared ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path):
    """Seeds, then the 284 archived API files, ingested once for the tests below (a few seconds)."""
    data_dir = tmp_path_factory.mktemp("real")
    settings = load_settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'real.sqlite3'}",
        secret_key=TEST_SECRET,
        max_file_bytes=50 * 1024 * 1024,
    )
    database = Database(settings, migrate=True)
    seeds = ingest_paths(database, [shared_dir / "seeds"])
    seeds_again = ingest_paths(database, [shared_dir / "seeds"])
    hf_daily = ingest_paths(database, [shared_dir / "data" / "hf_daily"])
    yield database, seeds, seeds_again, hf_daily
    database.dispose()


def test_the_four_seeds_hold_exactly_440_distinct_papers(real_db):
    _, seeds, _, _ = real_db
    assert (seeds.files_ingested, seeds.papers_new, seeds.files_rejected) == (4, 440, 0)
    assert seeds.papers_new + seeds.papers_duplicate == 489  # 60 + 271 + 68 + 90 listings


def test_the_seeds_again_add_nothing(real_db):
    _, _, again, _ = real_db
    assert (again.files_already_seen, again.papers_new, again.papers_duplicate) == (4, 0, 0)


def test_every_archived_api_file_is_ingested_including_the_22_malformed_ones(real_db):
    database, _, _, hf_daily = real_db
    assert (hf_daily.files, hf_daily.files_ingested, hf_daily.files_rejected) == (284, 284, 0)
    assert [Path(p).name for p in hf_daily.ignored] == ["LICENSE-archive-repo.txt"]
    with database.session() as session:
        formats = dict(
            session.execute(select(DigestFile.format, func.count()).group_by(DigestFile.format)).all()
        )
    assert formats == {
        "json/api": 262,
        "json/python-repr": 21,
        "json/wrapper+python-repr": 1,
        "text/blank-lines": 3,
        "text/alternating": 1,
    }


def test_seeds_and_api_files_together_hold_at_least_3700_papers_one_per_arxiv_id(real_db):
    database, _, _, hf_daily = real_db
    with database.session() as session:
        papers = session.scalar(select(func.count()).select_from(Paper))
        with_id = session.scalar(select(func.count(Paper.arxiv_id.distinct())))
    assert papers >= 3700 and papers == 440 + hf_daily.papers_new
    # Each API paper is new (with its id) or gave its id to a seed paper that had none.
    assert with_id == hf_daily.papers_new + hf_daily.papers_enriched


def test_seed_dates_without_a_year_are_dated_and_api_files_by_their_name(real_db):
    database, _, _, _ = real_db
    with database.session() as session:
        rows = session.execute(select(DigestFile.name, DigestFile.digest_date)).all()
    dates = dict(rows)
    assert dates["2024-05-27.json"] == dt.date(2024, 5, 27)
    assert dates["001_beef877ba1362dc4.txt"] is None  # that dump shows no date
    assert (dates["000_736990bd188fc5c1.txt"].month, dates["000_736990bd188fc5c1.txt"].day) == (3, 13)


# --- arXiv listings ------------------------------------------------------------------------------------

ARXIV = Path(__file__).parent / "fixtures" / "arxiv"


def arxiv_file(tmp_path: Path, name: str, as_name: str | None = None) -> Path:
    return write(tmp_path, as_name or name, (ARXIV / name).read_bytes())


def test_an_arxiv_rss_file_stores_its_new_papers_and_cross_lists_but_no_replacement(db, tmp_path):
    report = ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml")])
    (result,) = report.results
    assert (result.status, result.format, result.digest_date) == (
        "ingested",
        "arxiv/rss",
        dt.date(2025, 4, 1),
    )
    assert (result.papers_total, result.papers_new, result.papers_duplicate) == (60, 50, 0)
    stored = {paper.arxiv_id for paper in papers_by_title(db).values()}
    assert "2503.12885" not in stored  # a replace-cross of a paper never stored: not a new paper
    assert count(db, Appearance) == 50


def test_a_second_identical_feed_changes_nothing(db, tmp_path):
    ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml")])
    before = (count(db, Paper), count(db, Appearance), count(db, DigestFile))
    again = ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml", "copy/feed.xml")])
    assert again.results[0].status == "already_seen"
    assert (count(db, Paper), count(db, Appearance), count(db, DigestFile)) == before


def test_a_paper_seen_through_hugging_face_and_through_arxiv_is_one_paper(db, tmp_path):
    ingest_paths(db, [arxiv_file(tmp_path, "hf-2025-04-01.json")])
    hf_ids = {paper.arxiv_id: paper.id for paper in papers_by_title(db).values()}
    report = ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml")])
    assert (report.papers_new, report.papers_duplicate) == (45, 5)
    assert {p.arxiv_id: p.id for p in papers_by_title(db).values() if p.arxiv_id in hf_ids} == hf_ids


def test_a_replacement_or_a_second_listing_of_a_stored_paper_is_no_new_paper(db, tmp_path):
    ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml")])
    atom = ingest_paths(db, [arxiv_file(tmp_path, "atom-cs.AI-2025-04-02.xml")])
    api = ingest_paths(db, [arxiv_file(tmp_path, "api-query-cs.AI-2025-04-03.xml")])
    assert (atom.papers_new, atom.papers_duplicate) == (20, 2)  # replace + replace-cross of 04-01 papers
    assert (api.papers_new, api.papers_duplicate) == (8, 1)  # and an old paper's third version: left out
    assert "2405.21060" not in {paper.arxiv_id for paper in papers_by_title(db).values()}
    assert count(db, Paper) == 78


def test_an_arxiv_doi_is_stored_and_fills_the_gap_of_a_paper_stored_without_one(db, tmp_path):
    ingest_paths(db, [arxiv_file(tmp_path, "api-query-cs.AI-2025-04-03.xml")])
    paper = find_paper_by_arxiv(db, "2504.01014")
    assert paper.doi == "10.48550/arxiv.2504.01014" and paper.authors and paper.published_at is not None


def find_paper_by_arxiv(db: Database, arxiv: str) -> Paper:
    with db.session() as session:
        found = find_paper(session, arxiv)
        assert found is not None
        return found


def test_an_arxiv_api_error_and_an_empty_weekend_feed_are_rejected_with_the_reason(db, tmp_path):
    report = ingest_paths(
        db, [arxiv_file(tmp_path, "api-error.xml"), arxiv_file(tmp_path, "rss-cs.AI-2025-04-05.xml")]
    )
    reasons = [result.reason for result in report.results]
    assert [r.status for r in report.results] == ["rejected", "rejected"]
    assert "incorrect id format" in reasons[0] and "no entries" in reasons[1]
    assert count(db, Paper) == 0


def test_a_feed_saved_as_txt_is_still_read_as_a_feed_never_as_a_page_dump(db, tmp_path):
    report = ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml", "2025-04-01.txt")])
    assert report.results[0].format == "arxiv/rss" and report.papers_new == 50
    assert not any(paper.title.startswith("<") for paper in papers_by_title(db).values())


def test_folders_are_walked_for_feed_files_too(tmp_path):
    for name in ("a.xml", "b.rss", "c.atom", "d.html"):
        write(tmp_path, name, "<rss/>")
    files, ignored = collect([tmp_path])
    assert [f.name for f in files] == ["a.xml", "b.rss", "c.atom"] and [f.name for f in ignored] == ["d.html"]


def test_a_cross_list_and_the_same_papers_new_listing_elsewhere_are_one_paper(db, tmp_path):
    ingest_paths(db, [arxiv_file(tmp_path, "rss-cs.AI-2025-04-01.xml")])
    # The primary category's feed announces the six cross-listed papers as new.
    primary = (
        (ARXIV / "rss-cs.AI-2025-04-01.xml")
        .read_text()
        .replace(">cross<", ">new<")
        .replace("cs.AI updates", "cs.CV updates")
    )
    report = ingest_paths(db, [write(tmp_path, "cs.CV.xml", primary)])
    assert (report.papers_new, report.papers_duplicate) == (0, 50) and count(db, Paper) == 50


def test_a_title_seen_in_a_page_dump_and_in_an_arxiv_feed_is_one_paper_given_its_arxiv_id(db, tmp_path):
    feed = (ARXIV / "rss-cs.AI-2025-04-01.xml").read_bytes()
    dump = blank_lines_dump([("MOCHA: towards movie-grade talking character synthesis", abstract("talking"))])
    ingest_paths(db, [write(tmp_path, "2025-04-01.txt", dump)])
    report = ingest_paths(db, [write(tmp_path, "feed.xml", feed)])
    assert (report.papers_new, report.papers_duplicate, report.papers_enriched) == (49, 1, 1)
    paper = papers_by_title(db)["MOCHA: towards movie-grade talking character synthesis"]
    assert (paper.arxiv_id, paper.key) == ("2503.23307", "arxiv:2503.23307")
