"""arXiv's own listings: the daily announcement feeds (RSS 2.0 and Atom, ``rss.arxiv.org/rss/<category>``
and ``/atom/<category>``) and arXiv API responses (Atom, ``export.arxiv.org/api/query``), read with
feedparser.

Formats (info.arxiv.org/help/rss.html, info.arxiv.org/help/api/user-manual.html):

* ``arxiv/rss``, ``arxiv/atom`` — a category's announcement of the day. Each item says how it is
  announced in ``arxiv:announce_type``: ``new`` (first version), ``cross`` (a new paper of another
  category cross-listed here), ``replace`` and ``replace-cross`` (a later version of a paper announced
  before). Its abstract follows a ``arXiv:<id>v<n> Announce Type: <type> Abstract:`` line; RSS gives the
  authors as one comma-separated ``dc:creator``. A weekend or holiday feed has no items.
* ``arxiv/api`` — a query's results: each entry is a paper (its latest version) with its first
  publication time, and a DOI when the journal version has one. The API reports an error as a feed
  whose one entry has an ``…/api/errors#…`` id; that is rejected with the API's message.

A replacement is never a new paper (``Entry.replacement``): the announcement says so, and in an API
response a later version of a paper first published ``REPLACED_AFTER`` or more before the response is one.

Safety: feedparser is given bytes (a string may be read as a URL or a path), runs its strict SAX parser
with external entities off, and strips every entity declaration but plain-text ones before parsing, so
neither "billion laughs" nor an external entity can expand; a document its strict parser refuses is
rejected here (feedparser would fall back to a lenient reader), naming the line.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
import time
import xml.sax
from html.parser import HTMLParser
from typing import Any

import feedparser

from digest.ingest.entries import Entry, ParsedDigest, ParseError
from digest.ingest.normalise import arxiv_id, clean_text, doi

REPLACED_AFTER = dt.timedelta(days=7)
REPLACEMENTS = frozenset({"replace", "replace-cross"})
ANNOUNCE_TYPES = frozenset({"new", "cross"}) | REPLACEMENTS
_ANNOUNCED = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*[\w-]+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_ID_IN = re.compile(r"(?:arxiv\.org/(?:abs|pdf)/|oai:arxiv\.org:|^arxiv:)(?P<id>[^\s?#]+?)(?:\.pdf)?$", re.I)
_VERSION = re.compile(r"v(\d+)$")
_API_ERROR = "arxiv.org/api/errors"
_AUTHOR_SPLIT = re.compile(r",\s*|\s+and\s+")


def looks_like_markup(text: str) -> bool:
    """Whether a file is XML or HTML (``<`` first), for the service to hand it here."""
    return text.lstrip("\ufeff \t\r\n")[:1] == "<"


def parse_feed(data: bytes, *, name_date: dt.date | None = None) -> ParsedDigest:
    """Parse an arXiv feed or API response; ``name_date`` is the date in the file name, if any."""
    document = _load(data)
    entries = document.entries
    if not entries:
        raise ParseError(
            "no papers found: the feed lists no entries (arXiv announces nothing on weekends and holidays)"
        )
    _refuse_api_error(entries)
    kind = _kind(document)
    updated = _moment(document.feed, "updated_parsed") or _moment(document.feed, "published_parsed")
    digest_date = name_date or (updated.date() if updated else None)
    parsed = [_entry(item, n, kind, updated, digest_date) for n, item in enumerate(entries, start=1)]
    return ParsedDigest(f"arxiv/{kind}", parsed, digest_date)


def _load(data: bytes) -> Any:
    document = feedparser.parse(io.BytesIO(data), sanitize_html=True, resolve_relative_uris=False)
    problem = document.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXParseException):
        where = f"line {problem.getLineNumber()}, column {problem.getColumnNumber()}"
        raise ParseError(f"not well-formed XML at {where}: {problem.getMessage()}")
    if not document.get("version"):
        raise ParseError("markup that is no RSS or Atom feed (an HTML page?): not an arXiv listing")
    return document


def _refuse_api_error(entries: list[Any]) -> None:
    first = entries[0]
    if _API_ERROR in str(first.get("id", "")):
        raise ParseError(f"the arXiv API answered an error: {clean_text(first.get('summary', '')) or '?'}")


def _kind(document: Any) -> str:
    if any(item.get("arxiv_announce_type") for item in document.entries):
        return "rss" if str(document.version).startswith("rss") else "atom"
    if "opensearch_totalresults" in document.feed:
        return "api"
    return "rss" if str(document.version).startswith("rss") else "atom"


def _entry(item: Any, index: int, kind: str, updated: dt.datetime | None, day: dt.date | None) -> Entry:
    where = f"entry {index}"
    found, version = _identifier(item, where)
    where = f"{where} ({found})"
    announced = str(item.get("arxiv_announce_type") or "").strip().lower()
    if announced and announced not in ANNOUNCE_TYPES:
        raise ParseError(f"{where}: unknown announce type {announced!r}")
    published = _moment(item, "published_parsed")
    title = _text(item, "title")
    if not title:
        raise ParseError(f"{where}: no title")
    return Entry(
        title=title,
        where=where,
        abstract=_ANNOUNCED.sub("", _text(item, "summary")) or None,
        arxiv_id=found,
        authors=_authors(item),
        published_at=published,
        digest_date=published.date() if published and kind != "api" else day,
        doi=doi(str(item.get("arxiv_doi", ""))),
        replacement=announced in REPLACEMENTS or _old_version(kind, version, published, updated),
    )


def _identifier(item: Any, where: str) -> tuple[str, int]:
    """The entry's arXiv id (without version) and its version (1 when not said)."""
    for value in (item.get("id"), item.get("link"), *(link.get("href") for link in item.get("links", []))):
        match = _ID_IN.search(str(value or "").strip())
        found = arxiv_id(match.group("id")) if match else None
        if found:
            version = _VERSION.search(match.group("id"))  # type: ignore[union-attr]
            return found, int(version.group(1)) if version else 1
    raise ParseError(f"{where}: no arXiv id in its id or links ({str(item.get('id', ''))[:80]!r})")


def _old_version(kind: str, version: int, published: dt.datetime | None, updated: dt.datetime | None) -> bool:
    if kind != "api" or version < 2 or published is None or updated is None:
        return False
    return updated - published >= REPLACED_AFTER


def _text(item: Any, name: str) -> str:
    """A field as plain text: HTML fields (RSS descriptions) lose their tags and entities."""
    detail = item.get(f"{name}_detail") or {}
    value = str(item.get(name) or "")
    if "html" in str(detail.get("type", "")):
        value = _PlainText.of(value)
    return clean_text(value)


def _authors(item: Any) -> list[str]:
    names: list[str] = []
    for author in item.get("authors") or []:
        name = author.get("name") if isinstance(author, dict) else None
        if isinstance(name, str):
            names += [clean_text(part) for part in _AUTHOR_SPLIT.split(name)]
    return [name for name in names if name]


def _moment(holder: Any, name: str) -> dt.datetime | None:
    """A parsed time (feedparser gives UTC ``struct_time``) as a naive UTC datetime."""
    value = holder.get(name)
    if not isinstance(value, time.struct_time):
        return None
    return dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC).replace(tzinfo=None)


class _PlainText(HTMLParser):
    """The text of an HTML fragment (the standard library's parser: tags dropped, entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        reader = cls()
        reader.feed(html)
        reader.close()
        return "".join(reader.parts)
