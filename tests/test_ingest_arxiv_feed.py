"""arXiv feeds and API responses read into entries: every shape arXiv publishes, and every way one is bad."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from digest.ingest.arxiv_feed import parse_feed
from digest.ingest.entries import ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "arxiv"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_an_rss_announcement_gives_every_item_and_marks_the_replacements() -> None:
    parsed = parse_feed(fixture("rss-cs.AI-2025-04-01.xml"))
    assert parsed.format == "arxiv/rss" and parsed.digest_date == dt.date(2025, 4, 1)
    assert len(parsed.entries) == 60
    assert sum(entry.replacement for entry in parsed.entries) == 10  # 8 replace + 2 replace-cross
    first = parsed.entries[0]
    assert first.arxiv_id == "2503.23307" and first.title.startswith("MoCha: Towards Movie-Grade")
    assert first.abstract is not None and not first.abstract.startswith("arXiv:")  # the announce line is cut
    assert first.authors[:2] == ["Cong Wei", "Bo Sun"] and len(first.authors) == 12  # dc:creator split
    assert first.digest_date == dt.date(2025, 4, 1) and first.published_at == dt.datetime(2025, 4, 1, 4, 0)


def test_an_atom_announcement_reads_like_the_rss_one() -> None:
    parsed = parse_feed(fixture("atom-cs.AI-2025-04-02.xml"))
    assert parsed.format == "arxiv/atom" and parsed.digest_date == dt.date(2025, 4, 2)
    assert len(parsed.entries) == 22
    assert [e.arxiv_id for e in parsed.entries if e.replacement] == ["2503.23307", "2503.24235"]
    assert all(e.authors for e in parsed.entries)


def test_an_api_response_unwraps_titles_keeps_the_doi_and_takes_an_old_third_version_for_a_replacement():
    parsed = parse_feed(fixture("api-query-cs.AI-2025-04-03.xml"))
    assert parsed.format == "arxiv/api" and parsed.digest_date == dt.date(2025, 4, 3)
    assert len(parsed.entries) == 10
    title = "AnimeGamer: Infinite Anime Life Simulation with Next Game State Prediction"
    assert parsed.entries[0].title == title  # the API's line break inside the title is gone
    assert "\n" not in (parsed.entries[0].abstract or "")
    assert parsed.entries[0].doi == "10.48550/arxiv.2504.01014"
    old = parsed.entries[-1]
    assert (old.arxiv_id, old.replacement, old.published_at.year) == ("2405.21060", True, 2024)
    assert not any(e.replacement for e in parsed.entries[:-1])  # a recent second version is a paper


def test_the_apis_error_answer_is_refused_with_its_message() -> None:
    with pytest.raises(ParseError, match="arXiv API answered an error: incorrect id format for 1234.12345"):
        parse_feed(fixture("api-error.xml"))


def test_a_weekend_feed_without_items_is_no_papers() -> None:
    with pytest.raises(ParseError, match="no entries"):
        parse_feed(fixture("rss-cs.AI-2025-04-05.xml"))


def test_xml_that_is_not_well_formed_is_refused_naming_the_line() -> None:
    cut = fixture("rss-cs.AI-2025-04-01.xml").replace(b"</item>", b"</itme>", 1)
    with pytest.raises(ParseError, match=r"not well-formed XML at line \d+, column \d+: mismatched tag"):
        parse_feed(cut)


def test_an_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="no RSS or Atom feed"):
        parse_feed(b"<!DOCTYPE html><html><body><p>Daily papers</p></body></html>")


def test_an_item_without_an_arxiv_id_is_named() -> None:
    feed = fixture("rss-cs.AI-2025-04-01.xml")
    broken = feed.replace(b"oai:arXiv.org:2503.23307v1", b"urn:something", 1)
    broken = broken.replace(
        b"<link>https://arxiv.org/abs/2503.23307</link>", b"<link>https://example.org</link>"
    )
    with pytest.raises(ParseError, match=r"entry 1: no arXiv id"):
        parse_feed(broken)


def test_an_unknown_announce_type_is_named() -> None:
    feed = fixture("rss-cs.AI-2025-04-01.xml").replace(b">new</arxiv:announce_type>", b">withdrawn<", 1)
    feed = feed.replace(b">withdrawn<", b">withdrawn</arxiv:announce_type>", 1)
    with pytest.raises(ParseError, match="entry 1 .2503.23307.: unknown announce type 'withdrawn'"):
        parse_feed(feed)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<rss version="2.0"><channel><title>t</title>
<item><title>&f;</title><guid>oai:arXiv.org:2501.00001v1</guid><description>x</description></item>
</channel></rss>"""


def test_nested_entities_are_never_expanded() -> None:
    started = time.monotonic()
    with pytest.raises(ParseError, match="undefined entity"):
        parse_feed(BOMB)
    assert time.monotonic() - started < 2.0


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    document = f"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY xxe SYSTEM "file://{secret}">
]>
<rss version="2.0"><channel><title>t</title>
<item><title>A paper &xxe;</title><guid>oai:arXiv.org:2501.00001v1</guid><description>x</description></item>
</channel></rss>""".encode()
    with pytest.raises(ParseError, match="not well-formed XML") as refused:
        parse_feed(document)
    assert "TOP-SECRET" not in str(refused.value)


def test_html_in_an_rss_description_becomes_plain_text() -> None:
    feed = fixture("rss-cs.AI-2025-04-01.xml").replace(
        b"Abstract: ", b"Abstract: We show that a &lt; b &amp;amp; c &lt;i&gt;holds&lt;/i&gt;. ", 1
    )
    abstract = parse_feed(feed).entries[0].abstract or ""
    assert abstract.startswith("We show that a < b & c holds. ")
