"""Why a paper was picked, in one short and true line: the liked paper nearest to it, or the keywords and
terms that scored it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Hashable
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


def explain(
    weights: Weights,
    row: Entries,
    own: Entries,
    text: str,
    liked_rows: Callable[[tuple[Hashable, ...]], sp.csr_matrix],
    title_of: Callable[[Hashable], str],
) -> str:
    """A short, true reason why ``weights`` scored the paper (its ``row``, its ``own`` row, its ``text``):
    the liked paper nearest to it when the ratings drove its score more than the keywords, otherwise the
    keywords and terms that scored it."""
    from_likes = _dot(row, weights.columns, weights.learned)
    from_keywords = weights.keyword_weight * _dot(row, weights.columns, weights.keywords)
    if weights.liked and from_likes >= from_keywords:
        latest = weights.liked[-LIKED_COMPARED:]
        paper = sp.csr_matrix((row[1], row[0], [0, row[0].size]), shape=(1, N_FEATURES))
        nearest = latest[int(np.argmax(sparse_dot(liked_rows(latest), paper)))]
        return f"similar to “{textwrap.shorten(title_of(nearest), TITLE_CHARS, placeholder='…')}” you liked"
    return _terms_reason(list(weights.terms), own, (weights.columns, weights.values), text)


def _dot(row: Entries, columns: np.ndarray, values: np.ndarray) -> float:
    """The dot product of a row with a vector over sorted ``columns``."""
    return float((row[1] * _at(columns, values, row[0])).sum())


def _at(columns: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the ``wanted`` columns (0 where ``columns`` lacks one)."""
    if columns.size == 0:
        return np.zeros(wanted.size, dtype=np.float64)
    at = np.minimum(np.searchsorted(columns, wanted), columns.size - 1)
    return np.where(columns[at] == wanted, values[at], 0.0)


def _terms_reason(keywords: list[str], row: Entries, weights: Entries, text: str) -> str:
    matched = [k for k in keywords if phrase_pattern(k).search(text)]
    terms = top_terms(row, weights, text, limit=3)
    if matched:
        extra = [t for t in terms if not any(t in k.lower() for k in matched)]
        tail = f"; also {', '.join(extra[:2])}" if extra else ""
        return f"mentions your keyword{'s' if len(matched) > 1 else ''} {', '.join(matched[:3])}{tail}"
    if terms and keywords:
        return f"related to your keywords ({', '.join(keywords[:3])}) through: {', '.join(terms)}"
    return f"terms you rated up: {', '.join(terms)}" if terms else "close to your profile"


def top_terms(row: Entries, weights: Entries, text: str, limit: int) -> list[str]:
    """The paper's word terms with the largest positive contribution to weights · row, none contained in
    another one chosen."""
    terms, columns = _text_terms(text)
    if not terms:
        return []
    contribution = _at(*row, columns) * _at(*weights, columns)
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
