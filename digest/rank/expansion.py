"""Keyword expansion (pseudo-relevance feedback): the keywords' own vector plus the centroid of the papers
that match them best, so a subscriber who typed only "Sound" also gets papers about speech and audio.

The best matches are kept per keyword set and brought up to date as papers arrive: the kept papers and the
new ones are scored again, never the whole corpus (on the dev files the same papers come out as a full
search would; docs/scaling.md). Every subscriber with the same keywords shares them.
"""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping, Sequence
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from digest.rank.tfidf import N_FEATURES
from digest.rank.vectors import sparse_dot

EXPANSION_DOCS = 10
EXPANSION_WEIGHT = 0.5
EXPANSION_RELATIVE = 0.5  # expansion papers must score at least this fraction of the best match


class Matches(Protocol):
    """Where a corpus keeps each keyword set's best matches (in memory, or in the database)."""

    def matches(self, keywords: tuple[str, ...]) -> tuple[list[Hashable], int] | None: ...

    def keep_matches(self, keywords: tuple[str, ...], papers: list[Hashable], marker: int) -> None: ...


class Expandable(Matches, Protocol):
    version: int
    memo: MutableMapping[Hashable, object]

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix: ...

    def known(self, ids: Sequence[Hashable]) -> list[Hashable]: ...

    def rows_of(self, ids: Sequence[Hashable]) -> sp.csr_matrix: ...

    def newer_than(self, marker: int) -> tuple[list[Hashable], int]: ...


def empty_row() -> sp.csr_matrix:
    return sp.csr_matrix((1, N_FEATURES), dtype=np.float32)


def row_mean(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The rows' mean as a 1 x N_FEATURES float32 row (a sparse sum in float64: a dense one is 2**21 wide)."""
    columns = matrix.indices
    row = sp.csr_matrix(
        (matrix.data.astype(np.float64), (np.zeros(columns.size, dtype=np.int32), columns)),
        shape=(1, N_FEATURES),
    )
    row.data /= matrix.shape[0]
    return row.astype(np.float32)


def expand_keywords(corpus: Expandable, keywords: list[str]) -> sp.csr_matrix:
    """Keyword query (each keyword a unit vector, phrase bigrams included) + centroid of its best matches;
    computed once per corpus version and keyword set."""
    if not keywords:
        return empty_row()
    key = ("expand", tuple(keywords), corpus.version)
    cached = corpus.memo.get(key)
    if cached is None:
        cached = corpus.memo[key] = _expand(corpus, tuple(keywords))
    return cached  # type: ignore[return-value]


def _expand(corpus: Expandable, keywords: tuple[str, ...]) -> sp.csr_matrix:
    query = normalize(row_mean(corpus.encode(list(keywords))))
    if EXPANSION_DOCS == 0 or query.nnz == 0:
        return query
    top, scores = best_matches(corpus, keywords, query)
    top = [paper for paper, score in zip(top, scores, strict=True) if score >= _threshold(scores)]
    if not top:
        return query
    return normalize(query + EXPANSION_WEIGHT * normalize(row_mean(corpus.rows_of(top))))


def best_matches(
    corpus: Expandable, keywords: tuple[str, ...], query: sp.csr_matrix
) -> tuple[list[Hashable], np.ndarray]:
    """The ``EXPANSION_DOCS`` papers scoring best against ``query``, best first, with their scores: the
    ones kept for these keywords and the papers added since, scored under the current IDF."""
    kept = corpus.matches(keywords)
    before, marker = kept if kept is not None else ([], 0)
    fresh, marker = corpus.newer_than(marker)
    candidates = list(dict.fromkeys([*corpus.known(before), *fresh]))
    if not candidates:
        return [], np.zeros(0)
    scores = sparse_dot(corpus.rows_of(candidates), query)
    order = np.argsort(-scores, kind="stable")[:EXPANSION_DOCS]
    top = [candidates[i] for i in order]
    corpus.keep_matches(keywords, top, marker)
    return top, scores[order]


def _threshold(scores: np.ndarray) -> float:
    return max(EXPANSION_RELATIVE * float(scores[0]), float(np.finfo(np.float32).tiny))
