"""The ingestion service: digest files in, deduplicated papers and appearances out, or a recorded rejection.

One code path for the CLI (``digest ingest``), the inbox job and the API pull (``ingest_bytes``):

* Each file is one transaction. It is parsed completely before anything is written, so a bad file
  (binary, empty, wrong shape, an entry without a title, too big) changes no stored paper: it is
  recorded as a ``rejected`` DigestFile with the reason (naming the line or entry) and the batch goes on.
* A file whose content hash is already recorded (ingested *or* rejected) changes nothing and is
  reported as ``already_seen``. Files themselves are only ever read.
* A file over ``settings.max_file_bytes`` is rejected from its size alone, unread. Its hash is then
  taken over (path, size, mtime) instead of the content, so offering it again is still "already seen".
* Papers are deduplicated by arXiv id or title (``digest.ingest.dedupe``); nothing stored is overwritten.
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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tqdm import tqdm

from digest.db import Database
from digest.ingest.decode import decode
from digest.ingest.dedupe import KnownPaper, Merger, known_papers
from digest.ingest.entries import ParsedDigest, ParseError
from digest.ingest.hf_json import parse_json
from digest.ingest.normalise import storable
from digest.ingest.report import FileResult, IngestReport
from digest.ingest.text import parse_text
from digest.models import Appearance, DigestFile, FileStatus, Paper, utcnow
from digest.rank.corpus import paper_text
from digest.rank.library import NewPaper, index_papers, revise_papers
from digest.rank.store import StatisticsChanged

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".json")
PROGRESS_MIN_FILES = 20
_MAX_INT = 2**31 - 1
_NOT_DIGESTS = re.compile(r"^(licen[cs]e|copying|notice|readme|changelog|authors)\b", re.IGNORECASE)
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


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
            return FileResult(storable(str(path)), FileStatus.REJECTED, "not a regular file")
        if stat.st_size > db.settings.max_file_bytes:
            return _reject_unread(db, path, stat.st_size, stat.st_mtime_ns)
        with path.open("rb") as handle:  # bounded: a file growing after stat() is still cut at the limit
            data = handle.read(db.settings.max_file_bytes + 1)
    except OSError as exc:
        return FileResult(storable(str(path)), FileStatus.REJECTED, f"cannot read: {exc.strerror or exc}")
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
        if earlier.status == FileStatus.REJECTED:
            reason += f": {earlier.error}"
        return FileResult(record.shown, FileStatus.ALREADY_SEEN, reason, earlier.format, earlier.digest_date)


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
            session.add(record.digest_file(status=FileStatus.REJECTED, error=reason))
    except IntegrityError:  # another process recorded the same content meanwhile
        return _already_seen(db, record) or FileResult(record.shown, FileStatus.REJECTED, reason)
    return FileResult(record.shown, FileStatus.REJECTED, reason)


def _store_with_retry(db: Database, record: _Record, parsed: ParsedDigest) -> FileResult:
    # A concurrent ingest (scheduler and CLI) may insert the same paper or file first, or count papers
    # in the corpus statistics first: the unique constraints and the statistics' stamp catch it, and a
    # retry sees their rows.
    for attempt in range(3):
        try:
            return _store(db, record, parsed)
        except (IntegrityError, StatisticsChanged):
            if attempt == 2:
                raise
            log.info("retrying %s after a concurrent write", record.shown)
            seen = _already_seen(db, record)
            if seen is not None:
                return seen
    raise AssertionError("unreachable")


def _store(db: Database, record: _Record, parsed: ParsedDigest) -> FileResult:
    with db.session() as session:
        digest_file = record.digest_file(status=FileStatus.INGESTED, format=parsed.format)
        digest_file.digest_date = parsed.digest_date
        session.add(digest_file)
        session.flush()
        merger = Merger(parsed.entries, parsed.digest_date)
        merger.run(known_papers(session, parsed.entries))
        _write(session, merger, digest_file.id)
        _index(session, merger, db.settings.recency_days)
        digest_file.papers_total = len(parsed.entries)
        digest_file.papers_new, digest_file.papers_duplicate = merger.new, merger.duplicate
    counts = (len(parsed.entries), merger.new, merger.duplicate, merger.enriched)
    return FileResult(record.shown, FileStatus.INGESTED, None, parsed.format, parsed.digest_date, *counts)


def _index(session: Session, merger: Merger, window_days: float) -> None:
    """Count the new papers in the corpus statistics, and the papers whose text a listing completed."""
    new = [paper for paper in merger.listed if paper.added]
    grown = [
        paper for paper in merger.listed if not paper.added and {"title", "abstract"} & paper.changes.keys()
    ]
    index_papers(session, [_new_paper(paper) for paper in new], window_days)
    revise_papers(session, [_new_paper(paper) for paper in grown])


def _new_paper(paper: KnownPaper) -> NewPaper:
    values = paper.values
    assert paper.id is not None
    return NewPaper(
        paper.id, paper_text(values["title"], values["abstract"]), values.get("first_seen_at") or utcnow()
    )


def _write(session: Session, merger: Merger, digest_file_id: int) -> None:
    """New papers in one executemany (ids back in order), gap-filling updates, then the appearances."""
    added = [paper for paper in merger.listed if paper.id is None]
    if added:
        statement = insert(Paper).returning(Paper.id, sort_by_parameter_order=True)
        ids = session.scalars(statement, [paper.values for paper in added]).all()
        for paper, paper_id in zip(added, ids, strict=True):
            paper.id, paper.added = paper_id, True
    for paper in merger.listed:
        if paper.changes and paper not in added:
            session.execute(update(Paper).where(Paper.id == paper.id).values(paper.changes))
    session.execute(insert(Appearance), merger.appearance_rows(digest_file_id))
