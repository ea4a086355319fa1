"""Deduplication: a file's entries matched to stored papers and to each other; gaps filled, never overwritten.

Identity: the arXiv id when known, else the title key (``normalise.title_key``). An entry matches a stored
paper by arXiv id, else by title key unless the stored paper has a *different* arXiv id (then they are two
papers with one title, and the newcomer's title key gets a ``~arxiv:<id>`` suffix to stay unique). A match
only fills what the stored paper lacks (arXiv id — ``key`` becomes ``arxiv:<id>`` — abstract, authors,
publication time, upvotes, DOI). An entry that is only a later version of a paper (``Entry.replacement``)
and matches none is left out: a replacement is never a new paper.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest.ingest.entries import Entry
from digest.ingest.normalise import paper_key
from digest.models import Paper, utcnow

IN_CHUNK = 500  # values per SQL ``IN`` list

_COLUMNS = (
    "key", "arxiv_id", "title_key", "title", "abstract", "authors", "published_at", "upvotes", "doi"
)  # fmt: skip
_GAPS = ("abstract", "authors", "published_at", "upvotes", "doi")


@dataclass(eq=False)
class KnownPaper:
    """A paper as dedupe sees it: stored (``id`` set) or about to be inserted. ``changes`` are the gaps
    a later listing filled, to be written as an UPDATE."""

    id: int | None
    values: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)
    digest_date: dt.date | None = None

    @property
    def arxiv_id(self) -> str | None:
        return self.values["arxiv_id"]

    @property
    def title_key(self) -> str:
        return self.values["title_key"]

    def fill(self, name: str, value: Any) -> None:
        self.values[name] = self.changes[name] = value


def known_papers(session: Session, entries: list[Entry]) -> list[KnownPaper]:
    """The stored papers any entry could match, in a few bulk ``IN`` queries (not one per entry)."""
    ids = sorted({entry.arxiv_id for entry in entries if entry.arxiv_id})
    keys = sorted({entry.key for entry in entries})
    columns = [Paper.id, *(getattr(Paper, name) for name in _COLUMNS)]
    rows: dict[int, KnownPaper] = {}
    for id_chunk, key_chunk in zip_longest(_chunks(ids), _chunks(keys), fillvalue=[]):
        condition = or_(Paper.arxiv_id.in_(id_chunk), Paper.title_key.in_(key_chunk))
        for row in session.execute(select(*columns).where(condition)):
            rows[row.id] = KnownPaper(row.id, {name: getattr(row, name) for name in _COLUMNS})
    return list(rows.values())


class Merger:
    """Matches one file's entries to stored papers (and to each other), adds the new, fills the gaps."""

    def __init__(self, entries: list[Entry], file_date: dt.date | None) -> None:
        self.entries, self.file_date = entries, file_date
        self.by_arxiv: dict[str, KnownPaper] = {}
        self.by_key: dict[str, KnownPaper] = {}
        self.listed: dict[KnownPaper, None] = {}  # the papers this file lists, in order of first listing
        self.new = self.duplicate = self.enriched = 0
        self.now = utcnow()

    def run(self, known: list[KnownPaper]) -> None:
        for paper in known:
            self._remember(paper)
        for entry in self.entries:
            self._take(entry)

    def _remember(self, paper: KnownPaper) -> None:
        if paper.arxiv_id:
            self.by_arxiv[paper.arxiv_id] = paper
        self.by_key.setdefault(paper.title_key, paper)

    def _take(self, entry: Entry) -> None:
        paper = self._match(entry)
        if paper is None and entry.replacement:
            return
        if paper is None:
            paper = self._add(entry)
            self.new += 1
        else:
            self.duplicate += 1
            self.enriched += _enrich(paper, entry, self.by_arxiv)
            self._remember(paper)
        if paper not in self.listed:
            self.listed[paper] = None
            paper.digest_date = entry.digest_date or self.file_date

    def _match(self, entry: Entry) -> KnownPaper | None:
        if entry.arxiv_id and entry.arxiv_id in self.by_arxiv:
            return self.by_arxiv[entry.arxiv_id]
        paper = self.by_key.get(entry.key)
        if paper is not None and entry.arxiv_id and paper.arxiv_id not in (None, entry.arxiv_id):
            return None  # one title, two arXiv ids: two papers
        return paper

    def _add(self, entry: Entry) -> KnownPaper:
        key = entry.key if entry.key not in self.by_key else f"{entry.key}~arxiv:{entry.arxiv_id}"
        values = {
            "key": paper_key(entry.arxiv_id, key), "arxiv_id": entry.arxiv_id, "title_key": key,
            "title": entry.title, "abstract": entry.abstract, "authors": list(entry.authors),
            "published_at": entry.published_at, "upvotes": entry.upvotes, "doi": entry.doi,
            "first_seen_at": self.now,
        }  # fmt: skip
        paper = KnownPaper(None, values)
        self._remember(paper)
        return paper

    def appearance_rows(self, digest_file_id: int) -> list[dict[str, Any]]:
        return [
            {"paper_id": p.id, "digest_file_id": digest_file_id, "digest_date": p.digest_date, "position": n}
            for n, p in enumerate(self.listed, start=1)
        ]


def _enrich(paper: KnownPaper, entry: Entry, by_arxiv: dict[str, KnownPaper]) -> bool:
    """Fill what ``paper`` lacks from ``entry``; never overwrite. True when something was filled."""
    before = len(paper.changes)
    if entry.arxiv_id and paper.arxiv_id is None and entry.arxiv_id not in by_arxiv:
        paper.fill("arxiv_id", entry.arxiv_id)
        paper.fill("key", paper_key(entry.arxiv_id, paper.title_key))
    for name in _GAPS:
        value = getattr(entry, name)
        if paper.values[name] in (None, []) and value not in (None, []):
            paper.fill(name, list(value) if name == "authors" else value)
    return len(paper.changes) > before


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]
