"""The page-dump parser: both layouts, page chrome, dates with and without a year, bad entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from ingest_support import abstract, alternating_dump, blank_lines_dump

from digest.ingest.entries import ParseError
from digest.ingest.text import detect_layout, infer_year, parse_text

ANCHOR = dt.date(2025, 6, 30)
PAPERS = [
    ("Acoustic Prompt Tuning: Empowering Large Language Models", abstract("audio prompting")),
    ("UCF: Uncovering Common Features for Deepfake Detection", abstract("deepfake detection")),
    ("Are Human-generated Demonstrations Necessary for In-context Learning?", abstract("demonstrations")),
]


def parse(text: str, anchor: dt.date = ANCHOR, name_date: dt.date | None = None):
    return parse_text(text, anchor=anchor, name_date=name_date)


def test_blank_lines_layout_gives_each_title_its_abstract_and_drops_the_chrome():
    parsed = parse(blank_lines_dump(PAPERS))
    assert parsed.format == "text/blank-lines"
    assert [(e.title, e.abstract) for e in parsed.entries] == PAPERS


def test_alternating_layout_cuts_subscribe_glued_to_the_first_title():
    parsed = parse(alternating_dump(PAPERS))
    assert parsed.format == "text/alternating"
    assert [(e.title, e.abstract) for e in parsed.entries] == PAPERS


def test_entries_report_the_line_they_start_on():
    parsed = parse(blank_lines_dump(PAPERS))
    assert [e.where for e in parsed.entries] == ["line 11", "line 15", "line 19"]


def test_a_date_without_a_year_takes_the_latest_year_not_after_the_files_own_date():
    assert parse(blank_lines_dump(PAPERS, date="Mar 13"), anchor=dt.date(2025, 3, 13)).digest_date == dt.date(
        2025, 3, 13
    )
    assert parse(blank_lines_dump(PAPERS, date="Mar 13"), anchor=dt.date(2025, 3, 12)).digest_date == dt.date(
        2024, 3, 13
    )


@pytest.mark.parametrize(
    ("month", "day", "anchor", "expected"),
    [
        (12, 31, dt.date(2025, 1, 2), dt.date(2024, 12, 31)),
        (1, 2, dt.date(2025, 1, 2), dt.date(2025, 1, 2)),
        (2, 29, dt.date(2025, 6, 1), dt.date(2024, 2, 29)),
        (2, 29, dt.date(2024, 2, 28), dt.date(2020, 2, 29)),
    ],
)
def test_year_inference_walks_back_to_a_real_date(month, day, anchor, expected):
    assert infer_year(month, day, anchor) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("March 13", dt.date(2025, 3, 13)),
        ("Sept 2", dt.date(2024, 9, 2)),
        ("Mar 13, 2023", dt.date(2023, 3, 13)),
        ("2022-11-05", dt.date(2022, 11, 5)),
    ],
)
def test_other_date_spellings_are_read(line, expected):
    assert parse(blank_lines_dump(PAPERS, date=line)).digest_date == expected


def test_each_entry_is_dated_by_the_date_line_above_it():
    text = blank_lines_dump(PAPERS[:1], date="Mar 13") + "\n\nMar 14\n\n" + "\n\n".join(PAPERS[1])
    dates = [e.digest_date for e in parse(text).entries]
    assert dates == [dt.date(2025, 3, 13), dt.date(2025, 3, 14)]


def test_no_date_at_all_leaves_the_date_to_the_file_name_or_unknown():
    text = blank_lines_dump(PAPERS, date=None)
    assert parse(text).digest_date is None
    assert parse(text, name_date=dt.date(2024, 5, 27)).digest_date == dt.date(2024, 5, 27)
    assert {e.digest_date for e in parse(text, name_date=dt.date(2024, 5, 27)).entries} == {
        dt.date(2024, 5, 27)
    }


def test_a_month_day_that_is_no_calendar_date_rejects_the_file_naming_the_line():
    with pytest.raises(ParseError, match=r"line 9: 'Feb 30' is not a calendar date"):
        parse(blank_lines_dump(PAPERS, date="Feb 30"))


def test_a_title_followed_by_another_title_is_a_title_only_entry():
    papers = [("Grounded Object Centric Learning", None), *PAPERS[:1]]
    for text in (blank_lines_dump(papers), alternating_dump(papers)):
        entries = parse(text).entries
        assert [(e.title, e.abstract) for e in entries] == papers


def test_an_abstract_with_no_title_above_it_rejects_the_file_naming_the_line():
    text = blank_lines_dump(PAPERS[:1], date=None) + "\n\n" + abstract("orphans")
    with pytest.raises(ParseError, match=r"^line 14: an abstract with no title above it"):
        parse(text)


def test_a_short_abstract_is_recognised_by_its_full_stop_and_length_in_words():
    short = "In this report we document the changes we made to our model while training it on anime art."
    entries = parse(blank_lines_dump([("NovelAI Diffusion V3", short), *PAPERS[:1]])).entries
    assert [(e.title, e.abstract) for e in entries] == [("NovelAI Diffusion V3", short), PAPERS[0]]


def test_windows_line_endings_and_stray_whitespace_are_read_like_unix_ones():
    text = blank_lines_dump(PAPERS).replace("\n", "\r\n").replace("UCF:", "  UCF:\t")
    assert [e.title for e in parse(text).entries] == [title for title, _ in PAPERS]


def test_a_paper_link_line_gives_the_entry_above_its_arxiv_id():
    text = blank_lines_dump(PAPERS[:2]).replace(
        PAPERS[1][0], f"https://huggingface.co/papers/2405.15738v2\n{PAPERS[1][0]}"
    )
    assert [e.arxiv_id for e in parse(text).entries] == ["2405.15738", None]


def test_decoration_lines_are_dropped():
    text = blank_lines_dump(PAPERS).replace(PAPERS[1][0], f"---\n•\n{PAPERS[1][0]}")
    parsed = parse(text)
    assert len(parsed.entries) == 3
    assert any("decoration" in note for note in parsed.notes)


def test_prose_that_is_no_page_dump_is_rejected_as_no_papers_found():
    licence = "\n".join(
        ["Apache License", "Version 2.0, January 2004", "", "TERMS AND CONDITIONS FOR USE"]
        + ["Licensed under the Apache License, Version 2.0 (the License); you may not use this file except."]
        * 3
    )
    with pytest.raises(ParseError, match="no papers found"):
        parse(licence)


def test_chrome_alone_is_no_papers_found():
    with pytest.raises(ParseError, match="no papers found"):
        parse("\n".join(["new", "Subscribe", "Get trending papers in your email inbox!", "Mar 13"]))


def test_a_title_list_without_chrome_or_any_abstract_is_not_taken_for_a_dump():
    with pytest.raises(ParseError, match="no papers found"):
        parse("\n".join(title for title, _ in PAPERS))


def test_page_chrome_alone_vouches_for_a_title_only_dump():
    entries = parse("\n".join(["new", "Subscribe", "Grounded Object Centric Learning"])).entries
    assert [(e.title, e.abstract) for e in entries] == [("Grounded Object Centric Learning", None)]


@pytest.mark.parametrize(
    ("lines", "layout"),
    [
        (["a", "", "b", "", "c"], "blank-lines"),
        (["a", "b", "c", "", "d"], "alternating"),
        ([], "alternating"),
    ],
)
def test_layout_detector(lines, layout):
    assert detect_layout(lines) == layout


# --- what is not a page dump -----------------------------------------------------------------------


FEED = (Path(__file__).parent / "fixtures" / "arxiv" / "rss-cs.AI-2025-04-01.xml").read_text()


def test_an_arxiv_feed_read_as_text_is_refused_as_markup_not_turned_into_junk_papers():
    # Before: this feed (after any non-markup first line) gave 324 "papers" made of XML lines.
    with pytest.raises(
        ParseError, match=r"markup, not a Daily Papers page dump: \d+ of \d+ lines are XML/HTML"
    ):
        parse("Saved from the browser:\n" + FEED)


def test_a_saved_web_page_is_refused_as_markup():
    page = "\n".join(
        ["Daily Papers", "<html>", "<body>", "<div class='paper'>", *blank_lines_dump(PAPERS).split("\n")]
    )
    with pytest.raises(ParseError, match="line 2: '<html>'"):
        parse(page)


def test_a_title_with_an_angle_bracket_is_still_a_title():
    papers = [("<think> tokens: when do reasoning models stop?", abstract("reasoning length")), *PAPERS[1:]]
    assert [e.title for e in parse(blank_lines_dump(papers)).entries][0].startswith("<think> tokens")
