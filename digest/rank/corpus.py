"""Papers as unit-length TF-IDF rows (``digest.rank.tfidf``), short papers smoothed by their nearest papers.

Short papers borrow from their nearest papers (document expansion, as in cluster-based smoothing for
retrieval): a title alone has a dozen words, so two titles on one topic often share none, and a 👍 on one
says little about the other. A short paper's row is its own row plus a share of the mean row of its
``NEIGHBOURS`` nearest papers, made unit length again. The neighbours are found once, when the paper
arrives, among the papers that arrived with it and those still in the candidate window (so the cost is
bounded by the day's papers, not the corpus); the rows themselves are weighed under the current IDF
whenever they are used. ``own`` rows (without smoothing) are what only a paper's text may show: the words a
pick is explained by, and near-copies.

``Corpus`` holds every paper in memory: the evaluation and the tests use it. The service keeps only the
statistics and the day's papers in memory, and reads other papers' stored counts when it needs their rows
(``digest.rank.library``); both give the subscriber model (``digest.rank.model``) the same interface.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.rank.statistics import CorpusStatistics
from digest.rank.tfidf import BLOCK, N_FEATURES, term_counts
from digest.rank.vectors import row_of

NEIGHBOURS = 3
SHORT_MU = 4.0  # a paper with n word features borrows SHORT_MU / (SHORT_MU + n) of its neighbours' mean
MIN_BORROW = 0.05  # papers that would borrow less than this (an abstract's ~200 word features) are left alone
# Neighbours are found on the features at most this many papers share, and at most this share of them
# (in a small corpus, a feature a few papers have is a common one: below 600 papers none qualifies).
NEIGHBOUR_MAX_DF = 50
NEIGHBOUR_MAX_SHARE = 1 / 300
DAY = 86_400.0


def paper_text(title: str, abstract: str | None) -> str:
    return f"{title}\n{abstract}" if abstract else title


# --- smoothing ------------------------------------------------------------------------------------------


def borrowing_share(own: sp.csr_matrix) -> np.ndarray:
    """SHORT_MU / (SHORT_MU + word features) per own row, as in Dirichlet smoothing: a title alone (~12
    word features) borrows a quarter, an abstract almost nothing."""
    words = np.bincount(row_of(own)[own.indices < BLOCK], minlength=own.shape[0])
    return SHORT_MU / (SHORT_MU + words)


def nearest(
    pool: sp.csr_matrix, df: np.ndarray, papers: int, short: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row, neighbour) pairs of ``pool`` rows, sorted by row: for each row in ``short``, its
    ``NEIGHBOURS`` most similar other rows of the pool (fewer when fewer share a feature with it)."""
    row, col, value = similar_pairs(pool, df, short, papers)
    order = most_similar_first(row, value)
    row, col = row[order], col[order]
    starts = np.flatnonzero(np.diff(row, prepend=-1))  # where each row's run begins
    top = np.arange(row.size) - np.repeat(starts, np.diff(starts, append=row.size)) < NEIGHBOURS
    return row[top], col[top]


def similar_pairs(
    pool: sp.csr_matrix, df: np.ndarray, short: np.ndarray, papers: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, other row, similarity) for each row in ``short`` and each other pool row sharing a rare
    feature of a corpus of ``papers`` (the pool's size by default).

    Similarity is the dot product over the rare features (``NEIGHBOUR_MAX_DF``, ``NEIGHBOUR_MAX_SHARE``):
    a feature many papers have does not single out a neighbour, and leaving those out bounds the search
    to ``NEIGHBOUR_MAX_DF`` products per stored value.
    """
    most = min(NEIGHBOUR_MAX_DF, NEIGHBOUR_MAX_SHARE * (pool.shape[0] if papers is None else papers))
    if short.size == 0 or most < 2:  # a feature only one paper has relates it to no other
        nothing = np.zeros(0, dtype=np.int64)
        return nothing, nothing, np.zeros(0, dtype=np.float32)
    theirs = np.zeros(pool.shape[1], dtype=bool)  # only the short rows' features can make them similar
    theirs[pool[short].indices] = True
    keep = theirs[pool.indices] & (df[pool.indices] <= most)
    columns, local = np.unique(pool.indices[keep], return_inverse=True)
    rare = sp.csr_matrix((pool.data[keep], (row_of(pool)[keep], local)), shape=(pool.shape[0], columns.size))
    sims = (rare[short] @ rare.T).tocoo()
    other = sims.col != short[sims.row]  # never its own neighbour
    return short[sims.row[other]], sims.col[other], sims.data[other]


def most_similar_first(row: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The order of the pairs by row, then most similar first (``value`` within [0, 1]); stable."""
    # hand-made: np.lexsort((-value, row)) costs 6.9×, +13% of `digest eval rank` (bench_rank_pieces)
    return np.argsort(2.0 * row + (1.0 - value), kind="stable")


def smoothed(own: sp.csr_matrix, neighbours: Sequence[Sequence[int]], rows: sp.csr_matrix) -> sp.csr_matrix:
    """``own`` rows, each with a share of the mean of its ``neighbours`` (indices into ``rows``) added and
    made unit length again; rows without neighbours as they are."""
    borrowing = np.array([i for i, found in enumerate(neighbours) if found], dtype=np.int64)
    if borrowing.size == 0:
        return own
    share = borrowing_share(own[borrowing])
    at = np.concatenate(
        [np.arange(borrowing.size), np.repeat(np.arange(borrowing.size), _sizes(neighbours, borrowing))]
    )
    weights = np.concatenate(
        [
            np.ones(borrowing.size),
            np.repeat(share / _sizes(neighbours, borrowing), _sizes(neighbours, borrowing)),
        ]
    )
    sources = np.concatenate([borrowing + rows.shape[0], np.concatenate([neighbours[i] for i in borrowing])])
    stacked = sp.vstack([rows, own], format="csr")
    mix = sp.csr_matrix((weights, (at, sources)), shape=(borrowing.size, stacked.shape[0]))
    borrowed = normalize((mix @ stacked).tocsr(), copy=False).astype(np.float32)
    borrowed.sort_indices()
    return _replaced(own, borrowing, borrowed)


def _sizes(neighbours: Sequence[Sequence[int]], at: np.ndarray) -> np.ndarray:
    return np.array([len(neighbours[i]) for i in at], dtype=np.int64)


def _replaced(matrix: sp.csr_matrix, at: np.ndarray, rows: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with its rows ``at`` replaced by ``rows`` (a new matrix)."""
    order = np.arange(matrix.shape[0])
    order[at] = matrix.shape[0] + np.arange(at.size)
    return sp.vstack([matrix, rows], format="csr")[order]


# --- the in-memory corpus -------------------------------------------------------------------------------


class Corpus:
    """Every paper in memory: term counts, when it was first seen, the neighbours a short paper borrows
    from, and the statistics they add up to; rows are weighed again, lazily, when papers arrive."""

    def __init__(self, background_age: float = 7.0) -> None:
        self.ids: list[Hashable] = []
        self.seen = np.zeros(0, dtype=np.float64)  # first seen, in days, per row
        self.background_age = background_age
        self.index: dict[Hashable, int] = {}
        self.statistics = CorpusStatistics()
        self._counts: list[sp.csr_matrix] = []
        self._neighbours: list[tuple[int, ...]] = []  # row numbers a short paper borrows from
        self._aged = np.zeros(0, dtype=bool)  # per row: already in the background
        self._matrix: sp.csr_matrix | None = None
        self._plain: sp.csr_matrix | None = None
        # Derived values shared by every subscriber, by corpus version (``digest.rank.expansion``).
        self.memo: dict[Hashable, object] = {}
        self._matches: dict[tuple[str, ...], tuple[list[Hashable], int]] = {}
        self._embeddings: np.ndarray | None = None  # per row, zeros until ``embed`` gives one

    @classmethod
    def from_texts(
        cls, ids: Sequence[Hashable], texts: Sequence[str], seen: Sequence[float] | float | None = None
    ) -> Corpus:
        corpus = cls()
        corpus.extend(ids, texts, seen)
        return corpus

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def version(self) -> int:
        return self.statistics.version

    @property
    def df(self) -> np.ndarray:
        return self.statistics.terms.df

    @property
    def idf(self) -> np.ndarray:
        return self.statistics.terms.idf

    def extend(
        self, ids: Sequence[Hashable], texts: Sequence[str], seen: Sequence[float] | float | None = None
    ) -> None:
        """Add papers (ids already present are skipped): count them, find the short ones' neighbours, add
        their rows to the corpus mean. ``seen``: when each paper (or the whole batch) was first seen, in
        days on any fixed scale; now if omitted."""
        when = np.broadcast_to(
            np.asarray(time.time() / DAY if seen is None else seen, dtype=np.float64), len(ids)
        )
        fresh = [(i, t, w) for i, t, w in zip(ids, texts, when, strict=True) if i not in self.index]
        if not fresh:
            return
        counts = term_counts([t for _, t, _ in fresh])
        start = len(self.ids)
        for paper_id, _, _ in fresh:
            self.index[paper_id] = len(self.ids)
            self.ids.append(paper_id)
        self.seen = np.concatenate([self.seen, [w for _, _, w in fresh]])
        self._counts.append(counts)
        self.statistics.count(counts)
        self._matrix = self._plain = None
        self.memo = {}
        self._neighbours += self._find_neighbours(start)
        self.statistics.add_rows(self.matrix[start:])

    def _find_neighbours(self, start: int) -> list[tuple[int, ...]]:
        """The neighbours of the papers from ``start`` on, among them and the papers still in the window."""
        pool = np.flatnonzero(self.seen >= self.seen[start:].max() - self.background_age)
        plain = self._plain_rows()
        share = borrowing_share(plain[start:])
        short = np.searchsorted(pool, start + np.flatnonzero(share >= MIN_BORROW))
        row, found = nearest(plain[pool], self.df, len(self), short)
        neighbours: list[list[int]] = [[] for _ in range(len(self) - start)]
        for r, f in zip(pool[row], pool[found], strict=True):
            neighbours[r - start].append(int(f))
        return [tuple(n) for n in neighbours]

    def embed(self, ids: Sequence[Hashable], vectors: np.ndarray) -> None:
        """Give papers their sentence embeddings (as the service's embed step does after ingest)."""
        if self._embeddings is None:
            self._embeddings = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        grown = np.zeros((len(self), self._embeddings.shape[1]), dtype=np.float32)
        grown[: self._embeddings.shape[0]] = self._embeddings
        rows = self.rows(ids)
        grown[rows] = vectors[[i for i, paper in enumerate(ids) if paper in self.index]]
        self._embeddings = grown

    def set_background_age(self, days: float) -> None:
        """Papers this many days older than the newest are background; a change derives models again."""
        if days != self.background_age:
            self.background_age = days
            self._aged = np.zeros(0, dtype=bool)
            self.statistics.reset_background()
            self.memo = {}

    def background_mean(self) -> np.ndarray | None:
        """The mean row of the papers first seen ``background_age`` days or more before the newest one
        (dense, float32), or None while there are none. Papers join it once, weighed when they do."""
        if len(self):
            aged = np.concatenate([self._aged, np.zeros(len(self) - self._aged.size, dtype=bool)])
            joining = np.flatnonzero((self.seen <= self.seen.max() - self.background_age) & ~aged)
            if joining.size:
                self.statistics.add_background(self.matrix[joining])
                aged[joining] = True
            self._aged = aged
        return self.statistics.background_mean()

    @property
    def matrix(self) -> sp.csr_matrix:
        """Every paper's row in ``ids`` order under the current IDF, short papers smoothed."""
        if self._matrix is None:
            self._matrix = smoothed(self._plain_rows(), self._neighbours_padded(), self._plain_rows())
        return self._matrix

    def _neighbours_padded(self) -> list[tuple[int, ...]]:
        return self._neighbours + [()] * (len(self) - len(self._neighbours))

    def _plain_rows(self) -> sp.csr_matrix:
        if self._plain is None:
            self._plain = self.statistics.terms.weigh(self._all_counts())
        return self._plain

    def own(self, rows: Sequence[int] | np.ndarray) -> sp.csr_matrix:
        """The given papers' own rows (``matrix`` before smoothing)."""
        return self._plain_rows()[np.asarray(rows, dtype=np.int64)]

    def _all_counts(self) -> sp.csr_matrix:
        """Every paper's term counts, in ``ids`` order (the batches added so far joined into one)."""
        if len(self._counts) > 1:
            self._counts = [sp.vstack(self._counts, format="csr")]
        return self._counts[0] if self._counts else sp.csr_matrix((0, N_FEATURES), dtype=np.float32)

    def generality(self, rows: sp.csr_matrix) -> np.ndarray:
        """Cosine of each row to the corpus mean (``CorpusStatistics.generality``)."""
        return self.statistics.generality(rows)

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Texts that are not (necessarily) papers, e.g. keyword phrases, weighted like the corpus."""
        return self.statistics.terms.weigh(term_counts(texts))

    def rows(self, ids: Iterable[Hashable]) -> np.ndarray:
        """Row numbers of the given ids, skipping unknown ones."""
        return np.array([self.index[i] for i in ids if i in self.index], dtype=np.int64)

    # --- what the subscriber model asks of any corpus (``digest.rank.source.PaperSource``) ---------------
    @property
    def identity(self) -> Hashable:
        return id(self)

    def known(self, ids: Iterable[Hashable]) -> list[Hashable]:
        return [i for i in ids if i in self.index]

    def rows_of(self, ids: Sequence[Hashable]) -> sp.csr_matrix:
        return self.matrix[self.rows(ids)]

    def own_of(self, ids: Sequence[Hashable]) -> sp.csr_matrix:
        return self.own(self.rows(ids))

    def embeddings_of(self, ids: Sequence[Hashable]) -> np.ndarray | None:
        if self._embeddings is None:
            return None
        rows = np.array([self.index.get(i, -1) for i in ids], dtype=np.int64)
        found = np.zeros((rows.size, self._embeddings.shape[1]), dtype=np.float32)
        inside = (rows >= 0) & (rows < self._embeddings.shape[0])  # not unknown, nor added since ``embed``
        found[inside] = self._embeddings[rows[inside]]
        return found

    def newer_than(self, marker: int) -> tuple[list[Hashable], int]:
        """The papers added after ``marker`` (a count of papers), and the marker now."""
        return self.ids[marker:], len(self.ids)

    def matches(self, keywords: tuple[str, ...]) -> tuple[list[Hashable], int] | None:
        return self._matches.get(keywords)

    def keep_matches(self, keywords: tuple[str, ...], papers: list[Hashable], marker: int) -> None:
        self._matches[keywords] = (papers, marker)
