"""The ingestion service: digest files in, deduplicated papers and appearances out, or a recorded rejection.

One code path for the CLI (``digest ingest``), the inbox job and the API pull (``ingest_bytes``):

* Each file is parsed completely before anything is written, so a bad file (binary, empty, wrong shape,
  an entry without a title, too big) changes no stored paper: it is recorded as a ``rejected``
  DigestFile with the reason (naming the line or entry) and the batch goes on. A good one is written in
  short transactions and counts as ``ingested`` only once all of it is in (``digest.ingest.store``); an
  interrupted one is finished when it is offered again.
* A file whose content hash is already recorded (ingested *or* rejected) changes nothing and is
  reported as ``already_seen``. Files themselves are only ever read.
* A file over ``settings.max_file_bytes`` is rejected from its size alone, unread. Its hash is then
  taken over (path, size, mtime) instead of the content, so offering it again is still "already seen".
* Papers are deduplicated by arXiv id or title (``digest.ingest.dedupe``); nothing stored is overwritten.
* Existing papers are loaded per chunk with bulk ``IN`` queries, never one query per entry.
* The format is chosen by content: JSON (a ``.json`` name, or ``[``/``{`` first) is the Hugging Face API
  (``hf_json``), markup (``<`` first) an arXiv feed or API response (``arxiv_feed``), anything else a
  page dump (``text``), whose reader refuses what has not the page's shape.
* Folders are walked recursively for ``*.txt``, ``*.json`` and ``*.xml``/``*.rss``/``*.atom``; hidden
  files, other extensions and licence/README-type files (``LICENSE-archive-repo.txt`` beside the
  archived API files) are skipped and listed as ignored. A file named explicitly is always read,
  whatever its name.
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

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from tqdm import tqdm

from digest.db import Database
from digest.ingest.arxiv_feed import looks_like_markup, parse_feed
from digest.ingest.decode import decode
from digest.ingest.entries import ParsedDigest, ParseError
from digest.ingest.hf_json import parse_json
from digest.ingest.normalise import storable
from digest.ingest.report import FileResult, IngestReport
from digest.ingest.store import ChunkHook, abandoned, begin, write
from digest.ingest.text import parse_text
from digest.models import DigestFile, FileStatus, utcnow

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".json", ".xml", ".rss", ".atom")
PROGRESS_MIN_FILES = 20
_MAX_INT = 2**31 - 1
_NOT_DIGESTS = re.compile(r"^(licen[cs]e|copying|notice|readme|changelog|authors)\b", re.IGNORECASE)
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


def ingest_paths(
    db: Database, paths: Iterable[Path], *, progress: bool = False, on_chunk: ChunkHook | None = None
) -> IngestReport:
    """Ingest files and folders (recursively); each file on its own, the batch never stops early.

    ``progress`` draws a tqdm bar on stderr for batches of ``PROGRESS_MIN_FILES`` files or more (the CLI
    asks for it when stderr is a terminal). ``on_chunk`` runs in each chunk's transaction
    (``digest.ingest.store``)."""
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
        report.results.append(ingest_file(db, path, on_chunk=on_chunk))
    return report


def ingest_bytes(
    db: Database,
    name: str,
    data: bytes,
    digest_date: dt.date | None = None,
    *,
    on_chunk: ChunkHook | None = None,
) -> IngestReport:
    """Ingest one file's content (the API pull); ``digest_date`` beats a date in ``name``."""
    anchor = digest_date or name_date(name) or utcnow().date()
    source = _Source(None, anchor, digest_date, on_chunk)
    return IngestReport(results=[_ingest_data(db, name, data, source)])


def ingest_file(db: Database, path: Path, *, on_chunk: ChunkHook | None = None) -> FileResult:
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
    return _ingest_data(db, path.name, data, _Source(path, anchor, None, on_chunk))


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


@dataclass(frozen=True)
class _Source:
    """Where a file's bytes came from, what dates it, and the per-chunk hook of its ingest."""

    path: Path | None
    anchor: dt.date
    forced_date: dt.date | None
    on_chunk: ChunkHook | None


def _ingest_data(db: Database, name: str, data: bytes, source: _Source) -> FileResult:
    shown = storable(str(source.path) if source.path else name)
    content_hash = hashlib.sha256(data).hexdigest()
    record = _Record(shown, name, source.path, content_hash, len(data))
    seen = _already_seen(db, record)
    if seen is not None:
        return seen
    if len(data) > db.settings.max_file_bytes:
        return _reject(db, record, f"too big: {len(data)} bytes (limit {db.settings.max_file_bytes})")
    try:
        parsed = _parse(name, data, source.anchor, source.forced_date or name_date(name))
    except ParseError as exc:
        return _reject(db, record, str(exc))
    except Exception as exc:  # a parser bug must not stop the batch; the reason says it is one
        log.exception("unexpected error parsing %s", shown)
        reason = f"internal error while parsing ({type(exc).__name__}: {exc}); please report it"
        return _reject(db, record, reason)
    return _store_with_retry(db, record, parsed, source.on_chunk)


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
    if looks_like_markup(text):
        return parse_feed(data, name_date=date_of_name)
    return parse_text(text, anchor=anchor, name_date=date_of_name)


def _already_seen(db: Database, record: _Record) -> FileResult | None:
    """The earlier record of the same content, if any (an interrupted ingest to finish is none)."""
    with db.session() as session:
        earlier = session.scalar(select(DigestFile).where(DigestFile.content_hash == record.content_hash))
        if earlier is None:
            return None
        if earlier.status == FileStatus.INGESTING:
            if abandoned(earlier, utcnow()):
                return None
            reason = f"being ingested now by {earlier.claimed_by}"
            return FileResult(
                record.shown, FileStatus.ALREADY_SEEN, reason, earlier.format, earlier.digest_date
            )
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


def _store_with_retry(
    db: Database, record: _Record, parsed: ParsedDigest, on_chunk: ChunkHook | None
) -> FileResult:
    # A concurrent ingest (scheduler and CLI) may record the same content first: the unique content hash
    # catches it, and that ingest's record is the answer. (Concurrent papers are retried per chunk.)
    try:
        return _store(db, record, parsed, on_chunk)
    except IntegrityError:
        log.info("%s: recorded by another process meanwhile", record.shown)
        return _already_seen(db, record) or _store(db, record, parsed, on_chunk)


def _store(db: Database, record: _Record, parsed: ParsedDigest, on_chunk: ChunkHook | None) -> FileResult:
    row = record.digest_file(status=FileStatus.INGESTING, format=parsed.format)
    row.digest_date = parsed.digest_date
    progress = begin(db, row, utcnow())
    if progress is None:  # recorded meanwhile, or another live process is writing it
        return _already_seen(db, record) or FileResult(
            record.shown, FileStatus.ALREADY_SEEN, "recorded meanwhile"
        )
    write(db, parsed, progress, on_chunk)
    counts = (len(parsed.entries), progress.new, progress.duplicate, progress.enriched)
    return FileResult(record.shown, FileStatus.INGESTED, None, parsed.format, parsed.digest_date, *counts)
