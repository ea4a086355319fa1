"""Shared by the ingestion tests: small digest files in each format, and database snapshots."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from digest.db import Database
from digest.models import Appearance, DigestFile, Paper

CHROME = [
    "new",
    "",
    "Get trending papers in your email inbox!",
    "",
    "Subscribe",
    "",
    "byAK and the research community",
    "",
]


def abstract(topic: str) -> str:
    """A realistic one-line abstract (well over the 200 characters that mark an abstract)."""
    return (
        f"We study {topic} in depth. Prior work on {topic} relies on large labelled corpora, which are "
        f"costly to build. We propose a simple method that learns {topic} from unlabelled data and "
        "matches supervised baselines on four benchmarks while using a tenth of the compute."
    )


def blank_lines_dump(papers: list[tuple[str, str | None]], *, date: str | None = "Mar 13") -> str:
    """Layout 1: chrome, an optional date, then title / blank / abstract / blank …"""
    lines = list(CHROME) + ([date, ""] if date else [])
    for title, text in papers:
        lines += [title, ""] + ([text, ""] if text else [])
    return "\n".join(lines)


def alternating_dump(papers: list[tuple[str, str | None]]) -> str:
    """Layout 2: chrome lines, "Subscribe" glued to the first title, then title and abstract lines."""
    lines = [
        "Get trending papers in your email inbox once a day!",
        "Get trending papers in your email inbox!",
    ]
    for index, (title, text) in enumerate(papers):
        lines.append(("Subscribe" if index == 0 else "") + title)
        lines += [text] if text else []
    return "\n".join(lines)


def api_entry(arxiv: str, title: str, summary: str | None = None, **paper: Any) -> dict[str, Any]:
    """One daily-papers API entry, shaped like the real ones (title with a hard line break)."""
    body = {
        "id": arxiv,
        "title": title,
        "summary": summary if summary is not None else abstract(title.lower()),
        "authors": [
            {"_id": "x1", "name": "Ada Lovelace", "hidden": False},
            {"_id": "x2", "name": "Alan Turing"},
        ],
        "upvotes": 7,
        "publishedAt": "2024-05-23T17:59:59.000Z",
    }
    body.update(paper)
    return {"paper": body, "title": title, "publishedAt": "2024-05-24T01:00:00.000Z", "numComments": 1}


def api_json(*entries: dict[str, Any]) -> bytes:
    return json.dumps(list(entries), indent=2).encode()


def paper_rows(db: Database) -> dict[int, tuple[Any, ...]]:
    """Every stored paper, field by field, to compare before and after."""
    with db.session() as session:
        return {
            p.id: (
                p.key,
                p.arxiv_id,
                p.title_key,
                p.title,
                p.abstract,
                tuple(p.authors),
                p.published_at,
                p.upvotes,
            )
            for p in session.scalars(select(Paper))
        }


def papers_by_title(db: Database) -> dict[str, Paper]:
    with db.session() as session:
        return {paper.title: paper for paper in session.scalars(select(Paper))}


def digest_files(db: Database) -> list[DigestFile]:
    with db.session() as session:
        return list(session.scalars(select(DigestFile).order_by(DigestFile.id)))


def appearances(db: Database) -> list[tuple[str, str, Any]]:
    """(paper title, file name, digest date) for every appearance."""
    with db.session() as session:
        rows = session.execute(
            select(Paper.title, DigestFile.name, Appearance.digest_date)
            .join(Appearance, Appearance.paper_id == Paper.id)
            .join(DigestFile, DigestFile.id == Appearance.digest_file_id)
            .order_by(Appearance.id)
        )
        return [tuple(row) for row in rows]
