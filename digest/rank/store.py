"""Where the rank room's state lives in the database: each paper's term counts, the corpus statistics, and
the papers that best match each keyword set. Encodings are plain arrays (never pickle)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from digest.models import CorpusState, KeywordExpansion, PaperTerms, utcnow
from digest.rank.statistics import CorpusStatistics
from digest.rank.tfidf import N_FEATURES

_STATE_ID = 1


class StatisticsChanged(Exception):
    """Another process wrote the corpus statistics since they were read: read them again and retry."""


# --- a paper's term counts ------------------------------------------------------------------------------


def encode_counts(row: sp.csr_matrix) -> bytes:
    """One paper's counts (1 + log tf, as ``term_counts`` gives them) as column gaps and raw term
    frequencies, zlib-compressed: about 2.3 KB for an abstract."""
    columns = row.indices.astype(np.int64)
    gaps = np.diff(columns, prepend=0).astype(np.uint32)
    tf = np.minimum(np.rint(np.exp(row.data.astype(np.float64) - 1.0)), 65535).astype(np.uint16)
    return zlib.compress(np.uint32(columns.size).tobytes() + gaps.tobytes() + tf.tobytes(), 1)


def decode_counts(blobs: Sequence[bytes]) -> sp.csr_matrix:
    """The counts rows of ``blobs``, in order, as one CSR matrix."""
    columns, values, lengths = [], [], []
    for blob in blobs:
        raw = zlib.decompress(blob)
        size = int(np.frombuffer(raw[:4], dtype=np.uint32)[0])
        columns.append(np.cumsum(np.frombuffer(raw, dtype=np.uint32, count=size, offset=4), dtype=np.int64))
        values.append(np.frombuffer(raw, dtype=np.uint16, count=size, offset=4 + 4 * size))
        lengths.append(size)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = (1.0 + np.log(np.concatenate(values).astype(np.float32))) if lengths else np.zeros(0, np.float32)
    indices = np.concatenate(columns).astype(np.int32) if lengths else np.zeros(0, np.int32)
    return sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(len(lengths), N_FEATURES))


def stored_counts(session: Session, ids: Iterable[int]) -> dict[int, tuple[bytes, tuple[int, ...]]]:
    """Stored counts and neighbours of those of ``ids`` that have them."""
    wanted = list(ids)
    found: dict[int, tuple[bytes, tuple[int, ...]]] = {}
    for start in range(0, len(wanted), 500):
        query = select(PaperTerms.paper_id, PaperTerms.counts, PaperTerms.neighbours).where(
            PaperTerms.paper_id.in_(wanted[start : start + 500])
        )
        for paper_id, counts, neighbours in session.execute(query):
            found[paper_id] = (bytes(counts), tuple(neighbours or ()))
    return found


def store_counts(session: Session, rows: dict[int, tuple[bytes, tuple[int, ...]]]) -> None:
    """Store new papers' encoded counts (and the neighbours a short one borrows from), in one statement."""
    if rows:
        values = [
            {"paper_id": paper_id, "counts": blob, "neighbours": list(neighbours) or None}
            for paper_id, (blob, neighbours) in rows.items()
        ]
        session.execute(insert(PaperTerms), values)


# --- the corpus statistics ------------------------------------------------------------------------------


def load_statistics(session: Session) -> tuple[CorpusStatistics, CorpusState | None]:
    """The stored statistics (empty ones before the first paper), and the row they came from."""
    state = session.get(CorpusState, _STATE_ID)
    statistics = CorpusStatistics()
    if state is None:
        return statistics, None
    statistics.terms.n = state.papers
    statistics.terms.df = np.frombuffer(zlib.decompress(state.df), dtype=np.int32).copy()
    statistics.mean_sum = np.frombuffer(zlib.decompress(state.mean_sum), dtype=np.float32).astype(np.float64)
    statistics.background_sum = np.frombuffer(zlib.decompress(state.background_sum), dtype=np.float32).astype(
        np.float64
    )
    statistics.background_papers = state.background_papers
    statistics.version = state.version
    return statistics, state


def stamp_of(session: Session) -> tuple[int, str] | None:
    """The stored statistics' version and stamp (one primary-key read: whether a cached copy is current)."""
    row = session.execute(
        select(CorpusState.version, CorpusState.stamp).where(CorpusState.id == _STATE_ID)
    ).first()
    return None if row is None else (row[0], row[1])


def encoded_statistics(statistics: CorpusStatistics) -> dict[str, object]:
    """The statistics as the row stores them (compressing takes a while: done before a write begins)."""
    return {
        "version": statistics.version,
        "papers": statistics.papers,
        "df": zlib.compress(statistics.terms.df.astype(np.int32).tobytes(), 1),
        "mean_sum": zlib.compress(statistics.mean_sum.astype(np.float32).tobytes(), 1),
        "background_sum": zlib.compress(statistics.background_sum.astype(np.float32).tobytes(), 1),
        "background_papers": statistics.background_papers,
    }


def save_statistics(
    session: Session,
    statistics: CorpusStatistics,
    read: tuple[int, str] | None,
    background_until: dt.datetime | None = None,
    encoded: dict[str, object] | None = None,
) -> str:
    """Write the statistics (``encoded`` already, or now) if nobody else did since they were ``read``
    (StatisticsChanged otherwise); return the new stamp."""
    stamp = uuid.uuid4().hex
    values = {**(encoded or encoded_statistics(statistics)), "stamp": stamp, "updated_at": utcnow()}
    if background_until is not None:
        values["background_until"] = background_until
    if read is None:
        session.add(CorpusState(id=_STATE_ID, **values))
        session.flush()  # a concurrent first write fails here on the primary key
        return stamp
    statement = (
        update(CorpusState)
        .where(CorpusState.id == _STATE_ID, CorpusState.stamp == read[1])
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount != 1:
        raise StatisticsChanged("the corpus statistics changed meanwhile")
    return stamp


def background_until(session: Session) -> dt.datetime | None:
    return session.scalar(select(CorpusState.background_until).where(CorpusState.id == _STATE_ID))


# --- keyword expansions ---------------------------------------------------------------------------------


def keywords_key(keywords: tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps([k.casefold() for k in keywords]).encode()).hexdigest()


def stored_matches(session: Session, keywords: tuple[str, ...]) -> tuple[list[int], int] | None:
    row = session.execute(
        select(KeywordExpansion.papers, KeywordExpansion.scanned_to).where(
            KeywordExpansion.key == keywords_key(keywords)
        )
    ).first()
    return None if row is None else (list(row[0]), row[1])


def store_matches(session: Session, keywords: tuple[str, ...], papers: list[int], scanned_to: int) -> None:
    key = keywords_key(keywords)
    row = session.scalar(select(KeywordExpansion).where(KeywordExpansion.key == key))
    if row is None:
        session.add(KeywordExpansion(key=key, keywords=list(keywords), papers=papers, scanned_to=scanned_to))
    elif scanned_to >= row.scanned_to:
        row.papers, row.scanned_to = papers, scanned_to


def stored_keyword_weights(session: Session, keywords: tuple[str, ...]) -> tuple[bytes, int] | None:
    row = session.execute(
        select(KeywordExpansion.weights, KeywordExpansion.weights_basis).where(
            KeywordExpansion.key == keywords_key(keywords)
        )
    ).first()
    return None if row is None or row[0] is None else (bytes(row[0]), int(row[1] or 0))


def store_keyword_weights(session: Session, keywords: tuple[str, ...], blob: bytes, basis: int) -> None:
    key = keywords_key(keywords)
    row = session.scalar(select(KeywordExpansion).where(KeywordExpansion.key == key))
    if row is None:
        session.add(
            KeywordExpansion(key=key, keywords=list(keywords), papers=[], weights=blob, weights_basis=basis)
        )
    else:
        row.weights, row.weights_basis = blob, basis
