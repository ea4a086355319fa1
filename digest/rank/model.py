"""The subscriber's relevance model: keyword query expanded through the corpus, Rocchio on 👍/👎, and a
logistic regression on 👍 vs 👎 once there are enough ratings.

A profile is the subscriber's keywords and the latest rating per paper; everything else is derived from
them in the corpus' hashed TF-IDF space (``digest.rank.corpus``) whenever the corpus changes, so the model
is always expressed under the current IDF and survives a restart as plain JSON. Score of a paper row x:

    score(x) = w · x − PRIOR · [no 👎 yet] · cos(x, corpus mean)
    w = KEYWORD · expand(keywords)
        + LIKED · unit(mean(👍 rows) ** LIKED_POWER)
        − DISLIKED · unit(mean(👎 rows))
        + CLASSIFIER · unit(logistic regression 👍 vs 👎, and vs the mean older paper)
                                                   (≥ CLASSIFIER_MIN_RATINGS ratings, both kinds)

Why each part (all measured on the dev files; README "Ranking model" has the table):

* ``expand`` is pseudo-relevance feedback: the keywords' own vector (words, the phrase as a bigram, and
  character 4-grams) plus the centroid of the corpus papers that match it best, so a subscriber who typed
  only "Sound" also gets papers about speech and audio that never use the word.
* Unit-length centroids: a 👍 centroid of diverse papers is short, and would otherwise never outweigh the
  keywords however many papers the subscriber liked. ``LIKED_POWER`` < 1 flattens the 👍 centroid before
  it is normalised, so a term shared by a few of the liked papers is not drowned by the terms shared by
  most of them: a library with several interests keeps all of them (CiteULike recall@100 .541 → .555;
  on the arXiv replay, whose subscribers have one interest each, it is neutral within noise).
* The corpus mean stands in for 👎 until there is a real one: subtracting it removes the direction every
  paper shares, so generic papers stop winning on common vocabulary (CiteULike recall@100 .477 → .499
  with words alone, .491 → .535 with words + characters).
  It is applied as a per-paper scalar (``Corpus.generality``), never added to the sparse weight vector.
* Explicit 👎 are real negatives; unrated papers are never treated as negatives (a paper nobody rated may
  simply not have been seen), unlike arxiv-sanity-lite's SVM (which ranks below this model on both files).
* The classifier (Scholar Inbox style) separates what this subscriber liked from what they rejected among
  the papers they were actually shown, which the centroids cannot do when both sides share a topic. It is
  fitted on the latest ``CLASSIFIER_MAX_RATINGS`` rated rows (tastes drift, and it bounds a click's
  cost), 👍 and 👎 weighing half each, and its coefficients are one more sparse direction in w (replay
  hit@10 ≈ .60 → .65).
* The mean of the older papers (``Corpus.background_mean``, never a current candidate) joins the
  classifier as one 👎 row weighing ``BACKGROUND_SHARE`` times all the ratings together. Every rated paper
  was shown because the model already ranked it high, so on the ratings alone a term that every paper
  has, but that the 👍 happen to share, looks like a reason to like. With that row the fit holds an
  average paper firmly on the 👎 side (its intercept settles far below zero), so a 👍 has to score well
  above an average paper on the classifier's terms: it learns what sets the 👍 apart from any paper, not
  only from the 👎, without densifying a single row. It replaced a sample of 500 older papers as weak 👎
  (replay hit@10 .666 → .682, and .639 → .648 on a second set of 20 simulated subscribers; README
  "Ranking model"); any share from 30 to 1,000 gives the same within noise.
* The fit is solved in kernel form (``_classifier``): the problem liblinear states (L2, the intercept a
  penalised constant feature), but over the rows' dot products, which a click grows by one row, instead
  of over their ~300,000 non-zeros, which liblinear's dual solver walked ~20 times per click at 300
  ratings (the heavy background row slows it). It reaches the converged optimum, which liblinear capped
  at 20 passes only approached; the replay figures are the same (README "Ranking model").

Updating at once (``Profile.parts``, ``_Rated``): the derived model keeps the rated rows in a compact column
space (only the columns the keyword vector and the rated papers use, a few tens of thousands of the 2**21).
A 👍/👎 after the model was derived appends that paper's row (its new columns inserted, no sort of the
stored rows), adds it to the centroids' running sums, computes its dot products with the classifier's
rows (one mat-vec) and refits the classifier on those dot products and the older papers' mean (kept at
the same columns); README, "Ranking model", has the cost. A new corpus version (new papers, hence a new
IDF) or new keywords derive everything again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
import scipy.special
from sklearn.feature_extraction import FeatureHasher
from threadpoolctl import ThreadpoolController

from digest.rank.corpus import ANALYZER, BLOCK, N_FEATURES, Corpus, phrase_pattern, row_of, sparse_dot

STATE_FORMAT = 1
# Chosen by measurement on the dev replay and CiteULike files (README, "Ranking model").
KEYWORD_WEIGHT = 1.0
KEYWORD_HALF_LIFE = 0  # 👍 count at which the keywords weigh half; 0 = they never fade
LIKED_WEIGHT = 1.0
LIKED_POWER = 0.7
DISLIKED_WEIGHT = 1.0
PRIOR_WEIGHT = 0.75  # the corpus mean, subtracted while there is no 👎 yet
CLASSIFIER_WEIGHT = 3.0
CLASSIFIER_MIN_RATINGS = 10
CLASSIFIER_C = 1.0
CLASSIFIER_MAX_ITER = 500  # L-BFGS iterations (about 20 are used at 300 ratings)
CLASSIFIER_MAX_RATINGS = 1000  # the classifier learns from the papers most recently rated (first time)
SCORE_CHUNK = 64  # profiles scored together by ``score_many``
GRAM_DENSE_MIN = 32  # columns in at least this many rated rows are multiplied densely (``_gram``)
BACKGROUND_SHARE = 100.0  # the older papers' mean row, weighing this many times all the ratings together
EXPANSION_DOCS = 10
EXPANSION_WEIGHT = 0.5
EXPANSION_RELATIVE = 0.5  # expansion papers must score at least this fraction of the best match

_HASHER = FeatureHasher(n_features=BLOCK, input_type="string", alternate_sign=False)


def _empty() -> sp.csr_matrix:
    return sp.csr_matrix((1, N_FEATURES), dtype=np.float32)


def _row_mean(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Mean of the rows as a 1 x N_FEATURES row, summing only the columns that occur (fast at 2**21)."""
    return _sparse_row(matrix.indices, matrix.data, matrix.shape[0])


def _sparse_row(columns: np.ndarray, values: np.ndarray, divisor: float = 1.0) -> sp.csr_matrix:
    unique, inverse = np.unique(columns, return_inverse=True)
    sums = (np.bincount(inverse, weights=values, minlength=unique.size) / divisor).astype(np.float32)
    return sp.csr_matrix((sums, unique, np.array([0, unique.size])), shape=(1, N_FEATURES))


def _unit(row: sp.csr_matrix) -> sp.csr_matrix:
    norm = float(np.sqrt(np.dot(row.data, row.data)))
    return row if norm == 0 else sp.csr_matrix((row.data / norm, row.indices, row.indptr), shape=row.shape)


def _combine(terms: list[tuple[float, sp.csr_matrix]]) -> sp.csr_matrix:
    """Σ coefficient · row, for 1 x N_FEATURES rows."""
    kept = [(c, r) for c, r in terms if c != 0 and r.nnz]
    if not kept:
        return _empty()
    columns = np.concatenate([r.indices for _, r in kept])
    values = np.concatenate([c * r.data for c, r in kept])
    return _sparse_row(columns, values)


def _dot(a: sp.csr_matrix, b: sp.csr_matrix) -> float:
    return float(sparse_dot(a, b)[0]) if a.shape[0] == 1 else float(sparse_dot(b, a)[0])


class Parts:
    """The weight vector's components, kept apart so an explanation can say which one drove a score.

    Held as dense vectors over the few columns the keywords and the rated papers use (``dense_weights``
    is what scoring needs, over ``columns``); the sparse rows only when scoring, an explanation or a test
    asks.
    """

    def __init__(
        self,
        columns: np.ndarray,
        keywords: np.ndarray,
        liked: np.ndarray,
        disliked: np.ndarray,
        classifier: np.ndarray,
        liked_rows: np.ndarray,
        n_disliked: int,
    ) -> None:
        self.columns = columns
        self.liked_rows = liked_rows
        self.prior = 0.0 if n_disliked else PRIOR_WEIGHT  # the corpus-mean penalty, until a 👎
        learned = LIKED_WEIGHT * liked + CLASSIFIER_WEIGHT * classifier
        weights = self.keyword_weight * keywords + learned - DISLIKED_WEIGHT * disliked
        self.dense_weights = weights.astype(np.float32)
        # Kept for the explanation as float32 (a profile may sit in a per-process cache).
        self._keywords = keywords  # shared with the ``_Rated`` it came from
        self._liked, self._disliked, self._classifier = (
            v.astype(np.float32) for v in (liked, disliked, classifier)
        )

    @property
    def keyword_weight(self) -> float:
        return _keyword_weight(self.liked_rows.size)

    @cached_property
    def weights(self) -> sp.csr_matrix:
        """The weight vector, a 1 x N_FEATURES row."""
        return self._sparse(self.dense_weights)

    @cached_property
    def keywords(self) -> sp.csr_matrix:
        return self._sparse(self._keywords)

    @cached_property
    def liked(self) -> sp.csr_matrix:
        """Unit length, already flattened by LIKED_POWER."""
        return self._sparse(self._liked)

    @cached_property
    def disliked(self) -> sp.csr_matrix:
        return self._sparse(self._disliked)

    @cached_property
    def classifier(self) -> sp.csr_matrix:
        """Unit length; empty until there are enough ratings of both kinds."""
        return self._sparse(self._classifier)

    @cached_property
    def learned(self) -> sp.csr_matrix:
        """What the ratings add that pulls papers up: the 👍 centroid and the classifier."""
        return self._sparse(LIKED_WEIGHT * self._liked + CLASSIFIER_WEIGHT * self._classifier)

    def _sparse(self, dense: np.ndarray) -> sp.csr_matrix:
        at = np.flatnonzero(dense)
        return sp.csr_matrix(
            (dense[at].astype(np.float32), self.columns[at], np.array([0, at.size])), shape=(1, N_FEATURES)
        )


def _keyword_weight(n_liked: int) -> float:
    return KEYWORD_WEIGHT / (1.0 + n_liked / KEYWORD_HALF_LIFE) if KEYWORD_HALF_LIFE else KEYWORD_WEIGHT


@dataclass(frozen=True)
class _Rated:
    """The rated papers under one corpus version in a compact column space, ready for an update.

    ``columns`` (sorted) are the columns the keyword vector and the rated rows use; ``matrix`` holds the
    rated rows (in rating order) over those columns only, so the centroids' sums and the classifier's
    dot products are kept up to date without touching 2**21-sized arrays. A new rating appends its row
    and inserts its new columns (no sort of the stored rows), so a click never re-derives the profile.
    Never mutated:
    an update builds a new one, so a cached profile can be shared (``Profile.copy``).
    """

    key: tuple
    ids: tuple
    rows: np.ndarray  # corpus row of each rated paper
    labels: np.ndarray  # +1 / -1 per rated paper
    columns: np.ndarray
    matrix: sp.csr_matrix
    keywords: np.ndarray  # the expanded keyword vector over ``columns``
    sums: np.ndarray  # Σ 👍 rows then Σ 👎 rows over ``columns`` (2 × len(columns)), kept up to date
    # What only the classifier needs, None until it trains (``trains_classifier``): the dot products among
    # its rows (the last ``CLASSIFIER_MAX_RATINGS``) and the older papers' mean at ``columns``.
    gram: np.ndarray | None
    background: np.ndarray | None

    @classmethod
    def build(cls, corpus: Corpus, keywords: list[str], labels: Mapping[Hashable, int]) -> _Rated:
        ids = tuple(i for i in labels if i in corpus.index)
        rows = corpus.rows(ids)
        indptr, indices, data = _gathered(corpus.matrix, rows)
        query = expand_keywords(corpus, keywords) if keywords else None
        columns, local = corpus.distinct(
            indices if query is None else np.concatenate([indices, query.indices])
        )
        matrix = sp.csr_matrix((data, local[: indices.size], indptr), shape=(rows.size, columns.size))
        dense = np.zeros(columns.size, dtype=np.float64)
        if query is not None:
            dense[local[indices.size :]] = query.data
        values = np.array([labels[i] for i in ids], dtype=np.float64)
        sums = _side_sums(matrix, values, columns.size)
        rated = cls((id(corpus), corpus.version), ids, rows, values, columns, matrix, dense, sums, None, None)
        return rated.with_classifier_inputs(corpus)

    def updated(self, corpus: Corpus, labels: Mapping[Hashable, int], changed: Iterable[Hashable]) -> _Rated:
        """The same with the ratings of the ``changed`` papers added or replaced."""
        ids, rows, columns, matrix = list(self.ids), self.rows, self.columns, self.matrix
        keywords, background, values = self.keywords, self.background, self.labels.copy()
        position = {paper: i for i, paper in enumerate(ids)}
        fresh, flipped = [], []
        for paper in dict.fromkeys(changed):
            if paper in position:
                if values[position[paper]] != labels[paper]:  # not when flipped and flipped back
                    flipped.append(position[paper])
                    values[position[paper]] = labels[paper]
            elif paper in corpus.index:
                fresh.append(paper)
        sums = _flipped(self.sums, matrix, values, np.array(flipped, dtype=np.int64))
        if not fresh:  # changed labels only: the rows, hence the dot products, are the same
            same = _Rated(
                self.key, self.ids, rows, values, columns, matrix, keywords, sums, self.gram, background
            )
            return same.with_classifier_inputs(corpus)
        new_rows = corpus.rows(fresh)
        sub = corpus.matrix[new_rows]
        at = np.minimum(np.searchsorted(columns, sub.indices), max(columns.size - 1, 0))
        known = columns[at] == sub.indices if columns.size else np.zeros(sub.nnz, dtype=bool)
        added = np.unique(sub.indices[~known])
        if added.size:  # insert the new columns: a stored column moves up by the count inserted before it
            moved = (np.arange(columns.size) + np.searchsorted(added, columns)).astype(np.int32)
            columns = np.insert(columns, np.searchsorted(columns, added), added)
            matrix = sp.csr_matrix(
                (matrix.data, moved[matrix.indices], matrix.indptr),
                shape=(matrix.shape[0], columns.size),
            )
            keywords = _grown(keywords, moved, columns.size)
            sums = _grown(sums, moved, columns.size)
            if background is not None:  # the mean at the new columns read from the corpus' memo
                background = _grown(background, moved, columns.size)
                background[np.searchsorted(columns, added)] = _background(corpus, added)
        matrix = sp.csr_matrix(
            (
                np.concatenate([matrix.data, sub.data]),
                np.concatenate([matrix.indices, np.searchsorted(columns, sub.indices).astype(np.int32)]),
                np.concatenate([matrix.indptr, matrix.indptr[-1] + sub.indptr[1:]]),
            ),
            shape=(matrix.shape[0] + len(fresh), columns.size),
        )
        added_values = np.array([float(labels[p]) for p in fresh])
        sums = sums + _side_sums(matrix[-len(fresh) :], added_values, columns.size)
        values = np.concatenate([values, added_values])
        rows = np.concatenate([rows, new_rows])
        gram = None if self.gram is None else _grown_gram(self.gram, _recent(matrix), len(fresh))
        ids = tuple(ids + fresh)
        grown = _Rated(self.key, ids, rows, values, columns, matrix, keywords, sums, gram, background)
        return grown.with_classifier_inputs(corpus)

    def with_classifier_inputs(self, corpus: Corpus) -> _Rated:
        """Itself, with ``gram`` and ``background`` computed once the classifier trains (a subscriber
        with 👍 only, like every CiteULike case, never pays for them)."""
        if self.gram is not None or not self.trains_classifier:
            return self
        gram, background = _gram(_recent(self.matrix)), _background(corpus, self.columns)
        return dataclasses.replace(self, gram=gram, background=background)

    @property
    def trains_classifier(self) -> bool:
        """Enough of the classifier's ratings (the latest ``CLASSIFIER_MAX_RATINGS``), of both kinds."""
        recent = self.labels[-CLASSIFIER_MAX_RATINGS:]
        return bool((recent > 0).any() and (recent < 0).any() and recent.size >= CLASSIFIER_MIN_RATINGS)

    def parts(self, corpus: Corpus) -> Parts:
        liked, disliked = self.labels > 0, self.labels < 0
        size, matrix = self.columns.size, self.matrix
        liked_dense = _unit_dense(_flattened(self.sums[0] / max(int(liked.sum()), 1)))
        disliked_dense = _unit_dense(self.sums[1] / max(int(disliked.sum()), 1))
        classifier = (
            _unit_dense(
                _classifier(self.gram, _recent(matrix), liked[-CLASSIFIER_MAX_RATINGS:], self.background)
            )
            if self.gram is not None and self.trains_classifier
            else np.zeros(size, dtype=np.float64)
        )
        return Parts(
            self.columns,
            self.keywords,
            liked_dense,
            disliked_dense,
            classifier,
            self.rows[liked],
            int(disliked.sum()),
        )


def _gathered(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """indptr, indices and data of ``matrix[rows]``, without building the matrix (a cold derivation per
    subscriber: scipy's indexing costs more in its checks than in copying a few hundred rows)."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
    return indptr, matrix.indices[take], matrix.data[take]


def _background(corpus: Corpus, columns: np.ndarray) -> np.ndarray | None:
    """The older papers' mean row at ``columns`` only (None while there are no older papers): the
    classifier's weights live on the rated papers' terms, the mean only tells it which of those terms an
    average paper has."""
    mean = corpus.background_mean()
    return None if mean is None else mean[columns].astype(np.float64)


def _flattened(mean: np.ndarray) -> np.ndarray:
    """``mean ** LIKED_POWER``, computed on the non-zero entries only (a fractional power is slow, and
    most columns belong to the keywords or the 👎 rows)."""
    flat = np.zeros_like(mean)
    at = np.flatnonzero(mean)
    flat[at] = np.power(mean[at], LIKED_POWER)
    return flat


def _side_sums(matrix: sp.csr_matrix, labels: np.ndarray, size: int) -> np.ndarray:
    """Σ of the 👍 rows and Σ of the 👎 rows in one ``bincount``: a 👎 row counts in a second copy of the
    columns."""
    if not (labels < 0).any():  # 👍 only (every CiteULike case): one side
        return np.vstack([np.bincount(matrix.indices, matrix.data, minlength=size), np.zeros(size)])
    side = np.repeat((labels < 0).astype(np.int64) * size, np.diff(matrix.indptr))
    return np.bincount(matrix.indices + side, matrix.data, minlength=2 * size).reshape(2, size)


def _flipped(sums: np.ndarray, matrix: sp.csr_matrix, labels: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """``sums`` with the ``flipped`` rows (now labelled ``labels``) moved to their new side; the same array
    when nothing flipped (a click on a new paper, the usual case, allocates nothing here)."""
    if flipped.size == 0:
        return sums
    moved, size = matrix[flipped], sums.shape[1]
    return sums + _side_sums(moved, labels[flipped], size) - _side_sums(moved, -labels[flipped], size)


def _grown(vector: np.ndarray, moved: np.ndarray, size: int) -> np.ndarray:
    """``vector`` (or each row of it) over the columns after an insertion (``moved``: where each old column
    went), 0 elsewhere."""
    grown = np.zeros((*vector.shape[:-1], size), dtype=vector.dtype)
    grown[..., moved] = vector
    return grown


def _recent(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The classifier's rows: the last ``CLASSIFIER_MAX_RATINGS`` (no copy while there are not more)."""
    return matrix if matrix.shape[0] <= CLASSIFIER_MAX_RATINGS else matrix[-CLASSIFIER_MAX_RATINGS:]


def _gram(rows: sp.csr_matrix) -> np.ndarray:
    """``rows @ rows.T`` as a dense float64 array.

    A sparse product costs the square of each column's row count, so the few columns most rows share
    (common character 4-grams: ~1,800 of ~50,000 at 300 ratings, half the non-zeros) are multiplied as a
    dense block instead: 40 → 15 ms at 300 ratings. Only a cold derivation pays this; a click grows it.
    """
    counts = np.bincount(rows.indices, minlength=rows.shape[1])
    common = counts >= GRAM_DENSE_MIN
    dense = rows[:, np.flatnonzero(common)].toarray().astype(np.float64)
    rare = rows[:, np.flatnonzero(~common)].astype(np.float64)
    with _one_blas_thread():
        return dense @ dense.T + (rare @ rare.T).toarray()


def _grown_gram(gram: np.ndarray, rows: sp.csr_matrix, added: int) -> np.ndarray:
    """The Gram matrix of ``rows`` (the classifier's rows, the last ``added`` of them new) from ``gram``,
    that of the rows before: only the new rows' dot products are computed; rows that fell out of the
    window (``CLASSIFIER_MAX_RATINGS``) are dropped from the front."""
    kept = rows.shape[0] - added
    if kept <= 0 or added > 32:  # a batch: as cheap at once, and the dense block below stays small
        return _gram(rows)
    fresh = rows[kept:]
    block = np.zeros((rows.shape[1], added))  # the new rows scattered: one mat-vec each, no sparse product
    block[fresh.indices, row_of(fresh)] = fresh.data
    cross = rows @ block
    grown = np.empty((rows.shape[0], rows.shape[0]))
    grown[:kept, :kept] = gram[gram.shape[0] - kept :, gram.shape[0] - kept :]
    grown[:, kept:] = cross
    grown[kept:, :] = cross.T
    return grown


@cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread: the classifier's arrays are a few hundred rows, too small to share, and on a
    busy 2-core machine OpenBLAS threads wait on each other (a 300-rating fit measured 16 ms threaded,
    5 ms on one thread)."""
    return _blas_threads().limit(limits=1, user_api="blas")


def _unit_dense(vector: np.ndarray) -> np.ndarray:
    norm = float(np.sqrt(np.square(vector).sum()))  # not np.dot: BLAS threads stall on a busy machine
    return vector / norm if norm else vector


class Profile:
    """Keywords + latest rating per paper id; derives ``Parts`` for a corpus and caches them.

    A rating made after the parts were derived is applied as an update of the cached ``_Rated`` (its row
    appended and added to the centroids' sums, the classifier refitted on the grown dot products); a new
    corpus version or new keywords derive everything again.
    """

    def __init__(self, keywords: Iterable[str] = (), labels: Mapping[Hashable, int] | None = None) -> None:
        self.keywords = [k.strip() for k in keywords if k.strip()]
        self.labels: dict[Hashable, int] = dict(labels or {})
        self._rated: _Rated | None = None
        self._parts: Parts | None = None
        self._changed: list[Hashable] = []

    def copy(self) -> Profile:
        """An independent profile sharing the (immutable) derived state: copy-on-write for caches."""
        twin = Profile(self.keywords, self.labels)
        twin._rated, twin._parts, twin._changed = self._rated, self._parts, list(self._changed)
        return twin

    # --- learning ----------------------------------------------------------------------------------
    def rate(self, paper_id: Hashable, value: int) -> None:
        """Record 👍 (+1) or 👎 (-1); the latest rating of a paper replaces an earlier one."""
        if value not in (1, -1):
            raise ValueError(f"rating must be +1 or -1, got {value!r}")
        if self.labels.get(paper_id) == value:
            return
        self.labels[paper_id] = value
        self._changed.append(paper_id)
        self._parts = None

    def set_keywords(self, keywords: Iterable[str]) -> None:
        cleaned = [k.strip() for k in keywords if k.strip()]
        if cleaned != self.keywords:
            self.keywords = cleaned
            self._rated = self._parts = None

    # --- scoring -----------------------------------------------------------------------------------
    def parts(self, corpus: Corpus) -> Parts:
        """The derived model under ``corpus``: updated for new ratings, derived again for a new corpus."""
        key = (id(corpus), corpus.version)
        if self._rated is None or self._rated.key != key:
            self._rated, self._parts = _Rated.build(corpus, self.keywords, self.labels), None
        elif self._changed:
            self._rated = self._rated.updated(corpus, self.labels, self._changed)
        self._changed = []
        if self._parts is None:
            self._parts = self._rated.parts(corpus)
        return self._parts

    def weights(self, corpus: Corpus) -> sp.csr_matrix:
        return self.parts(corpus).weights

    def score(self, corpus: Corpus, rows: sp.csr_matrix) -> np.ndarray:
        """Scores of the given TF-IDF rows (e.g. ``corpus.matrix[candidate_rows]``)."""
        parts = self.parts(corpus)
        scores = sparse_dot(rows, parts.weights)
        if parts.prior:
            scores -= parts.prior * corpus.generality(rows)
        return scores

    def evidence(self, corpus: Corpus, rows: sp.csr_matrix) -> np.ndarray:
        """Whether each row shares a word or phrase with what pulls papers up (keywords, 👍, classifier).

        A paper without one has no true "why" and is never picked, whatever its score after the negative
        parts (👎, corpus mean) moved it. Words only: two English texts share character 4-grams anyway.
        ``rows`` are the papers' own rows (``Corpus.own``): a word a short paper only borrowed from its
        neighbours is not a reason to give.
        """
        weights = self.parts(corpus).weights
        keep = (weights.indices < BLOCK) & (weights.data > 0)
        positive = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), weights.indices[keep], [0, int(keep.sum())]),
            shape=weights.shape,
        )
        words = rows.copy()
        words.data = np.abs(words.data)
        return sparse_dot(words, positive) > 0

    # --- explanation -------------------------------------------------------------------------------
    def explain(
        self, corpus: Corpus, paper_id: Hashable, text: str, title_of: Callable[[Hashable], str]
    ) -> str:
        """A short, true reason: the liked paper nearest to this one, or the terms that scored it."""
        parts = self.parts(corpus)
        row = corpus.matrix[corpus.index[paper_id]]
        from_likes = _dot(row, parts.learned)
        from_keywords = parts.keyword_weight * _dot(row, parts.keywords)
        if parts.liked_rows.size and from_likes >= from_keywords:
            similar = sparse_dot(corpus.matrix[parts.liked_rows], row)
            nearest = corpus.ids[int(parts.liked_rows[int(np.argmax(similar))])]
            return f"similar to “{_shorten(title_of(nearest))}” you liked"
        return self._terms_reason(corpus.own([corpus.index[paper_id]]), parts.weights, text)

    def _terms_reason(self, row: sp.csr_matrix, weights: sp.csr_matrix, text: str) -> str:
        matched = [k for k in self.keywords if _mentions(text, k)]
        terms = top_terms(row, weights, text, limit=3)
        if matched:
            extra = [t for t in terms if not any(t in k.lower() for k in matched)]
            tail = f"; also {', '.join(extra[:2])}" if extra else ""
            return f"mentions your keyword{'s' if len(matched) > 1 else ''} {', '.join(matched[:3])}{tail}"
        if terms and self.keywords:
            return f"related to your keywords ({', '.join(self.keywords[:3])}) through: {', '.join(terms)}"
        return f"terms you rated up: {', '.join(terms)}" if terms else "close to your profile"

    # --- persistence -------------------------------------------------------------------------------
    def to_state(self) -> bytes:
        """Serialise as JSON (never pickle: the bytes come back from the database).

        Keywords and labels are the whole state: the vectors are a deterministic average of corpus rows,
        re-derived in milliseconds under the current IDF, so nothing has to be refitted after a restart.
        """
        meta = {"format": STATE_FORMAT, "keywords": self.keywords, "labels": list(self.labels.items())}
        return json.dumps(meta, ensure_ascii=False).encode()

    @classmethod
    def from_state(cls, state: bytes) -> Profile:
        meta = json.loads(bytes(state).decode())
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown subscriber model format {meta.get('format')!r}")
        labels = {paper: int(value) for paper, value in meta["labels"]}
        wrong = [paper for paper, value in labels.items() if value not in (1, -1)]
        if wrong:  # the classifier counts every rated row as a 👍 or a 👎
            raise ValueError(f"subscriber model state: rating of paper {wrong[0]!r} must be +1 or -1")
        return cls(meta["keywords"], labels)


def score_many(profiles: Sequence[Profile], corpus: Corpus, rows: sp.csr_matrix) -> np.ndarray:
    """``Profile.score`` for many profiles at once (profiles x rows).

    Every profile scores every row, so the result is dense: rather than one sparse product (which first
    sizes a sparse result, then fills it), each few profiles' weights are scattered into a dense block
    over the columns the rows use and multiplied sparse x dense, column by column, so each weight row is
    read once and the few rows of scores being summed stay in cache (CiteULike, 2,707 profiles x 3,396
    titles: 0.5 s against 1.5 s for the sparse product). Profiles are derived a few at a time, so their
    parts need not all be held at once.
    """
    rows = sp.csr_matrix(rows)
    used, local, compact = _by_used_column(rows)
    generality = corpus.generality(rows)
    scores = np.empty((len(profiles), rows.shape[0]))
    dense = np.zeros((compact.shape[1], SCORE_CHUNK), dtype=np.float32)
    for start in range(0, len(profiles), SCORE_CHUNK):
        parts = [p.parts(corpus) for p in profiles[start : start + SCORE_CHUNK]]
        columns = np.concatenate([p.columns for p in parts])
        hit = used[columns]
        at = local[columns[hit]], np.repeat(np.arange(len(parts)), [p.columns.size for p in parts])[hit]
        dense[at] = np.concatenate([p.dense_weights for p in parts])[hit]
        scores[start : start + len(parts)] = (compact @ dense[:, : len(parts)]).T
        dense[at] = 0.0  # cheaper than a fresh zeroed block per chunk
        scores[start : start + len(parts)] -= np.array([p.prior for p in parts])[:, None] * generality
    return scores


def _by_used_column(rows: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, sp.csc_matrix]:
    """Which columns ``rows`` use, each column's position among those, and ``rows`` over those columns
    only, stored column by column."""
    used = np.zeros(N_FEATURES, dtype=bool)
    used[rows.indices] = True
    local = np.cumsum(used, dtype=np.int32) - 1
    compact = sp.csr_matrix(
        (rows.data, local[rows.indices], rows.indptr), shape=(rows.shape[0], int(local[-1]) + 1)
    )
    return used, local, compact.tocsc()


def expand_keywords(corpus: Corpus, keywords: list[str]) -> sp.csr_matrix:
    """Keyword query (each keyword a unit vector, phrase bigrams included) + centroid of its best matches.

    Shared by every subscriber with the same keywords until the corpus changes (``Corpus.memo``).
    """
    if not keywords:
        return _empty()
    key = ("expand", tuple(keywords))
    cached = corpus.memo.get(key)
    if cached is None:
        cached = corpus.memo[key] = _expand(corpus, keywords)
    return cached  # type: ignore[return-value]


def _expand(corpus: Corpus, keywords: list[str]) -> sp.csr_matrix:
    query = _unit(_row_mean(corpus.encode(keywords)))
    if len(corpus) == 0 or EXPANSION_DOCS == 0 or query.nnz == 0:
        return query
    scores = sparse_dot(corpus.matrix, query)
    top = np.argpartition(-scores, EXPANSION_DOCS)[:EXPANSION_DOCS] if scores.size > EXPANSION_DOCS else None
    top = (
        top[np.argsort(-scores[top], kind="stable")]
        if top is not None
        else np.argsort(-scores, kind="stable")
    )
    top = top[scores[top] >= max(EXPANSION_RELATIVE * scores[top[0]], np.finfo(np.float32).tiny)]
    if top.size == 0:
        return query
    return _unit(_combine([(1.0, query), (EXPANSION_WEIGHT, _unit(_row_mean(corpus.matrix[top])))]))


def _classifier(
    gram: np.ndarray, rows: sp.csr_matrix, liked: np.ndarray, background: np.ndarray | None
) -> np.ndarray:
    """Coefficients (over ``rows``' columns) of a logistic regression 👍 vs 👎 on the rated ``rows`` (a 👍
    where ``liked``, a 👎 otherwise) with the ``background`` row (the older papers' mean, if any) as one
    more 👎; ``gram`` is ``rows @ rows.T`` (only called when ``_Rated.trains_classifier``).

    👍 and 👎 are balanced (each kind weighs half); the background row weighs ``BACKGROUND_SHARE`` times
    all the ratings together (see the module docstring for why there is a background at all). The
    problem is liblinear's (L2, ``CLASSIFIER_C``, the intercept a constant feature 1 penalised like the
    rest), solved in kernel form: with K = X Xᵀ + 1 = L Lᵀ, logistic regression on the rows of L finds θ,
    and w = Xᵀ L⁻ᵀ θ is the same optimum (the weights lie in the span of the rows, and ‖θ‖ = ‖w‖). A
    click grows K by one row, so the fit costs a few hundred squared, not the rows' ~300,000 non-zeros
    times liblinear's passes.
    """
    kernel, n = _kernel(gram, rows, background), liked.size
    labels, weights = _targets(liked, kernel.shape[0] - n)
    with _one_blas_thread():
        factor = scipy.linalg.cholesky(kernel, lower=True, check_finite=False)
        theta = scipy.optimize.minimize(
            _logistic_loss,
            np.zeros(kernel.shape[0]),
            args=(factor, labels, CLASSIFIER_C * weights),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": CLASSIFIER_MAX_ITER},
        ).x
        dual = scipy.linalg.solve_triangular(factor, theta, lower=True, trans="T", check_finite=False)
    coef = np.asarray(rows.T @ dual[:n], dtype=np.float64)
    return coef + dual[n] * background if background is not None else coef


def _targets(liked: np.ndarray, n_background: int) -> tuple[np.ndarray, np.ndarray]:
    """±1 per rated row then -1 per background row, and the sample weights: 👍 and 👎 half each, each
    background row ``BACKGROUND_SHARE`` times all the ratings together."""
    n, n_liked = liked.size, int(liked.sum())
    labels = np.concatenate([np.where(liked, 1.0, -1.0), -np.ones(n_background)])
    weights = np.concatenate(
        [
            np.where(liked, n / (2 * n_liked), n / (2 * (n - n_liked))),
            np.full(n_background, BACKGROUND_SHARE * n),
        ]
    )
    return labels, weights


def _logistic_loss(
    theta: np.ndarray, features: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Σ weight · log(1 + e^(−label · x·θ)) + ½‖θ‖² and its gradient: liblinear's L2 logistic regression
    (``weights`` already times C). Given to SciPy's L-BFGS directly: on a few hundred rows
    ``LogisticRegression.fit``'s own checks and loss objects cost 3× the optimisation itself."""
    margins = labels * (features @ theta)
    loss = float(weights @ np.logaddexp(0.0, -margins) + 0.5 * theta @ theta)
    return loss, features.T @ (-weights * labels * scipy.special.expit(-margins)) + theta


def _kernel(gram: np.ndarray, rows: sp.csr_matrix, background: np.ndarray | None) -> np.ndarray:
    """Dot products among the rows and the background row, + 1 for the intercept's constant feature.

    A tiny ridge (1e-9 of the mean diagonal) keeps it positive definite for the Cholesky factor when two
    rated papers have the same text; it moves the fit by far less than the solver's tolerance.
    """
    n = gram.shape[0]
    size = n + (background is not None)
    kernel = np.empty((size, size))
    kernel[:n, :n] = gram
    if background is not None:
        kernel[:n, n] = kernel[n, :n] = rows @ background
        kernel[n, n] = float(np.square(background).sum())
    kernel += 1.0
    kernel.flat[:: size + 1] += 1e-9 * float(np.trace(kernel)) / size
    return kernel


def term_columns(terms: list[str]) -> np.ndarray:
    """The hashed column of each word term (the same hashing the corpus' word vectorizer uses)."""
    hashed = _HASHER.transform([[t] for t in terms]).tocsr()
    return np.array([hashed.indices[hashed.indptr[i]] for i in range(len(terms))], dtype=np.int64)


@lru_cache(maxsize=4096)
def _text_terms(text: str) -> tuple[list[str], np.ndarray]:
    """A paper's distinct word terms and their columns; cached, as a paper is explained to many readers."""
    terms = sorted(set(ANALYZER(text)))
    return terms, term_columns(terms) if terms else np.zeros(0, dtype=np.int64)


def _values_at(row: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """row[0, columns] for a 1 x N row with sorted indices, without densifying it."""
    indices, data = row.indices, row.data
    if not row.has_sorted_indices:
        order = np.argsort(indices)
        indices, data = indices[order], data[order]
    if indices.size == 0:
        return np.zeros(columns.size)
    at = np.searchsorted(indices, columns)
    at[at == indices.size] = 0
    return np.where(indices[at] == columns, data[at], 0.0)


def top_terms(row: sp.csr_matrix, weights: sp.csr_matrix, text: str, limit: int) -> list[str]:
    """The paper's word terms with the largest positive contribution to weights · row."""
    terms, columns = _text_terms(text)
    if not terms:
        return []
    contribution = _values_at(row, columns) * _values_at(weights, columns)
    order = [i for i in np.argsort(-contribution, kind="stable") if contribution[i] > 0]
    chosen: list[str] = []
    for i in order:
        term = terms[i]
        if not any(term in c or c in term for c in chosen):
            chosen.append(term)
        if len(chosen) == limit:
            break
    return chosen


def _mentions(text: str, keyword: str) -> bool:
    return bool(phrase_pattern(keyword).search(text))


def _shorten(title: str, limit: int = 80) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"
