"""Looking up stored papers for people (``digest papers list|show``): newest first, by id or arXiv id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from digest.ingest.normalise import arxiv_id
from digest.models import Appearance, Paper


def list_papers(session: Session, *, limit: int = 20, search: str | None = None) -> list[Paper]:
    """The most recently first-seen papers, optionally only those whose title, abstract or arXiv id
    contains ``search`` (case-insensitive)."""
    query = select(Paper).order_by(Paper.first_seen_at.desc(), Paper.id.desc()).limit(limit)
    if search:
        pattern = f"%{_escape_like(search)}%"
        columns = (Paper.title, Paper.abstract, Paper.arxiv_id)
        query = query.where(or_(*(column.ilike(pattern, escape="\\") for column in columns)))
    return list(session.scalars(query))


def find_paper(session: Session, reference: str) -> Paper | None:
    """A paper by its database id ("42"), arXiv id ("2405.15738", "arxiv:2405.15738v2") or key."""
    reference = reference.strip()
    options = selectinload(Paper.appearances).selectinload(Appearance.digest_file)
    if reference.isdigit():
        return session.get(Paper, int(reference), options=[options])
    found = arxiv_id(reference.removeprefix("arxiv:").removeprefix("arXiv:"))
    column, value = (Paper.arxiv_id, found) if found else (Paper.key, reference)
    return session.scalar(select(Paper).where(column == value).options(options))


def paper_summary(paper: Paper) -> dict[str, Any]:
    return {
        "id": paper.id,
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "first_seen_at": paper.first_seen_at.isoformat(timespec="seconds"),
        "url": paper.url,
    }


def paper_details(paper: Paper) -> dict[str, Any]:
    appearances = sorted(paper.appearances, key=lambda a: (a.digest_date is None, a.digest_date, a.id))
    return paper_summary(paper) | {
        "key": paper.key,
        "abstract": paper.abstract,
        "authors": paper.authors,
        "published_at": paper.published_at.isoformat() if paper.published_at else None,
        "upvotes": paper.upvotes,
        "appearances": [
            {"file": a.digest_file.name, "digest_date": a.digest_date.isoformat() if a.digest_date else None}
            for a in appearances
        ],
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
