"""The corpus representation: TF-IDF over title + abstract in a stable, hashed feature space.

Why hashing: papers arrive every day. A fitted vocabulary (``TfidfVectorizer``) renumbers its columns at
each refit, which would silently invalidate every stored subscriber vector. A ``HashingVectorizer`` maps
each unigram and bigram to a fixed column (2**20 of them), so a vector computed today is still comparable
tomorrow. Only the IDF weights move as the corpus grows; they are recomputed from a plain array of
document frequencies, so adding papers costs hashing the new ones plus one pass over the stored counts.
Subscriber models keep their labels (paper ids) and re-derive their vectors whenever the corpus
``version`` changes (``digest.rank.model``), which is cheap because every paper's row is already hashed.
Collisions are negligible: the corpora here hold well under 10**6 distinct terms.

Weighting: sublinear tf (1 + log tf), smoothed IDF, unit-length rows, English stop words removed,
unigrams + bigrams, so a keyword phrase such as "Information Retrieval" also matches as a phrase.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

N_FEATURES = 2**20
TOKEN_PATTERN = r"(?u)\b[^\W\d_][\w\-]*\w\b"  # words of 2+ chars starting with a letter (keeps "3d-gan" out)


def make_vectorizer() -> HashingVectorizer:
    return HashingVectorizer(
        n_features=N_FEATURES,
        ngram_range=(1, 2),
        stop_words="english",
        token_pattern=TOKEN_PATTERN,
        alternate_sign=False,
        norm=None,
        dtype=np.float32,
    )


VECTORIZER = make_vectorizer()
ANALYZER = VECTORIZER.build_analyzer()


def paper_text(title: str, abstract: str | None) -> str:
    return f"{title}\n{abstract}" if abstract else title


def term_counts(texts: Iterable[str]) -> sp.csr_matrix:
    """Sublinear term frequencies (1 + log tf) in the hashed space, not yet IDF-weighted."""
    counts = VECTORIZER.transform(texts).tocsr()
    counts.data = 1.0 + np.log(counts.data)
    return counts


@lru_cache(maxsize=1024)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Case-insensitive whole-word/phrase match; any run of spaces or hyphens between the words."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    return re.compile(r"(?<!\w)" + r"[\s\-]+".join(words) + r"(?!\w)", re.IGNORECASE)


class Corpus:
    """All known papers as unit-length TF-IDF rows; ``extend`` adds papers without refitting anything."""

    def __init__(self) -> None:
        self.ids: list[Hashable] = []
        self.index: dict[Hashable, int] = {}
        self._counts: list[sp.csr_matrix] = []
        self.df = np.zeros(N_FEATURES, dtype=np.int32)
        self.version = 0
        self._matrix: sp.csr_matrix | None = None

    @classmethod
    def from_texts(cls, ids: Sequence[Hashable], texts: Sequence[str]) -> Corpus:
        corpus = cls()
        corpus.extend(ids, texts)
        return corpus

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, ids: Sequence[Hashable], texts: Sequence[str]) -> None:
        """Add papers (ids already present are skipped); IDF and rows are recomputed lazily."""
        fresh = [(i, t) for i, t in zip(ids, texts, strict=True) if i not in self.index]
        if not fresh:
            return
        counts = term_counts([t for _, t in fresh])
        for paper_id, _ in fresh:
            self.index[paper_id] = len(self.ids)
            self.ids.append(paper_id)
        self._counts.append(counts)
        np.add.at(self.df, counts.indices, 1)
        self.version += 1
        self._matrix = None

    @property
    def idf(self) -> np.ndarray:
        n = len(self.ids)
        return (np.log((1.0 + n) / (1.0 + self.df)) + 1.0).astype(np.float32)

    @property
    def matrix(self) -> sp.csr_matrix:
        """Unit-length TF-IDF rows, in ``ids`` order, under the current IDF."""
        if self._matrix is None:
            if len(self._counts) > 1:
                self._counts = [sp.vstack(self._counts, format="csr")]
            counts = self._counts[0] if self._counts else sp.csr_matrix((0, N_FEATURES), dtype=np.float32)
            self._matrix = self._weigh(counts)
        return self._matrix

    def encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Texts that are not (necessarily) papers, e.g. keyword phrases, weighted like the corpus."""
        return self._weigh(term_counts(texts))

    def rows(self, ids: Iterable[Hashable]) -> np.ndarray:
        """Row numbers of the given ids, skipping unknown ones."""
        return np.array([self.index[i] for i in ids if i in self.index], dtype=np.int64)

    def _weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        weighted = counts.copy()
        weighted.data *= self.idf[weighted.indices]
        return normalize(weighted, norm="l2", copy=False)
