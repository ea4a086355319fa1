"""Why a paper was picked, in one short and true line: the liked paper nearest to it (one of the library the
subscriber imported is named as such), or the keywords and terms that scored it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from digest.rank.tfidf import ANALYZER, N_FEATURES, phrase_pattern, term_columns
from digest.rank.vectors import sparse_dot
from digest.rank.weights import Weights

TITLE_CHARS = 80  # a liked paper's title is shortened to this many characters
LIKED_COMPARED = 50  # the nearest liked paper is looked for among the latest this many (bounds the cost)


Entries = tuple[np.ndarray, np.ndarray]  # a sparse row as its (sorted) columns and values


def entries(row: sp.csr_matrix) -> Entries:
    """A 1 x N row as its sorted columns and values."""
    order = np.argsort(row.indices, kind="stable")
    return row.indices[order].astype(np.int64), row.data[order]


Lookup = Callable[[np.ndarray], np.ndarray]  # a vector's values at the given columns


@dataclass(frozen=True)
class Vectors:
    """What an explanation reads of the weights: the weight vector, what the ratings add, the keywords."""

    values: Lookup
    learned: Lookup
    keywords: Lookup

    @classmethod
    def of(cls, weights: Weights) -> Vectors:
        return cls(*(lookup(weights.columns, v) for v in (weights.values, weights.learned, weights.keywords)))


def lookup(columns: np.ndarray, values: np.ndarray) -> Lookup:
    """A vector over sorted ``columns`` read at any columns (0 where it has none)."""

    def at(wanted: np.ndarray) -> np.ndarray:
        if columns.size == 0:
            return np.zeros(wanted.size, dtype=np.float64)
        found = np.minimum(np.searchsorted(columns, wanted), columns.size - 1)
        return np.where(columns[found] == wanted, values[found], 0.0)

    return at


def explain(
    weights: Weights,
    row: Entries,
    own: Entries,
    text: str,
    liked_rows: Callable[[tuple[Hashable, ...]], sp.csr_matrix],
    title_of: Callable[[Hashable], str],
    vectors: Vectors | None = None,
) -> str:
    """A short, true reason why ``weights`` scored the paper (its ``row``, its ``own`` row, its ``text``):
    the liked paper nearest to it when the ratings drove its score more than the keywords, otherwise the
    keywords and terms that scored it. ``vectors``: the weights as a digest reads them (dense over the
    day's columns: no search per read); searched in ``weights`` otherwise."""
    vectors = vectors or Vectors.of(weights)
    from_likes = float(row[1] @ vectors.learned(row[0]))
    from_keywords = weights.keyword_weight * float(row[1] @ vectors.keywords(row[0]))
    if weights.liked and from_likes >= from_keywords:
        latest = weights.liked[-LIKED_COMPARED:]
        paper = sp.csr_matrix((row[1], row[0], [0, row[0].size]), shape=(1, N_FEATURES))
        nearest = latest[int(np.argmax(sparse_dot(liked_rows(latest), paper)))]
        where = "in your library" if weights.from_library(nearest) else "you liked"
        return f"similar to “{textwrap.shorten(title_of(nearest), TITLE_CHARS, placeholder='…')}” {where}"
    return _terms_reason(list(weights.terms), own, vectors.values, text)


def _terms_reason(keywords: list[str], row: Entries, weights: Lookup, text: str) -> str:
    matched = [k for k in keywords if phrase_pattern(k).search(text)]
    terms = top_terms(row, weights, text, limit=3)
    if matched:
        extra = [t for t in terms if not any(t in k.lower() for k in matched)]
        tail = f"; also {', '.join(extra[:2])}" if extra else ""
        return f"mentions your keyword{'s' if len(matched) > 1 else ''} {', '.join(matched[:3])}{tail}"
    if terms and keywords:
        return f"related to your keywords ({', '.join(keywords[:3])}) through: {', '.join(terms)}"
    return f"terms you rated up: {', '.join(terms)}" if terms else "close to your profile"


def top_terms(row: Entries, weights: Lookup, text: str, limit: int) -> list[str]:
    """The paper's word terms with the largest positive contribution to weights · row, none contained in
    another one chosen."""
    terms, columns = _text_terms(text)
    if not terms:
        return []
    contribution = lookup(*row)(columns) * weights(columns)
    order = [i for i in np.argsort(-contribution, kind="stable") if contribution[i] > 0]
    chosen: list[str] = []
    for i in order:
        term = terms[i]
        if not any(term in c or c in term for c in chosen):
            chosen.append(term)
        if len(chosen) == limit:
            break
    return chosen


@lru_cache(maxsize=4096)
def _text_terms(text: str) -> tuple[list[str], np.ndarray]:
    """A paper's distinct word terms and their columns; cached, as a paper is explained to many readers."""
    terms = sorted(set(ANALYZER(text)))
    return terms, term_columns(terms) if terms else np.zeros(0, dtype=np.int64)
