"""A text's TF-IDF row in a stable hashed space: term counts, corpus statistics (df, IDF), weighing.

Hashed, not a fitted vocabulary: a ``TfidfVectorizer`` renumbers its columns at each refit, which would
silently invalidate every stored subscriber vector; a ``HashingVectorizer`` maps each feature to a fixed
column, so only the IDF moves as papers arrive. Two blocks side by side, each made unit length so they
weigh the same: words (unigrams + bigrams, so a keyword phrase also matches as a phrase) and character
4-grams within words (so "robot", "robots" and "robotic" overlap and short titles still match).

``TermStatistics`` is all a corpus needs to weigh a text (document frequencies and their count), kept
apart from the rows of the papers themselves (``digest.rank.corpus``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

BLOCK = 2**20  # columns per block
N_FEATURES = 2 * BLOCK  # words in [0, BLOCK), character 4-grams in [BLOCK, 2 * BLOCK)
# (words, character 4-grams): a feature seen in fewer papers weighs 0. A character 4-gram only one paper
# has relates it to no other (mostly noise or a typo); a word does count, as a typed keyword may match a
# single new paper.
MIN_DF = (1, 2)
TOKEN_PATTERN = r"(?u)\b[^\W\d_][\w\-]*\w\b"  # words of 2+ chars starting with a letter (keeps "3d-gan" out)


def make_vectorizer() -> HashingVectorizer:
    return HashingVectorizer(
        n_features=BLOCK,
        ngram_range=(1, 2),
        stop_words="english",
        token_pattern=TOKEN_PATTERN,
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )


def make_char_vectorizer() -> HashingVectorizer:
    return HashingVectorizer(
        n_features=BLOCK,
        analyzer="char_wb",
        ngram_range=(4, 4),
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )


VECTORIZER = make_vectorizer()
CHAR_VECTORIZER = make_char_vectorizer()
ANALYZER = VECTORIZER.build_analyzer()
_HASHER = FeatureHasher(n_features=BLOCK, input_type="string", alternate_sign=False)


def term_counts(texts: Iterable[str]) -> sp.csr_matrix:
    """Sublinear term frequencies (1 + log tf) of both blocks in the hashed space, not yet IDF-weighted."""
    texts = list(texts)
    words = VECTORIZER.transform(texts).tocsr()
    chars = char_counts(texts)
    counts = sp.hstack([words, chars], format="csr", dtype=np.float32)
    counts.sort_indices()
    counts.data = 1.0 + np.log(counts.data)
    return counts


def char_counts(texts: Sequence[str]) -> sp.csr_matrix:
    """Exactly ``CHAR_VECTORIZER.transform(texts)``: ``char_wb`` n-grams never cross a word boundary, so a
    text's counts are the sum of its words' counts, and each distinct word of the batch is hashed once."""
    # hand-made: CHAR_VECTORIZER.transform costs 2× on titles (+5% of `digest eval rank`), 2.8× on abstracts
    tokens = [text.lower().split() for text in texts]
    vocabulary: dict[str, int] = {}
    columns = [vocabulary.setdefault(w, len(vocabulary)) for words in tokens for w in words]
    if not vocabulary:
        return sp.csr_matrix((len(texts), BLOCK), dtype=np.float32)
    indptr = np.cumsum([0] + [len(words) for words in tokens])
    per_text = sp.csr_matrix(
        (np.ones(len(columns), dtype=np.float32), columns, indptr), shape=(len(texts), len(vocabulary))
    )
    per_text.sum_duplicates()
    grams = CHAR_VECTORIZER.transform(list(vocabulary)).tocsr()
    return (per_text @ grams).tocsr()


def term_columns(terms: list[str]) -> np.ndarray:
    """The hashed column of each word term (the same hashing the word vectorizer uses)."""
    return _HASHER.transform([[t] for t in terms]).tocsr().indices.astype(np.int64)


@lru_cache(maxsize=1024)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Case-insensitive whole-word/phrase match; any run of spaces or hyphens between the words."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    return re.compile(r"(?<!\w)" + r"[\s\-]+".join(words) + r"(?!\w)", re.IGNORECASE)


def normalize_blocks(weighted: sp.csr_matrix) -> sp.csr_matrix:
    """Each block of each row to unit length, then the row to unit length (a new float32 matrix)."""
    wide = weighted.astype(np.float64, copy=False)  # sums of squares in float64
    blocks = [normalize(wide[:, :BLOCK], copy=False), normalize(wide[:, BLOCK:], copy=False)]  # new slices
    unit = normalize(sp.hstack(blocks, format="csr"), copy=False).astype(np.float32)
    unit.eliminate_zeros()
    return unit


class TermStatistics:
    """Document frequencies over the papers seen so far, and what follows from them: BM25 IDF per column,
    and term counts (``term_counts``) weighed into unit-length TF-IDF rows."""

    def __init__(self) -> None:
        self.n = 0
        self.df = np.zeros(N_FEATURES, dtype=np.int32)
        self._idf: np.ndarray | None = None

    def add(self, counts: sp.csr_matrix) -> None:
        """Count the papers whose term counts these are."""
        self.n += counts.shape[0]
        self.df += np.bincount(counts.indices, minlength=N_FEATURES).astype(np.int32)
        self._idf = None

    def replace(self, before: sp.csr_matrix, after: sp.csr_matrix) -> None:
        """The same papers counted with new texts (``after``) instead of their old ones (``before``)."""
        self.df -= np.bincount(before.indices, minlength=N_FEATURES).astype(np.int32)
        self.df += np.bincount(after.indices, minlength=N_FEATURES).astype(np.int32)
        self._idf = None

    @property
    def idf(self) -> np.ndarray:
        """BM25 IDF, log(1 + (n − df + .5) / (df + .5)), per column; 0 below ``MIN_DF``."""
        if self._idf is None:
            idf = np.log1p((self.n - self.df + 0.5) / (self.df + 0.5)).astype(np.float32)
            idf[:BLOCK][self.df[:BLOCK] < MIN_DF[0]] = 0.0
            idf[BLOCK:][self.df[BLOCK:] < MIN_DF[1]] = 0.0
            self._idf = idf
        return self._idf

    def weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Unit-length TF-IDF rows (each block unit length first) of the given term counts."""
        values = (counts.data * self.idf[counts.indices]).astype(np.float64)  # float32 products
        return normalize_blocks(sp.csr_matrix((values, counts.indices, counts.indptr), shape=counts.shape))
