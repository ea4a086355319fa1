"""Hugging Face daily-papers API JSON (``GET https://huggingface.co/api/daily_papers``), as archived.

The API answers a list of entries ``{"paper": {"id", "title", "summary", "authors": [{"name"}],
"upvotes", "publishedAt"}, "title", "publishedAt", …}``; ``paper.id`` is the arXiv id. Titles carry
hard line breaks and double spaces ("…Large Multimodal\\n  Models"), cleaned for display; the
top-level ``title`` is a LaTeX-marked twin ("$\\textit{Trans-LoRA}$…"), so ``paper.title`` wins.

Shapes read (the archive in ``../shared/data/hf_daily`` has all three):

* ``json/api`` — the list of entry objects (262 of the 284 archived files).
* ``json/python-repr`` — a list of strings, each the Python ``repr`` of an entry (21 files). Read with
  ``ast.literal_eval``, which only evaluates literals (strings, numbers, lists, dicts, True/False/None)
  and never runs code or looks names up, so it is safe on untrusted text; strings over
  ``MAX_REPR_CHARS`` are refused first because its parser can exhaust the stack on huge nested input.
* ``json/wrapper`` — an object holding the list under ``data`` or ``papers`` (1 file:
  ``{"status": "success", "date", "count", "data": [repr strings]}``); a ``count`` that disagrees with
  the list, or a ``status`` other than success, rejects the file. Its ``date`` dates the digest when
  the file name has none.

Decision: all 22 malformed archived files are readable this way without evaluating anything unsafe,
so every one of the 284 files is ingested and none rejected; the same shapes with a bad element (a
string that is no Python literal of an object, a wrapper with no known list key) are rejected, naming
the entry. Any other shape (a number, a bare string, an object with no list) is rejected.

An entry is rejected (and with it the file, naming ``entry N``, counted from 1) when it has no title,
an id that is not an arXiv id, or a field of the wrong type; fields it lacks are simply unknown.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from typing import Any

from digest.ingest.entries import Entry, ParsedDigest, ParseError
from digest.ingest.normalise import arxiv_id, clean_text

MAX_REPR_CHARS = 1_000_000
WRAPPER_KEYS = ("data", "papers")


def parse_json(text: str, *, name_date: dt.date | None = None) -> ParsedDigest:
    """Parse a daily-papers API response; ``name_date`` is the date in the file name, if any."""
    document = _load(text)
    items, shape, wrapper_date = _unwrap(document)
    if not items:
        raise ParseError("no papers found: the list of entries is empty")
    digest_date = name_date or wrapper_date
    if any(isinstance(item, str) for item in items):
        shape = "json/python-repr" if shape == "json/api" else f"{shape}+python-repr"
    entries = [_entry(item, index, digest_date) for index, item in enumerate(items, start=1)]
    return ParsedDigest(shape, entries, digest_date)


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ParseError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer of over 4,300 digits (Python's int_max_str_digits)
        raise ParseError(f"invalid JSON: {str(exc).split(';')[0]}") from None


def _unwrap(document: Any) -> tuple[list[Any], str, dt.date | None]:
    if isinstance(document, list):
        return document, "json/api", None
    if not isinstance(document, dict):
        raise ParseError(f"wrong JSON shape: expected a list of papers, got {_kind(document)}")
    if "paper" in document:
        return [document], "json/api", None
    key = next((k for k in WRAPPER_KEYS if isinstance(document.get(k), list)), None)
    if key is None:
        keys = ", ".join(sorted(map(str, document))[:8]) or "none"
        raise ParseError(f"wrong JSON shape: an object with no list under 'data' or 'papers' (keys: {keys})")
    items = document[key]
    _check_wrapper(document, len(items))
    return items, "json/wrapper", _wrapper_date(document.get("date"))


def _check_wrapper(document: dict[str, Any], length: int) -> None:
    status, count = document.get("status", "success"), document.get("count", length)
    if status != "success":
        raise ParseError(f"wrapper object: status is {status!r}, not 'success'")
    if count != length:
        raise ParseError(f"wrapper object: count says {count!r} but it holds {length} entries")


def _wrapper_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        raise ParseError(f"wrapper object: date {value!r} is not YYYY-MM-DD") from None


def _entry(item: Any, index: int, digest_date: dt.date | None) -> Entry:
    where = f"entry {index}"
    if isinstance(item, str):
        item = _literal(item, where)
    if not isinstance(item, dict):
        raise ParseError(f"{where}: expected an object, got {_kind(item)}")
    paper = item.get("paper", item)
    if not isinstance(paper, dict):
        raise ParseError(f"{where}: 'paper' is {_kind(paper)}, not an object")
    arxiv = _arxiv(paper.get("id"), where)
    where = f"{where} ({arxiv})" if arxiv else where
    return Entry(
        title=_title(paper.get("title", item.get("title")), where),
        where=where,
        abstract=_optional(paper, "summary", str, where),
        arxiv_id=arxiv,
        authors=_authors(paper.get("authors"), where),
        published_at=_timestamp(paper.get("publishedAt", item.get("publishedAt")), where),
        upvotes=_upvotes(paper, where),
        digest_date=digest_date,
    )


def _literal(value: str, where: str) -> Any:
    if len(value) > MAX_REPR_CHARS:
        raise ParseError(f"{where}: a string of {len(value)} characters, too long to read as an entry")
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        reason = type(exc).__name__
        raise ParseError(f"{where}: a string that is not a Python literal of an entry ({reason})") from None


def _arxiv(value: Any, where: str) -> str | None:
    if value is None:
        return None
    found = arxiv_id(value) if isinstance(value, str) else None
    if found is None:
        raise ParseError(f"{where}: paper.id {value!r} is not an arXiv id")
    return found


def _title(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f"{where}: no title")
    return value


def _optional(paper: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = paper.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ParseError(f"{where}: paper.{name} is {_kind(value)}, expected {kind.__name__}")
    return value


def _upvotes(paper: dict[str, Any], where: str) -> int | None:
    value = _optional(paper, "upvotes", int, where)
    if value is not None and not 0 <= value < 2**31:
        raise ParseError(f"{where}: paper.upvotes {value} is out of range")
    return value


def _authors(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{where}: paper.authors is {_kind(value)}, expected a list")
    names = [author.get("name") if isinstance(author, dict) else author for author in value]
    cleaned = (clean_text(name) for name in names if isinstance(name, str))
    return [name for name in cleaned if name]


def _timestamp(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ParseError(f"{where}: publishedAt {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: in UTC it falls before year 1
        raise ParseError(f"{where}: publishedAt {value!r} is out of range in UTC") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")
