"""The day's candidate window: the papers first seen since its start, read once and weighed under the
current IDF, with what every subscriber's pick needs of them prepared once (the columns they use, their
word columns, which pairs are near-copies, their likeness to any paper).

Built from the database by ``build_window`` (the service) or from an in-memory corpus by ``corpus_window``
(the evaluation); the digest of every subscriber is picked from the same object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Paper, PaperTerms
from digest.rank import semantic, store
from digest.rank.corpus import Corpus, paper_text, smoothed
from digest.rank.embeddings import DIMENSION, embedded_since
from digest.rank.explain import Lookup, Meaning, Vectors
from digest.rank.library import LibraryView, index_stored, library_for
from digest.rank.tfidf import BLOCK, N_FEATURES, phrase_pattern
from digest.rank.vectors import row_of
from digest.rank.weights import Weights

# Two picks whose TF-IDF cosine exceeds this are near-copies (the same work under two titles, or a paper
# and its companion); the lower-scoring one is skipped. Papers on one topic sit well below it
# (docs/ranking.md).
MAX_SIMILARITY = 0.8
AGING_CHUNK = 2_000  # papers weighed at once as they join the background


@dataclass
class Window:
    """Candidates in a fixed order: ``ids``, ``texts`` (title + abstract), when each was first seen,
    ``rows`` (smoothed) and ``own`` rows under the current IDF, and the statistics' ``generality``."""

    ids: list[Hashable]
    texts: list[str]
    first_seen: np.ndarray  # per candidate, on the caller's time scale (datetime64 or days)
    rows: sp.csr_matrix
    own: sp.csr_matrix
    generality: np.ndarray
    # Sentence embeddings (float32 rows, zeros for a paper not embedded yet); None without the semantic part.
    embeddings: np.ndarray | None = None
    position: dict[Hashable, int] = field(init=False)
    _excluded: dict[tuple[str, ...], np.ndarray] = field(init=False, default_factory=dict)
    _block: np.ndarray | None = field(init=False, default=None)
    _near: dict[tuple[int, int], bool] = field(init=False, default_factory=dict)
    _vectors: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.position = {paper: i for i, paper in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def embedded(self) -> np.ndarray:
        """Which candidates have an embedding (the others are ranked on TF-IDF alone)."""
        if self.embeddings is None:
            return np.zeros(len(self), dtype=bool)
        return np.abs(self.embeddings).sum(axis=1) > 0

    @cached_property
    def centred(self) -> np.ndarray | None:
        """The embeddings minus their mean (``semantic.centred``): what a block of subscriber vectors is
        multiplied with; None when no candidate is embedded."""
        if self.embeddings is None or not self.embedded.any():
            return None
        return semantic.centred(self.embeddings, self.embedded)

    @cached_property
    def centred_by_dimension(self) -> np.ndarray | None:
        """``centred`` transposed (dimensions x candidates, contiguous): a block of subscriber vectors times
        it gives their scores in rows."""
        return None if self.centred is None else np.ascontiguousarray(self.centred.T)

    @cached_property
    def columns(self) -> tuple[np.ndarray, sp.csc_matrix]:
        """Each hashed column's position among those the candidates use (-1 elsewhere), and the rows over
        those columns only, stored column by column (what a block of weights is multiplied with)."""
        used = np.zeros(N_FEATURES, dtype=bool)
        used[self.rows.indices] = True
        used[self.own.indices] = True  # word columns of the own rows: a pick's evidence is read there
        local = np.where(used, np.cumsum(used, dtype=np.int32) - 1, -1).astype(np.int32)
        compact = sp.csr_matrix(
            (self.rows.data, local[self.rows.indices], self.rows.indptr),
            shape=(len(self), int(used.sum())),
        )
        return local, compact.tocsc()

    @cached_property
    def words(self) -> list[np.ndarray]:
        """Per candidate, the positions (as in ``columns``) of the words its own text has."""
        local = self.columns[0]
        own = self.own
        keep = own.indices < BLOCK
        owner = row_of(own)[keep]
        found = local[own.indices[keep]]
        bounds = np.searchsorted(owner, np.arange(len(self) + 1))
        return [found[bounds[i] : bounds[i + 1]] for i in range(len(self))]

    def near(self, i: int, j: int) -> bool:
        """Whether candidates ``i`` and ``j`` are near-copies (by their own rows): read when a pick is
        weighed against the picks already made, and kept, as every subscriber asks about the same few
        top candidates (all pairs at once would be a product of the window with itself)."""
        pair = (i, j) if i < j else (j, i)
        found = self._near.get(pair)
        if found is None:
            columns, values = self.own_entries(pair[0])
            other_columns, other_values = self.own_entries(pair[1])
            _, a, b = np.intersect1d(columns, other_columns, assume_unique=True, return_indices=True)
            found = self._near[pair] = float(values[a] @ other_values[b]) > MAX_SIMILARITY
        return found

    def block(self, width: int) -> np.ndarray:
        """A zeroed float32 block of ``width`` weight vectors over the candidates' columns, kept for reuse:
        who writes in it zeroes what they wrote (``digest.rank.scoring``). Not for two threads at once."""
        if self._block is None or self._block.shape[1] < width:
            self._block = np.zeros((self.columns[1].shape[1], width), dtype=np.float32)
        return self._block

    @contextmanager
    def vectors(self, weights: Weights) -> Iterator[Vectors]:
        """``weights`` as explanations read them over this window's columns: three dense vectors, in a
        buffer kept for reuse (zeroed where written afterwards). Not for two threads at once."""
        local = self.columns[0]
        if self._vectors is None:
            self._vectors = np.zeros((3, self.columns[1].shape[1]), dtype=np.float32)
        at = local[weights.columns]
        hit = at >= 0
        for n, values in enumerate((weights.values, weights.learned, weights.keywords)):
            self._vectors[n, at[hit]] = values[hit]
        try:
            yield Vectors(*(self._reader(n) for n in range(3)))
        finally:
            self._vectors[:, at[hit]] = 0.0

    def _reader(self, n: int) -> Lookup:
        local, dense = self.columns[0], self._vectors

        def at(columns: np.ndarray) -> np.ndarray:
            position = local[columns]
            return np.where(position >= 0, dense[n, position], 0.0)  # type: ignore[index]

        return at

    def entries(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate ``i``'s row as its sorted columns and values (no matrix slicing: a pick is explained
        by a few reads)."""
        return _entries(self.rows, i)

    def own_entries(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return _entries(self.own, i)

    def meaning(self, i: int, scale: float) -> Meaning | None:
        """Candidate ``i``'s place in the embedding space as its explanation reads it, for a subscriber whose
        semantic part was scaled by ``scale`` (``scoring.Chosen``); None when it adds nothing to the score."""
        if not scale or self.centred is None or not self.embedded[i]:
            return None
        return Meaning(self.embeddings[i], scale * self.centred[i])  # type: ignore[index]

    def excluded(self, words: tuple[str, ...]) -> np.ndarray:
        """Which candidates mention any of ``words`` (whole words or phrases), once per list of words."""
        if not words:
            return np.zeros(len(self), dtype=bool)
        if words not in self._excluded:
            patterns = [phrase_pattern(w) for w in words]
            self._excluded[words] = np.array(
                [any(p.search(t) for p in patterns) for t in self.texts], dtype=bool
            )
        return self._excluded[words]

    def fresh(self, since: np.datetime64 | float) -> np.ndarray:
        """Which candidates were first seen at or after ``since``."""
        return self.first_seen >= since


def _entries(matrix: sp.csr_matrix, i: int) -> tuple[np.ndarray, np.ndarray]:
    begin, end = matrix.indptr[i], matrix.indptr[i + 1]
    columns, values = matrix.indices[begin:end].astype(np.int64), matrix.data[begin:end]
    if not matrix.has_sorted_indices:
        order = np.argsort(columns, kind="stable")
        columns, values = columns[order], values[order]
    return columns, values


def corpus_window(corpus: Corpus, ids: Sequence[Hashable], first_seen: float = 0.0) -> Window:
    """A window of the given papers of an in-memory corpus (the evaluation's days)."""
    rows = corpus.rows(ids)
    matrix = corpus.matrix[rows]
    return Window(
        [corpus.ids[r] for r in rows],
        [""] * rows.size,
        np.full(rows.size, first_seen),
        matrix,
        corpus.own(rows),
        corpus.generality(matrix),
        corpus.embeddings_of([corpus.ids[r] for r in rows]),
    )


# --- the service's window, from the database ------------------------------------------------------------


def build_window(session: Session, since: dt.datetime) -> Window:
    """The papers first seen since the start of ``since``'s day (UTC), cached per process until papers
    arrive or the day changes; the papers that left the window since the last one join the background."""
    start = dt.datetime.combine(since.date(), dt.time())
    view = library_for(session)
    if age_background(view, start):
        view = library_for(session)
    # Papers stored without the ingest (by hand, or by an older version) change no statistics, and papers
    # embedded since (the embed step runs after ingest) neither: the window's newest paper, its size and the
    # papers embedded say whether it is still the one the database holds (indexed range reads).
    newest = session.execute(
        select(func.max(Paper.id), func.count(Paper.id)).where(Paper.first_seen_at >= start)
    ).one()
    embedded = embedded_since(session, start) if semantic.model_id() else 0
    key = ("window", view.library.stamp, start, tuple(newest), embedded)
    cached = view.library.windows.get(key)
    if isinstance(cached, Window):
        return cached
    window = _read_window(view, start)
    view.library.windows.clear()
    view.library.windows[key] = window
    view.library.window_start, view.library.current = start, window
    return window


def _read_window(view: LibraryView, start: dt.datetime) -> Window:
    session = view.session
    query = (
        select(
            Paper.id,
            Paper.title,
            Paper.abstract,
            Paper.first_seen_at,
            PaperTerms.counts,
            PaperTerms.neighbours,
        )
        .outerjoin(PaperTerms, PaperTerms.paper_id == Paper.id)
        .where(Paper.first_seen_at >= start)
    )
    found = session.execute(query).all()
    unindexed = [r.id for r in found if r.counts is None]
    if unindexed:  # indexed here, or meanwhile by another process: read again either way
        index_stored(session, unindexed)
        view = library_for(session)
        found = session.execute(query).all()
    found = sorted((r for r in found if r.counts is not None), key=lambda r: r.id)
    own = view.weigh(list(store.decode_counts([bytes(r.counts) for r in found])))
    rows = _smoothed(view, [r.id for r in found], [tuple(r.neighbours or ()) for r in found], own)
    return Window(
        [r.id for r in found],
        [paper_text(r.title, r.abstract) for r in found],
        np.array([r.first_seen_at for r in found], dtype="datetime64[us]"),
        rows,
        own,
        view.generality(rows),
        _embeddings(view, [r.id for r in found]),
    )


def _embeddings(view: LibraryView, ids: list[int]) -> np.ndarray | None:
    """The window's stored embeddings; None without the `semantic` extra (ranking exactly as without it)."""
    if not semantic.model_id():
        return None
    return view.embeddings_of(ids) if ids else np.zeros((0, DIMENSION), dtype=np.float32)


def _smoothed(
    view: LibraryView, ids: list[int], neighbours: list[tuple[int, ...]], own: sp.csr_matrix
) -> sp.csr_matrix:
    """The window's own rows, short papers smoothed by their neighbours (read if not in the window)."""
    if not any(neighbours):
        return own
    position = {paper: i for i, paper in enumerate(ids)}
    outside = sorted({n for near in neighbours for n in near} - set(position))
    extra = view.own_of(view.known(outside)) if outside else own[:0]
    for at, paper in enumerate(view.known(outside)):
        position[paper] = len(ids) + at
    pool = sp.vstack([own, extra], format="csr")
    found = [tuple(position[n] for n in near if n in position) for near in neighbours]
    return smoothed(own, found, pool)


def age_background(view: LibraryView, start: dt.datetime) -> bool:
    """Add the papers first seen before ``start`` and not yet in the background to it (once a day);
    True when the statistics changed. Another process doing the same at the same time wins."""
    session = view.session
    for attempt in range(3):
        until = store.background_until(session)
        if view.library.stamp is None or (until is not None and until >= start):
            return False
        try:
            with session.begin_nested():
                _age(view, until, start)
            return True
        except store.StatisticsChanged:
            if attempt == 2:
                raise
            view = library_for(session)
    return False


def _age(view: LibraryView, until: dt.datetime | None, start: dt.datetime) -> None:
    query = select(PaperTerms.paper_id).join(Paper).where(Paper.first_seen_at < start)
    if until is not None:
        query = query.where(Paper.first_seen_at >= until)
    statistics = view.statistics.copy()
    leaving = list(view.session.scalars(query))
    for at in range(0, len(leaving), AGING_CHUNK):
        statistics.add_background(view.rows_of(leaving[at : at + AGING_CHUNK], cache=False))
    stamp = store.save_statistics(view.session, statistics, view.library.stamp, background_until=start)
    view.library.adopt(statistics, (statistics.version, stamp))
