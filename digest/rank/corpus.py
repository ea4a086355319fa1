"""All known papers as unit-length TF-IDF rows (``digest.rank.tfidf``), short papers smoothed by their
nearest papers, and when each paper was first seen.

Short papers borrow from their nearest papers (``smoothed``, document expansion as in cluster-based
smoothing for retrieval): a title alone has a dozen words, so two titles on one topic often share none,
and a 👍 on one says little about the other. ``Corpus.own`` gives a paper's own row, for what only its
text may show: the words a pick is explained by, and near-copies.

Papers first seen ``background_age`` days or more before the newest are no longer anybody's candidates;
their mean row (``Corpus.background_mean``) is what a subscriber's classifier holds on the 👎 side.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.rank.tfidf import BLOCK, N_FEATURES, TermStatistics, term_counts
from digest.rank.vectors import row_of

# A short paper borrows from its nearest papers (``smoothed``).
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


def smoothed(plain: sp.csr_matrix, df: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """``plain`` with each short paper's row plus a share of the mean row of its ``NEIGHBOURS`` nearest
    papers, made unit length again, the other rows as they are (``plain`` itself when no paper borrows
    anything); and the rows that borrowed, sorted.

    The share is SHORT_MU / (SHORT_MU + the paper's word features), as in Dirichlet smoothing: a title
    alone (~12 word features) borrows a quarter, an abstract almost nothing, so papers that would borrow
    less than ``MIN_BORROW`` are not even searched.
    """
    n = plain.shape[0]
    share = SHORT_MU / (SHORT_MU + np.bincount(row_of(plain)[plain.indices < BLOCK], minlength=n))
    short = np.flatnonzero(share >= MIN_BORROW)
    row, neighbour = _nearest(plain, df, short)
    if row.size == 0:
        return plain, row
    short = np.unique(row)  # the short papers that found a neighbour
    weight = share[row] / np.bincount(row, minlength=n)[row]  # their share of the neighbours' mean
    borrowed = normalize((_mix(short, row, neighbour, weight, n) @ plain).tocsr(), copy=False)
    borrowed = borrowed.astype(np.float32)
    borrowed.sort_indices()
    return _replaced(plain, short, borrowed), short


def _mix(
    short: np.ndarray, row: np.ndarray, neighbour: np.ndarray, weight: np.ndarray, n: int
) -> sp.csr_matrix:
    """One row per short paper (``short``, sorted) over the ``n`` papers: 1 on the paper itself, ``weight``
    on each of its neighbours (``row`` → ``neighbour`` pairs)."""
    at = np.concatenate([np.arange(short.size), np.searchsorted(short, row)])
    values = np.concatenate([np.ones(short.size), weight])
    return sp.csr_matrix((values, (at, np.concatenate([short, neighbour]))), shape=(short.size, n))


def _nearest(plain: sp.csr_matrix, df: np.ndarray, short: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, neighbour) pairs, sorted by row: for each row in ``short``, its ``NEIGHBOURS`` most similar
    other rows (fewer when fewer share a feature with it)."""
    row, col, value = similar_pairs(plain, df, short)
    order = most_similar_first(row, value)
    row, col = row[order], col[order]
    starts = np.flatnonzero(np.diff(row, prepend=-1))  # where each row's run begins
    top = np.arange(row.size) - np.repeat(starts, np.diff(starts, append=row.size)) < NEIGHBOURS
    return row[top], col[top]


def similar_pairs(
    plain: sp.csr_matrix, df: np.ndarray, short: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, other row, similarity) for each row in ``short`` and each other row sharing a rare feature.

    Similarity is the dot product over the rare features (``NEIGHBOUR_MAX_DF``, ``NEIGHBOUR_MAX_SHARE``):
    a feature many papers have does not single out a neighbour, and leaving those out bounds the search
    to ``NEIGHBOUR_MAX_DF`` products per stored value.
    """
    most = min(NEIGHBOUR_MAX_DF, NEIGHBOUR_MAX_SHARE * plain.shape[0])
    if short.size == 0 or most < 2:  # a feature only one paper has relates it to no other
        nothing = np.zeros(0, dtype=np.int64)
        return nothing, nothing, np.zeros(0, dtype=np.float32)
    theirs = np.zeros(plain.shape[1], dtype=bool)  # only the short rows' features can make them similar
    theirs[plain[short].indices] = True
    keep = theirs[plain.indices] & (df[plain.indices] <= most)
    columns, local = np.unique(plain.indices[keep], return_inverse=True)
    rare = sp.csr_matrix(
        (plain.data[keep], (row_of(plain)[keep], local)), shape=(plain.shape[0], columns.size)
    )
    sims = (rare[short] @ rare.T).tocoo()
    other = sims.col != short[sims.row]  # never its own neighbour
    return short[sims.row[other]], sims.col[other], sims.data[other]


def most_similar_first(row: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The order of the pairs by row, then most similar first (``value`` within [0, 1]); stable."""
    # hand-made: np.lexsort((-value, row)) costs 6.9×, +13% of `digest eval rank` (bench_rank_pieces)
    return np.argsort(2.0 * row + (1.0 - value), kind="stable")


def _replaced(matrix: sp.csr_matrix, at: np.ndarray, rows: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with its rows ``at`` replaced by ``rows`` (a new matrix)."""
    order = np.arange(matrix.shape[0])
    order[at] = matrix.shape[0] + np.arange(at.size)
    return sp.vstack([matrix, rows], format="csr")[order]


class Corpus:
    """All known papers as unit-length TF-IDF rows; ``extend`` adds papers without refitting anything.

    It keeps every paper's term counts and the ``statistics`` they add up to; the rows are weighed again
    from the counts, lazily, whenever papers arrive (new papers move the IDF).
    """

    def __init__(self, background_age: float = 7.0) -> None:
        self.ids: list[Hashable] = []
        self.seen = np.zeros(0, dtype=np.float64)  # first seen, in days, per row
        self.background_age = background_age
        self.index: dict[Hashable, int] = {}
        self._counts: list[sp.csr_matrix] = []
        self.statistics = TermStatistics()
        self.version = 0
        self._matrix: sp.csr_matrix | None = None
        self._borrowed = np.zeros(0, dtype=np.int64)  # rows of ``matrix`` smoothed by their neighbours
        self._mean: sp.csr_matrix | None = None
        self._mean_dense: np.ndarray | None = None
        # Per-version memo for derived values shared by every subscriber (e.g. keyword expansions).
        self.memo: dict[Hashable, object] = {}

    @classmethod
    def from_texts(
        cls, ids: Sequence[Hashable], texts: Sequence[str], seen: Sequence[float] | float | None = None
    ) -> Corpus:
        corpus = cls()
        corpus.extend(ids, texts, seen)
        return corpus

    def __len__(self) -> int:
        return len(self.ids)

    def extend(
        self, ids: Sequence[Hashable], texts: Sequence[str], seen: Sequence[float] | float | None = None
    ) -> None:
        """Add papers (ids already present are skipped); IDF and rows are recomputed lazily.

        ``seen``: when each paper (or the whole batch) was first seen, in days on any fixed scale; now if
        omitted.
        """
        when = np.broadcast_to(
            np.asarray(time.time() / DAY if seen is None else seen, dtype=np.float64), len(ids)
        )
        fresh = [(i, t, w) for i, t, w in zip(ids, texts, when, strict=True) if i not in self.index]
        if not fresh:
            return
        self.seen = np.concatenate([self.seen, [w for _, _, w in fresh]])
        counts = term_counts([t for _, t, _ in fresh])
        for paper_id, _, _ in fresh:
            self.index[paper_id] = len(self.ids)
            self.ids.append(paper_id)
        self._counts.append(counts)
        self.statistics.add(counts)
        self.version += 1
        self._matrix = self._mean = self._mean_dense = None
        self.memo = {}

    def set_background_age(self, days: float) -> None:
        """Papers this many days older than the newest are background; a change derives models again."""
        if days != self.background_age:
            self.background_age = days
            self.version += 1
            self.memo = {}

    def background_mean(self) -> np.ndarray | None:
        """The mean row (dense, float32) of the papers first seen ``background_age`` days or more before the
        newest one, or None while there are none; computed once per corpus version, for every subscriber."""
        cached = self.memo.get(("background mean",))  # read once: ``extend`` may replace the memo meanwhile
        if cached is None:
            old = self.seen <= self.seen.max() - self.background_age if len(self) else np.zeros(0, dtype=bool)
            # matrix.T @ vector is a CSC mat-vec over the stored rows: no copy of them.
            share = (old / max(int(old.sum()), 1)).astype(np.float32)
            cached = self.memo[("background mean",)] = self.matrix.T @ share if old.any() else False
        return None if cached is False else cached  # type: ignore[return-value]

    @property
    def df(self) -> np.ndarray:
        """Papers per column (``TermStatistics.df``)."""
        return self.statistics.df

    @property
    def idf(self) -> np.ndarray:
        """IDF per column (``TermStatistics.idf``)."""
        return self.statistics.idf

    @property
    def matrix(self) -> sp.csr_matrix:
        """The rows relevance is computed on, in ``ids`` order, under the current IDF: each paper's own
        unit-length TF-IDF row, a short paper's smoothed by its nearest papers (``smoothed``)."""
        if self._matrix is None:
            self._matrix, self._borrowed = smoothed(self.statistics.weigh(self._all_counts()), self.df)
        return self._matrix

    def own(self, rows: Sequence[int] | np.ndarray) -> sp.csr_matrix:
        """The given papers' own rows (``matrix`` before smoothing): what a paper's text itself says, for
        the words a pick is explained by and for near-copies. The rows that borrowed are weighed again
        from the stored counts, so the corpus holds no second copy of its rows."""
        rows = np.asarray(rows, dtype=np.int64)
        own = self.matrix[rows]
        borrowed = np.flatnonzero(np.isin(rows, self._borrowed))
        if borrowed.size == 0:
            return own
        return _replaced(own, borrowed, self.statistics.weigh(self._all_counts()[rows[borrowed]]))

    def _all_counts(self) -> sp.csr_matrix:
        """Every paper's term counts, in ``ids`` order (the batches added so far joined into one)."""
        if len(self._counts) > 1:
            self._counts = [sp.vstack(self._counts, format="csr")]
        return self._counts[0] if self._counts else sp.csr_matrix((0, N_FEATURES), dtype=np.float32)

    @property
    def mean(self) -> sp.csr_matrix:
        """The unit-length mean row: the direction every paper shares ("a paper"), not any topic."""
        if self._mean is None:
            matrix = self.matrix
            sums = np.asarray(matrix.sum(axis=0)).ravel()
            norm = float(np.linalg.norm(sums))
            columns = np.flatnonzero(sums)
            values = (sums[columns] / norm if norm else sums[columns]).astype(np.float32)
            self._mean = sp.csr_matrix((values, columns, [0, columns.size]), shape=(1, N_FEATURES))
        return self._mean

    def generality(self, rows: sp.csr_matrix) -> np.ndarray:
        """Cosine of each row to ``mean``: how much a paper looks like any paper rather than a topic."""
        if self._mean_dense is None:
            self._mean_dense = np.asarray(self.mean.toarray()).ravel()
        return np.asarray(rows @ self._mean_dense).ravel()

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Texts that are not (necessarily) papers, e.g. keyword phrases, weighted like the corpus."""
        return self.statistics.weigh(term_counts(texts))

    def rows(self, ids: Iterable[Hashable]) -> np.ndarray:
        """Row numbers of the given ids, skipping unknown ones."""
        return np.array([self.index[i] for i in ids if i in self.index], dtype=np.int64)
