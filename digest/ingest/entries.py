"""What a parser hands to the ingestion service: the entries of one digest file, or why it has none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from digest.ingest.normalise import clean_text, title_key


class ParseError(Exception):
    """The file cannot be ingested; the message names the line or entry at fault."""


@dataclass
class Entry:
    """One paper as a digest file lists it. ``where`` locates it for messages ("line 12", "entry 3")."""

    title: str
    where: str
    abstract: str | None = None
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: dt.datetime | None = None
    upvotes: int | None = None
    digest_date: dt.date | None = None
    doi: str | None = None
    # A later version of a paper announced before (arXiv's "replace"): it fills what a stored paper lacks
    # but is never a new paper.
    replacement: bool = False

    def __post_init__(self) -> None:
        self.title = clean_text(self.title)
        self.abstract = clean_text(self.abstract) if self.abstract else None
        self.abstract = self.abstract or None
        self.key = title_key(self.title)
        if not self.key:
            raise ParseError(f"{self.where}: the title has no letters or digits ({self.title[:80]!r})")


@dataclass
class ParsedDigest:
    """A parsed file: its format (how it was read), its digest date when known, its entries in order."""

    format: str
    entries: list[Entry]
    digest_date: dt.date | None = None
    notes: list[str] = field(default_factory=list)
