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
  fitted on the rated rows, over just the columns those rows use (liblinear's dual form, as there are far
  fewer rows than columns), 👍 and 👎 weighing half each, and its coefficients are one more sparse
  direction in w (replay hit@10 ≈ .60 → .65).
* The mean of the older papers (``Corpus.background_mean``, never a current candidate) joins the
  classifier as one 👎 row weighing ``BACKGROUND_SHARE`` times all the ratings together. Every rated paper
  was shown because the model already ranked it high, so on the ratings alone a term that every paper
  has, but that the 👍 happen to share, looks like a reason to like. With that row the fit holds an
  average paper firmly on the 👎 side (its intercept settles far below zero), so a 👍 has to score well
  above an average paper on the classifier's terms: it learns what sets the 👍 apart from any paper, not
  only from the 👎, without densifying a single row. It replaced a sample of 500 older papers as weak 👎
  (replay hit@10 .666 → .682, and .639 → .648 on a second set of 20 simulated subscribers; README
  "Ranking model"); any share from 30 to 1,000 gives the same within noise.
* liblinear stops at ``CLASSIFIER_TOL`` = 0.1 (as good as its default 1e-4 on the replay, measured
  before the mean's row existed) or after ``CLASSIFIER_MAX_ITER`` = 20 passes: the heavy row slows the
  dual solver's convergence (up to ~60 passes with 300 ratings), and 20 passes give the converged fit's
  replay figures on both user sets (10 passes: .678 / .650, 5: .670 / .647).

Updating at once (``Profile.parts``, ``_Rated``): the derived model keeps the rated rows in a compact column
space (only the columns the keyword vector and the rated papers use, a few tens of thousands of the 2**21).
A 👍/👎 after the model was derived appends that paper's row (its new columns inserted, no sort of the
stored rows), sums both centroids in one ``bincount`` and refits the classifier on the rated rows and
the older papers' mean (read at the same columns from a dense row shared per corpus version); README,
"Ranking model", has the cost. A new corpus version (new papers, hence a new IDF) or new keywords derive
everything again.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression

try:
    from sklearn.svm._base import _fit_liblinear
except ImportError:  # pragma: no cover - private in scikit-learn; the public class is used instead
    _fit_liblinear = None

from digest.rank.corpus import ANALYZER, BLOCK, N_FEATURES, Corpus, phrase_pattern, sparse_dot

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
CLASSIFIER_TOL = 0.1
CLASSIFIER_MAX_ITER = 20  # liblinear passes (see the module docstring)
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

    Held as dense vectors over the few columns the keywords and the rated papers use; ``weights`` (what
    scoring needs) is built at once, the sparse components only when an explanation or a test asks.
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
        self.weights = self._sparse(self.keyword_weight * keywords + learned - DISLIKED_WEIGHT * disliked)
        # Kept for the explanation as float32 (a profile may sit in a per-process cache).
        self._keywords = keywords  # shared with the ``_Rated`` it came from
        self._liked, self._disliked, self._classifier = (
            v.astype(np.float32) for v in (liked, disliked, classifier)
        )

    @property
    def keyword_weight(self) -> float:
        return _keyword_weight(self.liked_rows.size)

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
    rated rows (in rating order) over those columns only, so the centroids are one ``bincount`` and the
    classifier is fitted without touching 2**21-sized arrays. A new rating appends its row and inserts
    its new columns (no sort of the stored rows), so a click never re-derives the profile. Never mutated:
    an update builds a new one, so a cached profile can be shared (``Profile.copy``).
    """

    key: tuple
    ids: tuple
    rows: np.ndarray  # corpus row of each rated paper
    labels: np.ndarray  # +1 / -1 per rated paper
    columns: np.ndarray
    matrix: sp.csr_matrix
    keywords: np.ndarray  # the expanded keyword vector over ``columns``

    @classmethod
    def build(cls, corpus: Corpus, keywords: list[str], labels: Mapping[Hashable, int]) -> _Rated:
        ids = tuple(i for i in labels if i in corpus.index)
        rows = corpus.rows(ids)
        sub = corpus.matrix[rows]
        query = expand_keywords(corpus, keywords)
        columns, local = np.unique(np.concatenate([sub.indices, query.indices]), return_inverse=True)
        matrix = sp.csr_matrix(
            (sub.data, local[: sub.nnz].astype(np.int32), sub.indptr), shape=(rows.size, columns.size)
        )
        dense = np.zeros(columns.size, dtype=np.float64)
        dense[local[sub.nnz :]] = query.data
        values = np.array([labels[i] for i in ids], dtype=np.float64)
        return cls((id(corpus), corpus.version), ids, rows, values, columns, matrix, dense)

    def updated(self, corpus: Corpus, labels: Mapping[Hashable, int], changed: Iterable[Hashable]) -> _Rated:
        """The same with the ratings of the ``changed`` papers added or replaced."""
        ids, rows, columns, matrix = list(self.ids), self.rows, self.columns, self.matrix
        keywords, values = self.keywords, self.labels.copy()
        position = {paper: i for i, paper in enumerate(ids)}
        fresh = []
        for paper in dict.fromkeys(changed):
            if paper in position:
                values[position[paper]] = labels[paper]
            elif paper in corpus.index:
                fresh.append(paper)
        if not fresh:
            return _Rated(self.key, self.ids, rows, values, columns, matrix, keywords)
        new_rows = corpus.rows(fresh)
        sub = corpus.matrix[new_rows]
        at = np.minimum(np.searchsorted(columns, sub.indices), max(columns.size - 1, 0))
        known = columns[at] == sub.indices if columns.size else np.zeros(sub.nnz, dtype=bool)
        added = np.unique(sub.indices[~known])
        if added.size:  # insert the new columns: a stored column moves up by the count inserted before it
            moved = np.arange(columns.size) + np.searchsorted(added, columns)
            columns = np.insert(columns, np.searchsorted(columns, added), added)
            matrix = sp.csr_matrix(
                (matrix.data, moved[matrix.indices].astype(np.int32), matrix.indptr),
                shape=(matrix.shape[0], columns.size),
            )
            grown = np.zeros(columns.size, dtype=np.float64)
            grown[moved] = keywords
            keywords = grown
        matrix = sp.csr_matrix(
            (
                np.concatenate([matrix.data, sub.data]),
                np.concatenate([matrix.indices, np.searchsorted(columns, sub.indices).astype(np.int32)]),
                np.concatenate([matrix.indptr, matrix.indptr[-1] + sub.indptr[1:]]),
            ),
            shape=(matrix.shape[0] + len(fresh), columns.size),
        )
        values = np.concatenate([values, [float(labels[p]) for p in fresh]])
        rows = np.concatenate([rows, new_rows])
        return _Rated(self.key, tuple(ids + fresh), rows, values, columns, matrix, keywords)

    def parts(self, corpus: Corpus) -> Parts:
        liked, disliked = self.labels > 0, self.labels < 0
        size, matrix = self.columns.size, self.matrix
        # Both centroids in one pass: a 👎 row's entries are counted in a second copy of the columns.
        side = np.repeat(disliked.astype(np.int64) * size, np.diff(matrix.indptr))
        sums = np.bincount(matrix.indices + side, matrix.data, minlength=2 * size)
        liked_dense = _unit_dense(np.power(sums[:size] / max(int(liked.sum()), 1), LIKED_POWER))
        disliked_dense = _unit_dense(sums[size:] / max(int(disliked.sum()), 1))
        classifier = (
            _unit_dense(_classifier(matrix, liked, self._background(corpus)))
            if _trains_classifier(liked, disliked)
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

    def _background(self, corpus: Corpus) -> sp.csr_matrix:
        """The older papers' mean row over ``columns`` only (no row while there are no older papers): the
        classifier's weights live on the rated papers' terms, the mean only tells it which of those terms
        an average paper has."""
        mean = corpus.background_mean()
        if mean is None:
            return sp.csr_matrix((0, self.columns.size))
        values = mean[self.columns]
        at = np.flatnonzero(values).astype(np.int32)
        return sp.csr_matrix((values[at], at, [0, at.size]), shape=(1, self.columns.size))


def _unit_dense(vector: np.ndarray) -> np.ndarray:
    norm = float(np.sqrt(np.square(vector).sum()))  # not np.dot: BLAS threads stall on a busy machine
    return vector / norm if norm else vector


class Profile:
    """Keywords + latest rating per paper id; derives ``Parts`` for a corpus and caches them.

    A rating made after the parts were derived is applied as an update of the cached ``_Rated`` (its row
    appended, centroids summed again, the classifier refitted on the rated rows); a new corpus version or
    new keywords derive everything again.
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
        return self._terms_reason(row, parts.weights, text)

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


def score_many(profiles: list[Profile], corpus: Corpus, rows: sp.csr_matrix) -> np.ndarray:
    """``Profile.score`` for many profiles at once (profiles x rows), as one sparse product."""
    parts = [p.parts(corpus) for p in profiles]
    weights = sp.vstack([p.weights for p in parts], format="csr")
    scores = (weights @ rows.T).toarray()
    priors = np.array([p.prior for p in parts])
    if priors.any():
        scores -= priors[:, None] * corpus.generality(rows)[None, :]
    return scores


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


def _trains_classifier(liked: np.ndarray, disliked: np.ndarray) -> bool:
    return bool(
        liked.any() and disliked.any() and int(liked.sum() + disliked.sum()) >= CLASSIFIER_MIN_RATINGS
    )


def _classifier(matrix: sp.csr_matrix, liked: np.ndarray, background: sp.csr_matrix) -> np.ndarray:
    """Coefficients (over ``matrix``'s columns) of a logistic regression 👍 vs 👎 on the rated rows (each
    row is a 👍 where ``liked``, a 👎 otherwise), with the ``background`` row (the older papers' mean, if
    any) as one more 👎 (only called when ``_trains_classifier``).

    👍 and 👎 are balanced (each kind weighs half); the background row weighs ``BACKGROUND_SHARE`` times
    all the ratings together (see the module docstring for why there is a background at all).
    """
    features = sp.vstack([matrix, background], format="csr", dtype=np.float64)
    labels = np.concatenate([np.where(liked, 1.0, -1.0), -np.ones(background.shape[0])])
    n, n_liked = liked.size, int(liked.sum())
    weights = np.concatenate(
        [
            np.where(liked, n / (2 * n_liked), n / (2 * (n - n_liked))),
            np.full(background.shape[0], BACKGROUND_SHARE * n),
        ]
    )
    if _fit_liblinear is not None:
        # What LogisticRegression(solver="liblinear").fit runs, without ~1 ms of input checks per click.
        try:
            with _capped(), config_context(assume_finite=True, skip_parameter_validation=True):
                coef, _, _ = _fit_liblinear(
                    features,
                    labels,
                    C=CLASSIFIER_C,
                    fit_intercept=True,
                    intercept_scaling=1.0,
                    class_weight=None,
                    penalty="l2",
                    dual=True,
                    verbose=0,
                    max_iter=CLASSIFIER_MAX_ITER,
                    tol=CLASSIFIER_TOL,
                    random_state=0,
                    sample_weight=weights,
                )
            return coef.ravel().astype(np.float64)
        except TypeError:  # a scikit-learn whose private signature moved: the public class below
            pass
    model = LogisticRegression(
        C=CLASSIFIER_C,
        solver="liblinear",
        dual=True,
        tol=CLASSIFIER_TOL,
        max_iter=CLASSIFIER_MAX_ITER,
        random_state=0,
    )
    with _capped():
        model.fit(features, labels, sample_weight=weights)
    return model.coef_.ravel().astype(np.float64)


@contextmanager
def _capped() -> Iterator[None]:
    """liblinear warns when it stops at ``CLASSIFIER_MAX_ITER`` passes; here that is the chosen budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


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
