"""Property-based: any text or bytes leave ingestion uncrashed and every stored value as it was."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_support import CHROME, abstract, api_entry, api_json, paper_rows

from digest.ingest.service import ingest_bytes

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAMES = st.sampled_from(["digest.txt", "digest.json", "2025-03-14.txt", "feed"])

# Pieces of real page dumps, so that generated files often look nearly right (the interesting cases).
LINES = st.one_of(
    st.sampled_from(
        [
            *CHROME,
            "Mar 13",
            "Feb 30",
            "2024-13-01",
            "SubscribeA Title",
            "https://huggingface.co/papers/2405.15738",
        ]
    ),
    st.sampled_from(["Stored Paper One", "Stored Paper Two", "A Fresh Title"]),
    st.just(abstract("generated text")),
    st.text(max_size=300),
)
ANY_CHAR = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "\u2028", "\ufeff"])
JSON_VALUES = st.recursive(
    # Any code point, lone surrogates and NUL included: JSON escapes can carry them all.
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(ANY_CHAR, max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "paper",
                    "id",
                    "title",
                    "summary",
                    "authors",
                    "upvotes",
                    "publishedAt",
                    "data",
                    "count",
                    "name",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@pytest.fixture
def stored(db):
    """Two complete papers (with ids, abstracts, authors) already in the database."""
    papers = api_json(
        api_entry("2401.00001", "Stored Paper One"), api_entry("2401.00002", "Stored Paper Two")
    )
    ingest_bytes(db, "seed.json", papers)
    return db, paper_rows(db)


def check(db, before, name: str, data: bytes) -> None:
    report = ingest_bytes(db, name, data)
    (result,) = report.results
    assert result.status in {"ingested", "rejected", "already_seen"}
    assert "internal error" not in (result.reason or "")
    if result.status == "rejected":
        assert result.reason  # always says why
    after = paper_rows(db)
    assert report.papers_new == len(after) - len(before)
    for paper_id, row in before.items():
        assert_only_gaps_filled(row, after[paper_id])
    before.update(after)


def assert_only_gaps_filled(old: tuple, new: tuple) -> None:
    """Nothing stored is overwritten; a value may only appear where there was none (and then the
    key turns into ``arxiv:<id>``). Papers stored complete therefore never change at all."""
    key, *fields = old
    new_key, *new_fields = new
    for was, now in zip(fields, new_fields, strict=True):
        assert was in (None, ()) or was == now
    assert new_key == key or (old[1] is None and new_key == f"arxiv:{new[1]}")


@SETTINGS
@given(name=NAMES, data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_and_never_overwrite_stored_papers(stored, name, data):
    db, before = stored
    check(db, before, name, data)


@SETTINGS
@given(name=NAMES, lines=st.lists(LINES, max_size=30), separator=st.sampled_from(["\n", "\n\n", "\r\n"]))
def test_arbitrary_page_dump_like_text_never_crashes_and_never_overwrites_stored_papers(
    stored, name, lines, separator
):
    db, before = stored
    check(db, before, name, separator.join(lines).encode("utf-8", "surrogatepass"))


@SETTINGS
@given(name=NAMES, document=JSON_VALUES)
def test_arbitrary_json_never_crashes_and_never_overwrites_stored_papers(stored, name, document):
    db, before = stored
    check(db, before, name, json.dumps(document).encode())


@SETTINGS
@given(entries=st.lists(st.one_of(JSON_VALUES, st.builds(repr, JSON_VALUES)), max_size=5))
def test_arbitrary_python_repr_lists_never_crash_and_never_overwrite_stored_papers(stored, entries):
    db, before = stored
    check(db, before, "archived.json", json.dumps(entries).encode())


# Times at the ends of datetime's range with any UTC offset, and integers up to past Python's 4,300-digit
# limit for int(): each once escaped the parser as an "internal error".
EDGE_TIMES = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))).isoformat(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(min_value=-1439, max_value=1439),
)


@SETTINGS
@given(published=EDGE_TIMES | st.text(max_size=40), digits=st.integers(min_value=1, max_value=6000))
def test_times_at_the_edges_and_huge_integers_never_crash(stored, published, digits):
    db, before = stored
    paper = f'"title": "Edge case", "publishedAt": {json.dumps(published)}, "upvotes": {"9" * digits}'
    check(db, before, "edge.json", f'[{{"paper": {{{paper}}}}}]'.encode())
