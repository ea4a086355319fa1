"""Writing one parsed digest file: bounded transactions, and a file that counts only once all is written.

A 50 MB file holds over a million small entries. Written in one transaction it held SQLite's single write
lock for over a minute, and every vote meanwhile waited or failed ("database is locked"). So the file's
row is recorded first as ``ingesting`` (with its holder, ``digest.owner``), its entries are then merged
and written ``CHUNK_ENTRIES`` at a time, each chunk one short transaction that also advances the file's
counts, and the file becomes ``ingested`` in the last one. A file interrupted half-way (process killed,
disk full) stays ``ingesting``; offering it again resumes where its count of entries stops (the same
bytes parse the same), so it ends ``ingested`` with every entry exactly once. Its papers are real papers,
visible as soon as their chunk commits; only the file's status says whether all of it is in.

Each chunk's new papers are counted in the corpus statistics (``digest.rank.library``) in the chunk's
own transaction, so they commit or roll back with that chunk's papers; so does further per-chunk work
given as ``on_chunk``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.db import Database
from digest.ingest.dedupe import IN_CHUNK, KnownPaper, Merger, known_papers
from digest.ingest.entries import ParsedDigest
from digest.models import Appearance, DigestFile, FileStatus, Paper, utcnow
from digest.owner import Holder, holder_state, this_process
from digest.rank.corpus import paper_text
from digest.rank.library import NewPaper, prepare_index, revise_papers, write_index
from digest.rank.store import StatisticsChanged

log = logging.getLogger(__name__)

CHUNK_ENTRIES = 2_000  # about 0.1 s of SQLite's write lock for small entries
# Between two chunks on SQLite: room for a writer waiting in another thread or process (a vote) to take
# the lock, which it polls for every 2 ms (digest.db).
CHUNK_PAUSE_SECONDS = 0.01
# An ``ingesting`` file claimed by a process on another host (whose life we cannot check) and untouched
# this long was abandoned: each chunk touches it.
STALE_AFTER = dt.timedelta(minutes=10)
CHUNK_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class StoredChunk:
    """What one chunk wrote, for per-chunk work: papers added, papers whose gaps it filled, papers listed."""

    digest_file_id: int
    new: list[KnownPaper]
    filled: list[KnownPaper]
    listed_ids: list[int]


ChunkHook = Callable[[Session, StoredChunk], None]


@dataclasses.dataclass
class Progress:
    """A file being written: entries done and the counts so far (as stored in its row)."""

    digest_file_id: int
    done: int = 0
    position: int = 0  # appearances written (their positions run 1, 2, …)
    new: int = 0
    duplicate: int = 0
    enriched: int = 0


def begin(db: Database, row: DigestFile, now: dt.datetime) -> Progress | None:
    """Record ``row`` as ``ingesting``, or take back an interrupted ingest of the same content.

    None when the content is already recorded (ingested, rejected) or another live process is writing it.
    Raises IntegrityError when another process recorded the same content at the same moment."""
    with db.write_session() as session:
        earlier = session.scalar(select(DigestFile).where(DigestFile.content_hash == row.content_hash))
        if earlier is None:
            row.status, row.claimed_by, row.ingested_at = FileStatus.INGESTING, this_process(), now
            session.add(row)
            session.flush()
            return Progress(row.id)
        if earlier.status != FileStatus.INGESTING or not abandoned(earlier, now):
            return None
        earlier.claimed_by, earlier.ingested_at = this_process(), now
        position = session.scalar(
            select(func.count()).select_from(Appearance).where(Appearance.digest_file_id == earlier.id)
        )
        return Progress(
            earlier.id, earlier.papers_total, position or 0, earlier.papers_new, earlier.papers_duplicate
        )


def abandoned(row: DigestFile, now: dt.datetime) -> bool:
    """An ``ingesting`` file nobody is writing any more: its process is gone, or it is this process's own
    earlier attempt, or (another host's) it has not moved for ``STALE_AFTER``."""
    if row.claimed_by == this_process():
        return True
    state = holder_state(row.claimed_by)
    return state == Holder.GONE or (state == Holder.ELSEWHERE and now - row.ingested_at > STALE_AFTER)


def write(db: Database, parsed: ParsedDigest, progress: Progress, on_chunk: ChunkHook | None = None) -> None:
    """Write the entries from ``progress.done`` on, chunk by chunk; the last chunk marks the file ingested."""
    starts = range(progress.done, len(parsed.entries), CHUNK_ENTRIES)
    if not starts:  # every entry was written before an interruption: only the status is left
        with db.write_session() as session:
            _advance(session, progress.digest_file_id, (0, 0, 0), last=True)
    for start in starts:
        _chunk_with_retry(db, parsed, progress, start, on_chunk)
        if db.embedded and start + CHUNK_ENTRIES < len(parsed.entries):
            time.sleep(CHUNK_PAUSE_SECONDS)


def _chunk_with_retry(
    db: Database, parsed: ParsedDigest, progress: Progress, start: int, on_chunk: ChunkHook | None
) -> None:
    # Another process (the inbox job, the CLI) may insert one of these papers between our read and write,
    # or count papers in the corpus statistics: the unique keys refuse ours, or the statistics' stamp has
    # moved, and the chunk is read and merged again.
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            counts = _chunk(db, parsed, progress, start, on_chunk)
        except IntegrityError:
            if attempt == CHUNK_ATTEMPTS:
                raise
            continue
        progress.done = min(start + CHUNK_ENTRIES, len(parsed.entries))
        progress.position += counts[3]
        progress.new, progress.duplicate, progress.enriched = (
            progress.new + counts[0],
            progress.duplicate + counts[1],
            progress.enriched + counts[2],
        )
        return


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the write lock is held: with a million parsed entries in memory
    a full collection walks them all (up to a second, measured) inside the chunk. Memory is still freed by
    reference counting; the collector runs again between chunks, when the lock is free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunk(
    db: Database, parsed: ParsedDigest, progress: Progress, start: int, on_chunk: ChunkHook | None
) -> tuple[int, int, int, int]:
    entries = parsed.entries[start : start + CHUNK_ENTRIES]
    last = start + CHUNK_ENTRIES >= len(parsed.entries)
    with _collector_paused(), db.write_session() as session:
        merger = Merger(entries, parsed.digest_date)
        merger.run(known_papers(session, entries))
        stored = _write(session, merger, progress)
        counts = (merger.new, merger.duplicate, merger.enriched)
        _advance(session, progress.digest_file_id, counts, last=last, entries=len(entries))
        if on_chunk is not None:
            on_chunk(session, stored)
    _index(db, stored, db.settings.recency_days)
    return (*counts, len(stored.listed_ids))


def _index(db: Database, stored: StoredChunk, window_days: float) -> None:
    """Count the chunk's new papers in the corpus statistics, and the papers whose text it completed.

    The hashing, the neighbours and the encoding happen before the write lock is taken, which is then held
    for two statements. A paper left unindexed (a crash just before, another process's statistics write
    won three times) is indexed where its row is first needed (``digest.rank.library.index_stored``)."""
    new = [_new_paper(paper) for paper in stored.new]
    grown = [_new_paper(paper) for paper in stored.filled if {"title", "abstract"} & paper.changes.keys()]
    for _ in range(CHUNK_ATTEMPTS):
        with db.session() as session:
            prepared = prepare_index(session, new, window_days)
        try:
            with _collector_paused(), db.write_session() as session:
                if prepared is not None:
                    write_index(session, prepared)
                revise_papers(session, grown)
            return
        except StatisticsChanged:
            continue
    log.warning("ingest: %d new papers left to be counted when first used", len(new))


def _new_paper(paper: KnownPaper) -> NewPaper:
    assert paper.id is not None
    text = paper_text(paper.values["title"], paper.values["abstract"])
    return NewPaper(paper.id, text, paper.values.get("first_seen_at") or utcnow())


def _write(session: Session, merger: Merger, progress: Progress) -> StoredChunk:
    """New papers in one executemany (ids back in order), gap-filling updates, then the appearances."""
    added = [paper for paper in merger.listed if paper.id is None]
    if added:
        statement = insert(Paper).returning(Paper.id, sort_by_parameter_order=True)
        ids = session.scalars(statement, [paper.values for paper in added]).all()
        for paper, paper_id in zip(added, ids, strict=True):
            paper.id = paper_id
    filled = [paper for paper in merger.listed if paper.changes and paper not in added]
    for paper in filled:
        session.execute(update(Paper).where(Paper.id == paper.id).values(paper.changes))
    rows = list(_new_appearances(session, merger, progress))
    if rows:
        session.execute(insert(Appearance), rows)
    return StoredChunk(progress.digest_file_id, added, filled, [row["paper_id"] for row in rows])


def _new_appearances(session: Session, merger: Merger, progress: Progress) -> Iterator[dict[str, Any]]:
    """One appearance per paper per file: a paper an earlier chunk listed (or, on a resume, the
    interrupted run) keeps its first position."""
    ids = [paper.id for paper in merger.listed]
    listed: set[int] = set()
    for begin_at in range(0, len(ids), IN_CHUNK):
        query = select(Appearance.paper_id).where(
            Appearance.digest_file_id == progress.digest_file_id,
            Appearance.paper_id.in_(ids[begin_at : begin_at + IN_CHUNK]),
        )
        listed.update(session.scalars(query))
    position = progress.position
    for paper in merger.listed:
        if paper.id in listed:
            continue
        listed.add(paper.id)  # type: ignore[arg-type]
        position += 1
        yield {
            "paper_id": paper.id,
            "digest_file_id": progress.digest_file_id,
            "digest_date": paper.digest_date,
            "position": position,
        }


def _advance(
    session: Session, file_id: int, counts: tuple[int, int, int], *, last: bool, entries: int = 0
) -> None:
    """The file's counts move with each chunk, in its transaction; the last chunk marks it ingested."""
    values: dict[str, Any] = {
        "papers_total": DigestFile.papers_total + entries,
        "papers_new": DigestFile.papers_new + counts[0],
        "papers_duplicate": DigestFile.papers_duplicate + counts[1],
        "ingested_at": utcnow(),
    }
    if last:
        values.update(status=FileStatus.INGESTED, claimed_by=None)
    session.execute(update(DigestFile).where(DigestFile.id == file_id).values(values))
