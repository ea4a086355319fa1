"""Papers' sentence embeddings in the database: stored once per paper as float16 (768 bytes), read by id,
and the papers still lacking one embedded in chunks, newest first (``embed_pending``: the service's step
after ingest, and ``digest embed``, which also backfills the papers stored before).

Embedding is its own step so ingest stays fast; until a paper is embedded it is ranked on TF-IDF alone
(``digest.rank.semantic``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.db import Database
from digest.models import Paper, PaperEmbedding
from digest.rank.corpus import paper_text
from digest.rank.encoder import DIMENSION, MODEL_ID, Encoder

CHUNK = 64  # papers embedded, then written, at once (a few seconds of the model per chunk)
READ_CHUNK = 500  # ids per query when reading


def encode(vector: np.ndarray) -> bytes:
    return vector.astype(np.float16).tobytes()


def decode(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored vectors as float32 rows."""
    if not blobs:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), DIMENSION).astype(np.float32)


def stored(session: Session, ids: Iterable[int]) -> dict[int, np.ndarray]:
    """The embeddings (this model's) of those of ``ids`` that have one."""
    wanted = list(ids)
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(wanted), READ_CHUNK):
        query = select(PaperEmbedding.paper_id, PaperEmbedding.vector).where(
            PaperEmbedding.paper_id.in_(wanted[start : start + READ_CHUNK]), PaperEmbedding.model == MODEL_ID
        )
        rows = session.execute(query).all()
        found.update(zip([r[0] for r in rows], decode([bytes(r[1]) for r in rows]), strict=True))
    return found


def _embedded_ids():  # type: ignore[no-untyped-def]
    return select(PaperEmbedding.paper_id).where(PaperEmbedding.model == MODEL_ID)


def pending(session: Session) -> int:
    """How many papers lack this model's embedding."""
    query = select(func.count()).select_from(Paper).where(~Paper.id.in_(_embedded_ids()))
    return session.scalar(query) or 0


def embedded_since(session: Session, start: dt.datetime) -> int:
    """How many papers first seen since ``start`` have this model's embedding."""
    query = (
        select(func.count())
        .select_from(PaperEmbedding)
        .join(Paper, Paper.id == PaperEmbedding.paper_id)
        .where(Paper.first_seen_at >= start, PaperEmbedding.model == MODEL_ID)
    )
    return session.scalar(query) or 0


def next_pending(session: Session, limit: int, since: dt.datetime | None = None) -> list[tuple[int, str]]:
    """Up to ``limit`` papers lacking this model's embedding, newest first (today's candidates before the
    backfill of older papers), as (id, text); with ``since``, only papers first seen since then."""
    embedded = select(PaperEmbedding.paper_id).where(
        PaperEmbedding.paper_id == Paper.id, PaperEmbedding.model == MODEL_ID
    )
    query = select(Paper.id, Paper.title, Paper.abstract).where(~embedded.exists())
    if since is None:
        rows = list(session.execute(query.order_by(Paper.id.desc()).limit(limit)))
    else:  # through the first_seen_at index (ordered by id, SQLite would walk every paper's id)
        rows = sorted(session.execute(query.where(Paper.first_seen_at >= since)), key=lambda r: -r.id)[:limit]
    return [(r.id, paper_text(r.title, r.abstract)) for r in rows]


def store(session: Session, ids: Sequence[int], vectors: np.ndarray) -> None:
    """Store the papers' embeddings (replacing another model's)."""
    session.execute(delete(PaperEmbedding).where(PaperEmbedding.paper_id.in_(list(ids))))
    session.add_all(
        PaperEmbedding(paper_id=i, model=MODEL_ID, vector=encode(v))
        for i, v in zip(ids, vectors, strict=True)
    )
    session.flush()


def embed_pending(
    db: Database,
    encoder: Encoder,
    *,
    limit: int | None = None,
    since: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Embed the papers lacking this model's embedding (at most ``limit``; with ``since``, only those first
    seen since then), a chunk at a time: read, embed outside any transaction, then written in a short one (a
    vote never waits on the model). Returns how many were embedded here; a chunk another process embedded
    meanwhile is left to it. ``stop``, once set, ends it after the chunk in progress."""
    done = 0
    while (limit is None or done < limit) and not (stop is not None and stop.is_set()):
        with db.session() as session:
            papers = next_pending(session, CHUNK if limit is None else min(CHUNK, limit - done), since)
        if not papers:
            break
        vectors = encoder.encode([text for _, text in papers])
        try:
            with db.write_session() as session:
                store(session, [paper for paper, _ in papers], vectors)
        except IntegrityError:  # another process stored them first
            pass
        done += len(papers)
        if progress is not None:
            progress(len(papers))
    return done
