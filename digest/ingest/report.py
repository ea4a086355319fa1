"""What an ingest batch reports: one result per file, and the counts the CLI and the inbox job print."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from digest.models import FileStatus


@dataclass
class FileResult:
    """What happened to one file."""

    file: str
    status: FileStatus
    reason: str | None = None
    format: str | None = None
    digest_date: dt.date | None = None
    papers_total: int = 0
    papers_new: int = 0
    papers_duplicate: int = 0
    papers_enriched: int = 0


@dataclass
class IngestReport:
    """The outcome of one batch, for the one-line summary and ``--json``."""

    results: list[FileResult] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def _count(self, status: FileStatus) -> int:
        return sum(result.status == status for result in self.results)

    def _sum(self, name: str) -> int:
        return sum(getattr(result, name) for result in self.results)

    @property
    def files(self) -> int:
        return len(self.results)

    @property
    def files_ingested(self) -> int:
        return self._count(FileStatus.INGESTED)

    @property
    def files_rejected(self) -> int:
        return self._count(FileStatus.REJECTED)

    @property
    def files_already_seen(self) -> int:
        return self._count(FileStatus.ALREADY_SEEN)

    @property
    def papers_new(self) -> int:
        return self._sum("papers_new")

    @property
    def papers_duplicate(self) -> int:
        return self._sum("papers_duplicate")

    @property
    def papers_enriched(self) -> int:
        return self._sum("papers_enriched")

    @property
    def errors(self) -> list[dict[str, str]]:
        return [
            {"file": r.file, "reason": r.reason or ""}
            for r in self.results
            if r.status == FileStatus.REJECTED
        ]

    def as_dict(self) -> dict[str, Any]:
        names = ("files", "files_ingested", "files_rejected", "files_already_seen")
        names += ("papers_new", "papers_duplicate", "papers_enriched", "errors")
        payload: dict[str, Any] = {name: getattr(self, name) for name in names}
        payload.update(files_ignored=len(self.ignored), ignored=self.ignored)
        return payload

    def summary(self) -> str:
        return (
            f"{self.files} files: {self.files_ingested} ingested, {self.files_rejected} rejected, "
            f"{self.files_already_seen} already seen ({len(self.ignored)} ignored); "
            f"papers: {self.papers_new} new, {self.papers_duplicate} duplicate, "
            f"{self.papers_enriched} enriched"
        )
