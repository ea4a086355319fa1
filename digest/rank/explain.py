"""Why a paper was picked, in one short and true line naming the source that drove its score: a liked paper
("similar to “…” you liked", or "in your library" for a paper or text of an imported library), the
keywords' words ("mentions your keyword …", "related to your keywords
(…) through: …") or their meaning ("close in meaning to your keyword …").

The score is split by source: the keywords (their TF-IDF vector and their part of the semantic vector) and
the ratings (the 👍 centroid and the classifier, and the 👍 part of the semantic vector). The larger one is
named; terms quoted for the keywords come from the keyword vector alone, never from a liked paper, and only
terms a reader recognises: words several papers use, not one paper's coinage, and not the most common ones.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from digest.rank.semantic import keyword_vector
from digest.rank.tfidf import ANALYZER, N_FEATURES, phrase_pattern, term_columns
from digest.rank.vectors import sparse_dot
from digest.rank.weights import Weights

TITLE_CHARS = 80  # a liked paper's title is shortened to this many characters
LIKED_COMPARED = 50  # the nearest liked paper is looked for among the latest this many (bounds the cost)
# A quoted term is one other papers use too (not a coinage of the paper itself: at least TERM_MIN_DF papers
# and 1 in TERM_MIN_SHARE) and not one of the most common (more than TERM_MAX_SHARE of the papers, and more
# than TERM_COMMON papers).
TERM_MIN_DF = 2
TERM_MIN_SHARE = 1 / 5_000
TERM_MAX_SHARE = 0.1
TERM_COMMON = 20


Entries = tuple[np.ndarray, np.ndarray]  # a sparse row as its (sorted) columns and values
Lookup = Callable[[np.ndarray], np.ndarray]  # a vector's values at the given columns


def entries(row: sp.csr_matrix) -> Entries:
    """A 1 x N row as its sorted columns and values."""
    order = np.argsort(row.indices, kind="stable")
    return row.indices[order].astype(np.int64), row.data[order]


def lookup(columns: np.ndarray, values: np.ndarray) -> Lookup:
    """A vector over sorted ``columns`` read at any columns (0 where it has none)."""

    def at(wanted: np.ndarray) -> np.ndarray:
        if columns.size == 0:
            return np.zeros(wanted.size, dtype=np.float64)
        found = np.minimum(np.searchsorted(columns, wanted), columns.size - 1)
        return np.where(columns[found] == wanted, values[found], 0.0)

    return at


@dataclass(frozen=True)
class Vectors:
    """What an explanation reads of the weights: the weight vector, what the ratings add, the keywords."""

    values: Lookup
    learned: Lookup
    keywords: Lookup

    @classmethod
    def of(cls, weights: Weights) -> Vectors:
        return cls(*(lookup(weights.columns, v) for v in (weights.values, weights.learned, weights.keywords)))


@dataclass(frozen=True)
class Meaning:
    """A pick's place in the embedding space, when it is embedded and the subscriber has a semantic part:
    its ``embedding``, and ``contribution`` = scale · (embedding − the window's mean embedding), whose product
    with a part of the subscriber's vector is what that part added to the score."""

    embedding: np.ndarray
    contribution: np.ndarray


@dataclass(frozen=True)
class Vocabulary:
    """The corpus' document frequencies, to quote only terms a reader recognises."""

    df: np.ndarray
    papers: int

    def recognised(self, columns: np.ndarray) -> np.ndarray:
        df = self.df[columns]
        rare = max(TERM_MIN_DF, TERM_MIN_SHARE * self.papers)
        return (df >= rare) & (df <= max(TERM_MAX_SHARE * self.papers, TERM_COMMON))


def explain(
    weights: Weights,
    row: Entries,
    own: Entries,
    text: str,
    liked_rows: Callable[[tuple[Hashable, ...]], sp.csr_matrix],
    title_of: Callable[[Hashable], str],
    *,
    vectors: Vectors | None = None,
    meaning: Meaning | None = None,
    liked_embeddings: Callable[[tuple[Hashable, ...]], np.ndarray | None] | None = None,
    vocabulary: Vocabulary | None = None,
) -> str:
    """A short, true reason why ``weights`` scored the paper (its ``row``, its ``own`` row, its ``text``).
    ``vectors``: the weights as a digest reads them (dense over the day's columns: no search per read);
    searched in ``weights`` otherwise."""
    vectors = vectors or Vectors.of(weights)
    keyword_terms = weights.keyword_weight * float(row[1] @ vectors.keywords(row[0]))
    keyword_meaning = _share(meaning, weights.semantic_keywords)
    from_likes = float(row[1] @ vectors.learned(row[0])) + _share(meaning, weights.semantic_liked)
    if weights.liked and from_likes >= keyword_terms + keyword_meaning:
        latest = weights.liked[-LIKED_COMPARED:]
        nearest = _nearest(latest, row, meaning, liked_rows, liked_embeddings)
        where = "in your library" if weights.from_library(nearest) else "you liked"
        return f"similar to “{textwrap.shorten(title_of(nearest), TITLE_CHARS, placeholder='…')}” {where}"
    keywords = list(weights.terms)
    if keywords and meaning is not None and keyword_meaning > keyword_terms:
        return f"close in meaning to your keyword {_closest_keyword(keywords, meaning.embedding)}"
    if keywords:
        return _keywords_reason(keywords, own, vectors.keywords, text, vocabulary)
    terms = top_terms(own, vectors.values, text, limit=3, vocabulary=vocabulary)
    return f"terms you rated up: {', '.join(terms)}" if terms else "close to your profile"


def _share(meaning: Meaning | None, part: np.ndarray) -> float:
    return float(meaning.contribution @ part) if meaning is not None and part.size else 0.0


def _nearest(
    latest: tuple[Hashable, ...],
    row: Entries,
    meaning: Meaning | None,
    liked_rows: Callable[[tuple[Hashable, ...]], sp.csr_matrix],
    liked_embeddings: Callable[[tuple[Hashable, ...]], np.ndarray | None] | None,
) -> Hashable:
    """The liked paper nearest to the pick: in meaning when both are embedded, else in words."""
    if meaning is not None and liked_embeddings is not None:
        vectors = liked_embeddings(latest)
        if vectors is not None and np.abs(vectors).sum() > 0:
            return latest[int(np.argmax(vectors @ meaning.embedding))]
    paper = sp.csr_matrix((row[1], row[0], [0, row[0].size]), shape=(1, N_FEATURES))
    return latest[int(np.argmax(sparse_dot(liked_rows(latest), paper)))]


def _closest_keyword(keywords: list[str], embedding: np.ndarray) -> str:
    if len(keywords) == 1:
        return keywords[0]
    similarity = [
        float(vector @ embedding) if (vector := keyword_vector((k,))) is not None else 0.0 for k in keywords
    ]
    return keywords[int(np.argmax(similarity))]


def _keywords_reason(
    keywords: list[str], own: Entries, query: Lookup, text: str, vocabulary: Vocabulary | None
) -> str:
    """The keywords the paper mentions and up to two more terms of the keyword vector, or, when it mentions
    none, the terms of the keyword vector (the expanded keywords) that scored it."""
    matched = [k for k in keywords if _mentions(k, text)]
    terms = top_terms(own, query, text, limit=3, vocabulary=vocabulary)
    if matched:
        extra = [t for t in terms if not any(t in k.lower() or k.lower() in t for k in matched)]
        tail = f"; also {', '.join(extra[:2])}" if extra else ""
        return f"mentions your keyword{'s' if len(matched) > 1 else ''} {', '.join(matched[:3])}{tail}"
    if terms:
        return f"related to your keywords ({', '.join(keywords[:3])}) through: {', '.join(terms)}"
    return f"close to your keywords ({', '.join(keywords[:3])})"


def top_terms(
    row: Entries, weights: Lookup, text: str, limit: int, vocabulary: Vocabulary | None = None
) -> list[str]:
    """The paper's word terms with the largest positive contribution to weights · row, none contained in
    another one chosen (and, given the corpus' ``vocabulary``, only terms a reader recognises)."""
    terms, columns = _text_terms(text)
    if not terms:
        return []
    contribution = lookup(*row)(columns) * weights(columns)
    if vocabulary is not None:
        contribution = np.where(vocabulary.recognised(columns), contribution, 0.0)
    order = np.argsort(-contribution, kind="stable")
    chosen: list[str] = []
    for i in order[contribution[order] > 0]:
        term = terms[i]
        if not any(term in c or c in term for c in chosen):
            chosen.append(term)
        if len(chosen) == limit:
            break
    return chosen


# Every subscriber's picks come from the same few hundred top candidates and a few thousand keywords: a
# search per pick and keyword was 5% of a digest (bench_daily).
@lru_cache(maxsize=65_536)
def _mentions(keyword: str, text: str) -> bool:
    return phrase_pattern(keyword).search(text) is not None


@lru_cache(maxsize=4096)
def _text_terms(text: str) -> tuple[list[str], np.ndarray]:
    """A paper's distinct word terms and their columns; cached, as a paper is explained to many readers."""
    terms = sorted(set(ANALYZER(text)))
    return terms, term_columns(terms) if terms else np.zeros(0, dtype=np.int64)
