"""Why a paper was picked, in one short and true line: the liked paper nearest to it, or the keywords and
terms that scored it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Hashable
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from digest.rank.corpus import Corpus
from digest.rank.model import Profile
from digest.rank.tfidf import ANALYZER, phrase_pattern, term_columns
from digest.rank.vectors import sparse_dot, values_at

TITLE_CHARS = 80  # a liked paper's title is shortened to this many characters


def explain(
    profile: Profile, corpus: Corpus, paper_id: Hashable, text: str, title_of: Callable[[Hashable], str]
) -> str:
    """A short, true reason why ``profile`` scored the paper: the liked paper nearest to this one when the
    ratings drove its score more than the keywords, otherwise the keywords and terms that scored it."""
    parts = profile.parts(corpus)
    row = corpus.matrix[corpus.index[paper_id]]
    from_likes = float(sparse_dot(row, parts.learned)[0])
    from_keywords = parts.keyword_weight * float(sparse_dot(row, parts.keywords)[0])
    if parts.liked_rows.size and from_likes >= from_keywords:
        similar = sparse_dot(corpus.matrix[parts.liked_rows], row)
        nearest = corpus.ids[int(parts.liked_rows[int(np.argmax(similar))])]
        return f"similar to “{textwrap.shorten(title_of(nearest), TITLE_CHARS, placeholder='…')}” you liked"
    return _terms_reason(profile.keywords, corpus.own([corpus.index[paper_id]]), parts.weights, text)


def _terms_reason(keywords: list[str], row: sp.csr_matrix, weights: sp.csr_matrix, text: str) -> str:
    matched = [k for k in keywords if phrase_pattern(k).search(text)]
    terms = top_terms(row, weights, text, limit=3)
    if matched:
        extra = [t for t in terms if not any(t in k.lower() for k in matched)]
        tail = f"; also {', '.join(extra[:2])}" if extra else ""
        return f"mentions your keyword{'s' if len(matched) > 1 else ''} {', '.join(matched[:3])}{tail}"
    if terms and keywords:
        return f"related to your keywords ({', '.join(keywords[:3])}) through: {', '.join(terms)}"
    return f"terms you rated up: {', '.join(terms)}" if terms else "close to your profile"


def top_terms(row: sp.csr_matrix, weights: sp.csr_matrix, text: str, limit: int) -> list[str]:
    """The paper's word terms with the largest positive contribution to weights · row, none contained in
    another one chosen."""
    terms, columns = _text_terms(text)
    if not terms:
        return []
    contribution = values_at(row, columns) * values_at(weights, columns)
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
