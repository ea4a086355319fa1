"""The daily-papers API parser: the real shape, the archived malformed shapes, and bad entries."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from ingest_support import api_entry

from digest.ingest.entries import ParseError
from digest.ingest.hf_json import parse_json

DAY = dt.date(2024, 5, 27)
ENTRIES = [
    api_entry(
        "2405.15738", "ConvLLaVA: Hierarchical Backbones as Visual Encoder for Large Multimodal\n  Models"
    ),
    api_entry("2405.14867v2", "Meteor: Mamba-based  Traversal of Rationale"),
]


def parse(document: object, name_date: dt.date | None = DAY):
    return parse_json(json.dumps(document), name_date=name_date)


def test_api_entries_give_id_title_abstract_authors_upvotes_and_time():
    parsed = parse(ENTRIES)
    first = parsed.entries[0]
    assert parsed.format == "json/api"
    assert first.arxiv_id == "2405.15738"
    assert first.title == "ConvLLaVA: Hierarchical Backbones as Visual Encoder for Large Multimodal Models"
    assert first.abstract == " ".join(ENTRIES[0]["paper"]["summary"].split())
    assert first.authors == ["Ada Lovelace", "Alan Turing"]
    assert first.upvotes == 7
    assert first.published_at == dt.datetime(2024, 5, 23, 17, 59, 59)
    assert (parsed.digest_date, first.digest_date, first.where) == (DAY, DAY, "entry 1 (2405.15738)")


def test_titles_lose_line_breaks_and_double_spaces_and_ids_their_version():
    second = parse(ENTRIES).entries[1]
    assert (second.title, second.arxiv_id) == ("Meteor: Mamba-based Traversal of Rationale", "2405.14867")


def test_the_plain_paper_title_wins_over_the_latex_marked_top_level_one():
    entry = api_entry("2405.00001", "Trans-LoRA: towards data-free Finetuning")
    entry["title"] = "$\\textit{Trans-LoRA}$: towards data-free Finetuning"
    assert parse([entry]).entries[0].title == "Trans-LoRA: towards data-free Finetuning"


def test_a_list_of_python_repr_strings_reads_like_the_real_list():
    parsed = parse([repr(entry) for entry in ENTRIES])
    assert parsed.format == "json/python-repr"
    assert parsed.entries == parse(ENTRIES).entries


def test_a_python_repr_string_is_never_evaluated_as_code(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ParseError, match=r"entry 2: a string that is not a Python literal of an entry"):
        parse([repr(ENTRIES[0]), code])
    assert not marker.exists()


def test_a_repr_string_of_something_else_than_an_object_is_rejected():
    with pytest.raises(ParseError, match=r"entry 1: expected an object, got a list"):
        parse(["[1, 2]"])


def test_a_wrapper_object_is_unwrapped_and_its_date_used_when_the_name_has_none():
    wrapper = {"status": "success", "date": "2025-01-10", "count": 2, "data": [repr(e) for e in ENTRIES]}
    parsed = parse(wrapper, name_date=None)
    assert parsed.format == "json/wrapper+python-repr"
    assert parsed.digest_date == dt.date(2025, 1, 10)
    assert len(parsed.entries) == 2
    assert parse({"papers": ENTRIES}).format == "json/wrapper"


@pytest.mark.parametrize(
    ("wrapper", "message"),
    [
        ({"status": "success", "count": 3, "data": ENTRIES}, "count says 3 but it holds 2 entries"),
        ({"status": "error", "data": ENTRIES}, "status is 'error', not 'success'"),
        (
            {"status": "success", "results": ENTRIES},
            r"no list under 'data' or 'papers' \(keys: results, status\)",
        ),
        ({"date": "10/01/2025", "data": ENTRIES}, "date '10/01/2025' is not YYYY-MM-DD"),
    ],
)
def test_a_wrapper_that_does_not_add_up_is_rejected(wrapper, message):
    with pytest.raises(ParseError, match=message):
        parse(wrapper)


def test_a_single_entry_object_is_read_as_a_one_entry_list():
    assert len(parse(ENTRIES[0]).entries) == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (42, "wrong JSON shape: expected a list of papers, got a int"),
        ("papers", "wrong JSON shape: expected a list of papers, got a string"),
        ([], "no papers found: the list of entries is empty"),
        ([ENTRIES[0], 7], "entry 2: expected an object, got a int"),
    ],
)
def test_wrong_shapes_are_rejected(document, message):
    with pytest.raises(ParseError, match=message):
        parse(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": "   "}, r"entry 2 \(2405.14867\): no title"),
        ({"title": None}, r"entry 2 \(2405.14867\): no title"),
        ({"title": "?!"}, "the title has no letters or digits"),
        ({"id": "abc"}, r"entry 2: paper.id 'abc' is not an arXiv id"),
        ({"id": 2405.14867}, r"entry 2: paper.id 2405.14867 is not an arXiv id"),
        ({"summary": ["a"]}, r"paper.summary is a list, expected str"),
        ({"upvotes": "7"}, r"paper.upvotes is a string, expected int"),
        ({"upvotes": 10**12}, r"paper.upvotes 1000000000000 is out of range"),
        ({"authors": "Ada"}, r"paper.authors is a string, expected a list"),
        ({"publishedAt": "yesterday"}, r"publishedAt 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_a_bad_entry_rejects_the_file_naming_the_entry_and_field(change, message):
    bad = api_entry("2405.14867", "Meteor")
    bad["paper"].update(change)
    bad.pop("title")
    with pytest.raises(ParseError, match=message):
        parse([ENTRIES[0], bad])


def test_missing_optional_fields_are_simply_unknown():
    entry = parse([{"paper": {"title": "A Paper With Only A Title"}}]).entries[0]
    assert (entry.arxiv_id, entry.abstract, entry.authors, entry.upvotes, entry.published_at) == (
        None,
        None,
        [],
        None,
        None,
    )


def test_invalid_json_is_rejected_naming_line_and_column():
    with pytest.raises(ParseError, match=r"invalid JSON at line 2, column 15: Expecting value"):
        parse_json('[\n    {"paper": }\n]')


def test_deeply_nested_json_is_rejected_not_crashed():
    with pytest.raises(ParseError):
        parse_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    "published", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+00:31"]
)
def test_a_published_time_outside_the_datetime_range_in_utc_rejects_naming_the_entry(published):
    with pytest.raises(ParseError, match=r"entry 1 .*publishedAt .* out of range in UTC"):
        parse([{"paper": {"id": "2405.15738", "title": "Edge of time", "publishedAt": published}}])


def test_an_integer_of_over_4300_digits_rejects_the_file_with_a_reason():
    text = '[{"paper": {"title": "Big", "upvotes": ' + "7" * 4301 + "}}]"
    with pytest.raises(ParseError, match="invalid JSON: Exceeds the limit"):
        parse_json(text)
