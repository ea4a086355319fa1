"""The ingestion service: digest files in, deduplicated papers and appearances out, or a recorded rejection.

One code path for the CLI (``digest ingest``), the inbox job and the API pull (``ingest_bytes``):

* Each file is one transaction. It is parsed completely before anything is written, so a bad file
  (binary, empty, wrong shape, an entry without a title, too big) changes no stored paper: it is
  recorded as a ``rejected`` DigestFile with the reason (naming the line or entry) and the batch goes on.
* A file whose content hash is already recorded (ingested *or* rejected) changes nothing and is
  reported as ``already_seen``. Files themselves are only ever read.
* A file over ``settings.max_file_bytes`` is rejected from its size alone, unread. Its hash is then
  taken over (path, size, mtime) instead of the content, so offering it again is still "already seen".
* Identity: the arXiv id when known, else the title key (``normalise.title_key``). An entry matches a
  stored paper by arXiv id, else by title key unless the stored paper has a *different* arXiv id (then
  they are two papers with one title, and the newcomer's title key gets a ``~arxiv:<id>`` suffix to
  stay unique). A match only fills what the stored paper lacks (arXiv id — ``key`` becomes
  ``arxiv:<id>`` — abstract, authors, publication time, upvotes); nothing stored is overwritten.
* Existing papers are loaded per file with bulk ``IN`` queries, never one query per entry.
* Folders are walked recursively for ``*.txt`` and ``*.json``; hidden files, other extensions and
  licence/README-type files (``LICENSE-archive-repo.txt`` beside the archived API files) are skipped
  and listed as ignored. A file named explicitly is always read, whatever its name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tqdm import tqdm

from digest.db import Database
from digest.ingest.decode import decode
from digest.ingest.entries import Entry, ParsedDigest, ParseError
from digest.ingest.hf_json import parse_json
from digest.ingest.normalise import paper_key, storable
from digest.ingest.text import parse_text
from digest.models import Appearance, DigestFile, Paper, utcnow

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".json")
PROGRESS_MIN_FILES = 20
_IN_CHUNK = 500
_MAX_INT = 2**31 - 1
_NOT_DIGESTS = re.compile(r"^(licen[cs]e|copying|notice|readme|changelog|authors)\b", re.IGNORECASE)
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


@dataclass
class FileResult:
    """What happened to one file. ``status``: ingested | rejected | already_seen."""

    file: str
    status: str
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

    def _count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    def _sum(self, name: str) -> int:
        return sum(getattr(result, name) for result in self.results)

    @property
    def files(self) -> int:
        return len(self.results)

    @property
    def files_ingested(self) -> int:
        return self._count("ingested")

    @property
    def files_rejected(self) -> int:
        return self._count("rejected")

    @property
    def files_already_seen(self) -> int:
        return self._count("already_seen")

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
        return [{"file": r.file, "reason": r.reason or ""} for r in self.results if r.status == "rejected"]

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


def ingest_paths(db: Database, paths: Iterable[Path], *, progress: bool = False) -> IngestReport:
    """Ingest files and folders (recursively); each file on its own, the batch never stops early.

    ``progress`` draws a tqdm bar on stderr for batches of ``PROGRESS_MIN_FILES`` files or more (the CLI
    asks for it when stderr is a terminal)."""
    files, ignored = collect(paths)
    report = IngestReport(ignored=[storable(str(path)) for path in ignored])
    bar = tqdm(
        files,
        file=sys.stderr,
        unit="file",
        desc="ingest",
        leave=False,
        disable=not progress or len(files) < PROGRESS_MIN_FILES,
    )
    for path in bar:
        report.results.append(ingest_file(db, path))
    return report


def ingest_bytes(db: Database, name: str, data: bytes, digest_date: dt.date | None = None) -> IngestReport:
    """Ingest one file's content (the API pull); ``digest_date`` beats a date in ``name``."""
    anchor = digest_date or name_date(name) or utcnow().date()
    result = _ingest_data(db, name, data, path=None, anchor=anchor, forced_date=digest_date)
    return IngestReport(results=[result])


def ingest_file(db: Database, path: Path) -> FileResult:
    """Ingest one file from disk; its size is checked before a byte is read."""
    try:
        stat = path.stat()
        if not path.is_file():
            return FileResult(storable(str(path)), "rejected", "not a regular file")
        if stat.st_size > db.settings.max_file_bytes:
            return _reject_unread(db, path, stat.st_size, stat.st_mtime_ns)
        with path.open("rb") as handle:  # bounded: a file growing after stat() is still cut at the limit
            data = handle.read(db.settings.max_file_bytes + 1)
    except OSError as exc:
        return FileResult(storable(str(path)), "rejected", f"cannot read: {exc.strerror or exc}")
    mtime_date = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).date()
    anchor = name_date(path.name) or mtime_date
    return _ingest_data(db, path.name, data, path=path, anchor=anchor, forced_date=None)


def collect(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """The files to ingest (named files as given, folders walked in name order) and the files skipped."""
    files: list[Path] = []
    ignored: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for child in sorted(path.rglob("*")):
            if child.is_file():
                (files if _wanted(child.relative_to(path)) else ignored).append(child)
    unique = list(dict.fromkeys(files))
    return unique, ignored


def _wanted(relative: Path) -> bool:
    if any(part.startswith(".") for part in relative.parts):
        return False
    return relative.suffix.lower() in SUFFIXES and not _NOT_DIGESTS.match(relative.name)


def name_date(name: str) -> dt.date | None:
    """A YYYY-MM-DD date in a file name (the archive names files by their digest day)."""
    match = _NAME_DATE.search(name)
    if match is None:
        return None
    try:
        return dt.date(*map(int, match.groups()))
    except ValueError:
        return None


# --- one file ----------------------------------------------------------------------------------


def _ingest_data(
    db: Database, name: str, data: bytes, *, path: Path | None, anchor: dt.date, forced_date: dt.date | None
) -> FileResult:
    shown = storable(str(path) if path else name)
    content_hash = hashlib.sha256(data).hexdigest()
    record = _Record(shown, name, path, content_hash, len(data))
    seen = _already_seen(db, record)
    if seen is not None:
        return seen
    if len(data) > db.settings.max_file_bytes:
        return _reject(db, record, f"too big: {len(data)} bytes (limit {db.settings.max_file_bytes})")
    try:
        parsed = _parse(name, data, anchor, forced_date or name_date(name))
    except ParseError as exc:
        return _reject(db, record, str(exc))
    except Exception as exc:  # a parser bug must not stop the batch; the reason says it is one
        log.exception("unexpected error parsing %s", shown)
        reason = f"internal error while parsing ({type(exc).__name__}: {exc}); please report it"
        return _reject(db, record, reason)
    return _store_with_retry(db, record, parsed)


@dataclass
class _Record:
    shown: str
    name: str
    path: Path | None
    content_hash: str
    size: int

    def digest_file(self, **fields: Any) -> DigestFile:
        return DigestFile(
            name=storable(self.name)[:1024],
            path=storable(str(self.path.resolve())) if self.path else None,
            content_hash=self.content_hash,
            size=min(self.size, _MAX_INT),
            **fields,
        )


def _parse(name: str, data: bytes, anchor: dt.date, date_of_name: dt.date | None) -> ParsedDigest:
    text = decode(data)
    is_json_name = name.lower().endswith(".json")
    if is_json_name or text.lstrip("\ufeff \t\r\n")[:1] in ("[", "{"):
        try:
            return parse_json(text, name_date=date_of_name)
        except ParseError:
            if is_json_name:
                raise  # a text file that merely starts with a bracket falls through to the text reader
    return parse_text(text, anchor=anchor, name_date=date_of_name)


def _already_seen(db: Database, record: _Record) -> FileResult | None:
    with db.session() as session:
        earlier = session.scalar(select(DigestFile).where(DigestFile.content_hash == record.content_hash))
        if earlier is None:
            return None
        when = earlier.ingested_at.strftime("%Y-%m-%d %H:%M")
        reason = f"same content as {earlier.name}, {earlier.status} on {when} UTC"
        if earlier.status == "rejected":
            reason += f": {earlier.error}"
        return FileResult(record.shown, "already_seen", reason, earlier.format, earlier.digest_date)


def _reject_unread(db: Database, path: Path, size: int, mtime_ns: int) -> FileResult:
    # Identity from (path, size, mtime): hashing the content would mean reading what we refuse to read.
    fingerprint = f"unread:{path.resolve()}:{size}:{mtime_ns}".encode()
    record = _Record(storable(str(path)), path.name, path, hashlib.sha256(fingerprint).hexdigest(), size)
    reason = f"too big: {size} bytes (limit {db.settings.max_file_bytes}, DIGEST_MAX_FILE_BYTES); not read"
    return _already_seen(db, record) or _reject(db, record, reason)


def _reject(db: Database, record: _Record, reason: str) -> FileResult:
    reason = storable(reason)
    log.info("rejected %s: %s", record.shown, reason)  # the caller reports it (CLI: stderr)
    try:
        with db.session() as session:
            session.add(record.digest_file(status="rejected", error=reason))
    except IntegrityError:  # another process recorded the same content meanwhile
        return _already_seen(db, record) or FileResult(record.shown, "rejected", reason)
    return FileResult(record.shown, "rejected", reason)


def _store_with_retry(db: Database, record: _Record, parsed: ParsedDigest) -> FileResult:
    # A concurrent ingest (scheduler and CLI) may insert the same paper or file first: the unique
    # constraints catch it, and one retry sees their rows.
    try:
        return _store(db, record, parsed)
    except IntegrityError:
        log.info("retrying %s after a concurrent insert", record.shown)
        return _already_seen(db, record) or _store(db, record, parsed)


def _store(db: Database, record: _Record, parsed: ParsedDigest) -> FileResult:
    with db.session() as session:
        digest_file = record.digest_file(status="ingested", format=parsed.format)
        digest_file.digest_date = parsed.digest_date
        session.add(digest_file)
        session.flush()
        merger = _Merger(parsed.entries, parsed.digest_date)
        merger.run(_known_papers(session, parsed.entries))
        _write(session, merger, digest_file.id)
        digest_file.papers_total = len(parsed.entries)
        digest_file.papers_new, digest_file.papers_duplicate = merger.new, merger.duplicate
    counts = (len(parsed.entries), merger.new, merger.duplicate, merger.enriched)
    return FileResult(record.shown, "ingested", None, parsed.format, parsed.digest_date, *counts)


def _write(session: Session, merger: _Merger, digest_file_id: int) -> None:
    """New papers in one executemany (ids back in order), gap-filling updates, then the appearances."""
    added = [paper for paper in merger.listed if paper.id is None]
    if added:
        statement = insert(Paper).returning(Paper.id, sort_by_parameter_order=True)
        ids = session.scalars(statement, [paper.values for paper in added]).all()
        for paper, paper_id in zip(added, ids, strict=True):
            paper.id = paper_id
    for paper in merger.listed:
        if paper.changes and paper not in added:
            session.execute(update(Paper).where(Paper.id == paper.id).values(paper.changes))
    session.execute(insert(Appearance), merger.appearance_rows(digest_file_id))


# --- dedupe and enrichment -------------------------------------------------------------------

_COLUMNS = ("key", "arxiv_id", "title_key", "title", "abstract", "authors", "published_at", "upvotes")
_GAPS = ("abstract", "authors", "published_at", "upvotes")


@dataclass(eq=False)
class _Paper:
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


def _known_papers(session: Session, entries: list[Entry]) -> list[_Paper]:
    """The stored papers any entry could match, in a few bulk ``IN`` queries (not one per entry)."""
    ids = sorted({entry.arxiv_id for entry in entries if entry.arxiv_id})
    keys = sorted({entry.key for entry in entries})
    columns = [Paper.id, *(getattr(Paper, name) for name in _COLUMNS)]
    rows: dict[int, _Paper] = {}
    for id_chunk, key_chunk in zip_longest(_chunks(ids), _chunks(keys), fillvalue=[]):
        condition = or_(Paper.arxiv_id.in_(id_chunk), Paper.title_key.in_(key_chunk))
        for row in session.execute(select(*columns).where(condition)):
            rows[row.id] = _Paper(row.id, {name: getattr(row, name) for name in _COLUMNS})
    return list(rows.values())


class _Merger:
    """Matches one file's entries to stored papers (and to each other), adds the new, fills the gaps."""

    def __init__(self, entries: list[Entry], file_date: dt.date | None) -> None:
        self.entries, self.file_date = entries, file_date
        self.by_arxiv: dict[str, _Paper] = {}
        self.by_key: dict[str, _Paper] = {}
        self.listed: dict[_Paper, None] = {}  # the papers this file lists, in order of first listing
        self.new = self.duplicate = self.enriched = 0
        self.now = utcnow()

    def run(self, known: list[_Paper]) -> None:
        for paper in known:
            self._remember(paper)
        for entry in self.entries:
            self._take(entry)

    def _remember(self, paper: _Paper) -> None:
        if paper.arxiv_id:
            self.by_arxiv[paper.arxiv_id] = paper
        self.by_key.setdefault(paper.title_key, paper)

    def _take(self, entry: Entry) -> None:
        paper = self._match(entry)
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

    def _match(self, entry: Entry) -> _Paper | None:
        if entry.arxiv_id and entry.arxiv_id in self.by_arxiv:
            return self.by_arxiv[entry.arxiv_id]
        paper = self.by_key.get(entry.key)
        if paper is not None and entry.arxiv_id and paper.arxiv_id not in (None, entry.arxiv_id):
            return None  # one title, two arXiv ids: two papers
        return paper

    def _add(self, entry: Entry) -> _Paper:
        key = entry.key if entry.key not in self.by_key else f"{entry.key}~arxiv:{entry.arxiv_id}"
        values = {
            "key": paper_key(entry.arxiv_id, key), "arxiv_id": entry.arxiv_id, "title_key": key,
            "title": entry.title, "abstract": entry.abstract, "authors": list(entry.authors),
            "published_at": entry.published_at, "upvotes": entry.upvotes, "first_seen_at": self.now,
        }  # fmt: skip
        paper = _Paper(None, values)
        self._remember(paper)
        return paper

    def appearance_rows(self, digest_file_id: int) -> list[dict[str, Any]]:
        return [
            {"paper_id": p.id, "digest_file_id": digest_file_id, "digest_date": p.digest_date, "position": n}
            for n, p in enumerate(self.listed, start=1)
        ]


def _enrich(paper: _Paper, entry: Entry, by_arxiv: dict[str, _Paper]) -> bool:
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
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]
