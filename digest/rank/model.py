"""The subscriber's relevance model: keyword query expanded through the corpus, plus Rocchio on 👍/👎.

A profile is the subscriber's keywords and the latest rating per paper; its weight vector lives in the
corpus' hashed TF-IDF space (``digest.rank.corpus``) and is re-derived whenever the corpus changes, so
the model is always expressed under the current IDF. Score of a paper = weights · paper row, where

    weights = KEYWORD / (1 + n👍 / HALF_LIFE) · expand(keywords)
              + LIKED · unit(mean(👍 rows)) − DISLIKED · unit(mean(👎 rows))

``expand`` is pseudo-relevance feedback: the keywords' own vector (unigrams + the phrase as a bigram)
plus the centroid of the corpus papers that match it best, so a subscriber who typed only "Sound" also
gets papers about speech and audio that never use the word. Unrated papers are not treated as negatives:
a paper nobody rated may simply not have been seen. The keywords' weight decays as 👍 accumulate: typed
keywords are the best guess on day one, the subscriber's own likes are better evidence later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher

from digest.rank.corpus import ANALYZER, N_FEATURES, Corpus, phrase_pattern

STATE_FORMAT = 1
# Chosen by measurement on the dev replay and CiteULike files (README, "Ranking model").
KEYWORD_WEIGHT = 1.0
LIKED_WEIGHT = 1.0
DISLIKED_WEIGHT = 0.25
KEYWORD_HALF_LIFE = 5  # 👍 count at which the keywords weigh half as much as on day one
EXPANSION_DOCS = 10
EXPANSION_WEIGHT = 0.5

_HASHER = FeatureHasher(n_features=N_FEATURES, input_type="string", alternate_sign=False)


def _empty() -> sp.csr_matrix:
    return sp.csr_matrix((1, N_FEATURES), dtype=np.float32)


def _mean(matrix: sp.csr_matrix) -> sp.csr_matrix:
    return _row_mean(matrix) if matrix.shape[0] else _empty()


def _row_mean(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Mean of the rows as a 1 x N_FEATURES row, summing only the columns that occur (fast at 2**20)."""
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


@dataclass
class Parts:
    """The weight vector's components, kept apart so an explanation can say which one drove a score."""

    keywords: sp.csr_matrix
    liked: sp.csr_matrix
    disliked: sp.csr_matrix
    liked_rows: np.ndarray

    @property
    def keyword_weight(self) -> float:
        return KEYWORD_WEIGHT / (1.0 + self.liked_rows.size / KEYWORD_HALF_LIFE)

    @property
    def weights(self) -> sp.csr_matrix:
        # Unit-length centroids: a 👍 centroid of diverse papers is short, and would otherwise never
        # outweigh the keywords however many papers the subscriber liked.
        return _combine(
            [
                (self.keyword_weight, self.keywords),
                (LIKED_WEIGHT, _unit(self.liked)),
                (-DISLIKED_WEIGHT, _unit(self.disliked)),
            ]
        )


class Profile:
    """Keywords + latest rating per paper id; derives ``Parts`` for a corpus and caches them."""

    def __init__(self, keywords: Iterable[str] = (), labels: Mapping[Hashable, int] | None = None) -> None:
        self.keywords = [k.strip() for k in keywords if k.strip()]
        self.labels: dict[Hashable, int] = dict(labels or {})
        self._parts: Parts | None = None
        self._parts_key: tuple | None = None
        self._expansion: tuple[tuple, sp.csr_matrix] | None = None

    # --- learning ----------------------------------------------------------------------------------
    def rate(self, paper_id: Hashable, value: int) -> None:
        """Record 👍 (+1) or 👎 (-1); the latest rating of a paper replaces an earlier one."""
        if value not in (1, -1):
            raise ValueError(f"rating must be +1 or -1, got {value!r}")
        self.labels[paper_id] = value
        self._parts = None

    def set_keywords(self, keywords: Iterable[str]) -> None:
        cleaned = [k.strip() for k in keywords if k.strip()]
        if cleaned != self.keywords:
            self.keywords = cleaned
            self._parts = None

    # --- scoring -----------------------------------------------------------------------------------
    def parts(self, corpus: Corpus) -> Parts:
        key = (id(corpus), corpus.version)
        if self._parts is None or self._parts_key != key:
            self._parts = self._derive(corpus)
            self._parts_key = key
        return self._parts

    def weights(self, corpus: Corpus) -> sp.csr_matrix:
        return self.parts(corpus).weights

    def score(self, corpus: Corpus, rows: sp.csr_matrix) -> np.ndarray:
        """Scores of the given TF-IDF rows (e.g. ``corpus.matrix[candidate_rows]``)."""
        return np.asarray((rows @ self.weights(corpus).T).todense()).ravel()

    def _derive(self, corpus: Corpus) -> Parts:
        matrix = corpus.matrix
        liked = corpus.rows(i for i, v in self.labels.items() if v > 0)
        disliked = corpus.rows(i for i, v in self.labels.items() if v < 0)
        return Parts(
            keywords=self._keyword_vector(corpus),
            liked=_mean(matrix[liked]),
            disliked=_mean(matrix[disliked]),
            liked_rows=liked,
        )

    def _keyword_vector(self, corpus: Corpus) -> sp.csr_matrix:
        key = (id(corpus), corpus.version, tuple(self.keywords))
        if self._expansion is not None and self._expansion[0] == key:
            return self._expansion[1]
        vector = expand_keywords(corpus, self.keywords)
        self._expansion = (key, vector)
        return vector

    # --- explanation -------------------------------------------------------------------------------
    def explain(
        self, corpus: Corpus, paper_id: Hashable, text: str, title_of: Callable[[Hashable], str]
    ) -> str:
        """A short, true reason: the liked paper nearest to this one, or the terms that scored it."""
        parts = self.parts(corpus)
        row = corpus.matrix[corpus.index[paper_id]]
        from_likes = LIKED_WEIGHT * float((row @ _unit(parts.liked).T).sum())
        from_keywords = parts.keyword_weight * float((row @ parts.keywords.T).sum())
        if parts.liked_rows.size and from_likes >= from_keywords:
            similar = corpus.matrix[parts.liked_rows] @ row.T
            nearest = corpus.ids[int(parts.liked_rows[int(np.argmax(similar.toarray().ravel()))])]
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
        return cls(meta["keywords"], {paper: int(value) for paper, value in meta["labels"]})


def score_many(profiles: list[Profile], corpus: Corpus, rows: sp.csr_matrix) -> np.ndarray:
    """``Profile.score`` for many profiles at once (profiles x rows), as one sparse product."""
    weights = sp.vstack([p.weights(corpus) for p in profiles], format="csr")
    return (weights @ rows.T).toarray()


def expand_keywords(corpus: Corpus, keywords: list[str]) -> sp.csr_matrix:
    """Keyword query (each keyword a unit vector, phrase bigrams included) + centroid of its best matches."""
    if not keywords:
        return _empty()
    query = _unit(_row_mean(corpus.encode(keywords)))
    if len(corpus) == 0 or EXPANSION_DOCS == 0:
        return query
    scores = np.asarray((corpus.matrix @ query.T).todense()).ravel()
    top = np.argsort(-scores)[:EXPANSION_DOCS]
    top = top[scores[top] > 0]
    if top.size == 0:
        return query
    return _combine([(1.0, query), (EXPANSION_WEIGHT, _unit(_row_mean(corpus.matrix[top])))])


def term_columns(terms: list[str]) -> np.ndarray:
    """The hashed column of each term (the same hashing the corpus vectorizer uses)."""
    hashed = _HASHER.transform([[t] for t in terms]).tocsr()
    return np.array([hashed.indices[hashed.indptr[i]] for i in range(len(terms))], dtype=np.int64)


def top_terms(row: sp.csr_matrix, weights: sp.csr_matrix, text: str, limit: int) -> list[str]:
    """The paper's terms with the largest positive contribution to weights · row."""
    terms = sorted(set(ANALYZER(text)))
    if not terms:
        return []
    columns = term_columns(terms)
    dense_row = row.toarray().ravel()
    dense_w = weights.toarray().ravel()
    contribution = dense_row[columns] * dense_w[columns]
    order = [i for i in np.argsort(-contribution) if contribution[i] > 0]
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
