"""A subscriber's library as the cold start of their model: the papers they already like, from a file they
give (``digest.references`` reads it) at sign-up or later.

Each entry is matched to a stored paper by arXiv id, then DOI, then title key (as ingestion dedupes). A
matched paper becomes a 👍 (feedback from the ``library`` source; a paper already rated keeps its rating),
an unmatched entry with a title a liked text of the model (title and abstract weighed like a paper's), and
an entry with neither (a bare id of a paper not stored) is left aside and named in the report. A new
library replaces the liked texts of the previous one; its 👍 stay, like any vote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Feedback, FeedbackSource, Paper, Subscriber
from digest.rank import LikedText, load_profile, record_library
from digest.references import Reference

IN_CHUNK = 500  # values per SQL ``IN`` list


@dataclasses.dataclass
class LibraryReport:
    """What an import did: entries read, matched to stored papers (newly rated among them), kept as liked
    texts, and the entries left aside (neither stored nor titled), each named."""

    entries: int = 0
    matched: int = 0
    rated: int = 0
    texts: int = 0
    left_aside: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        aside = f", {len(self.left_aside)} left aside (not stored, no title)" if self.left_aside else ""
        entries = f"{self.entries} entr{'y' if self.entries == 1 else 'ies'}"
        liked = f"{self.matched} stored papers liked ({self.rated} newly), {self.texts} liked texts"
        return f"library: {entries}: {liked}{aside}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def import_library(
    session: Session, subscriber: Subscriber, references: Sequence[Reference]
) -> LibraryReport:
    """Match the entries, rate the stored papers 👍, keep the others' texts; the model is derived at once."""
    found = match_papers(session, references)
    report = LibraryReport(entries=len(references))
    paper_ids: list[int] = []
    texts: list[LikedText] = []
    for index, reference in enumerate(references):
        if index in found:
            paper_ids.append(found[index])
        elif reference.title:
            texts.append(LikedText(reference.title, reference.abstract))
        else:
            aside = f"{reference.where}: {_identifier(reference)} is not among the stored papers"
            report.left_aside.append(aside)
    report.matched, report.texts = len(set(paper_ids)), len(texts)
    report.rated = len(record_library(session, subscriber, paper_ids, texts))
    return report


def match_papers(session: Session, references: Sequence[Reference]) -> dict[int, int]:
    """Index of each entry that names a stored paper → that paper's id (arXiv id, then DOI, then title)."""
    ids = sorted({r.arxiv_id for r in references if r.arxiv_id})
    dois = sorted({r.doi for r in references if r.doi})
    keys = sorted({r.title_key for r in references if r.title_key})
    by_arxiv: dict[str, int] = {}
    by_doi: dict[str, int] = {}
    by_key: dict[str, int] = {}
    for condition in _conditions(ids, dois, keys):
        query = select(Paper.id, Paper.arxiv_id, Paper.doi, Paper.title_key).where(condition)
        for row in session.execute(query):
            if row.arxiv_id:
                by_arxiv.setdefault(row.arxiv_id, row.id)
            if row.doi:
                by_doi.setdefault(row.doi, row.id)
            by_key.setdefault(row.title_key, row.id)
    found: dict[int, int] = {}
    for index, reference in enumerate(references):
        paper = by_arxiv.get(reference.arxiv_id or "") or by_doi.get(reference.doi or "")
        paper = paper or by_key.get(reference.title_key)
        if paper is not None:
            found[index] = paper
    return found


def _conditions(ids: list[str], dois: list[str], keys: list[str]) -> Iterator[Any]:
    for column, values in ((Paper.arxiv_id, ids), (Paper.doi, dois), (Paper.title_key, keys)):
        for start in range(0, len(values), IN_CHUNK):
            yield column.in_(values[start : start + IN_CHUNK])


def _identifier(reference: Reference) -> str:
    return f"arXiv {reference.arxiv_id}" if reference.arxiv_id else f"DOI {reference.doi}"


def library_summary(session: Session, subscriber: Subscriber) -> dict[str, int]:
    """How big the subscriber's library is: stored papers it rated 👍, and liked texts in the model."""
    papers = session.scalar(
        select(func.count(func.distinct(Feedback.paper_id))).where(
            Feedback.subscriber_id == subscriber.id, Feedback.source == FeedbackSource.LIBRARY
        )
    )
    return {"papers": papers or 0, "texts": len(load_profile(session, subscriber).texts)}


def has_library(session: Session, subscriber: Subscriber) -> bool:
    return any(library_summary(session, subscriber).values())
