"""A subscriber model in the form a digest uses it: the weight vector, derived once from the model's state
(``digest.rank.model``) and stored, so scoring a day's digests derives nothing.

The weights are held over the few columns the keywords and the rated papers use; beside the full vector
(``values``, what a paper's score is made of) they keep the two parts an explanation compares (what the
ratings add that pulls papers up, and the keyword vector) and the liked papers (the nearest one is named),
and of the latest of those that came from the subscriber's library, which they were and, for a liked text
(no stored paper), its title and text: all an explanation needs to say "similar to ‹title› in your library".
The semantic part (``digest.rank.semantic``) is the subscriber's vector in the embedding space, with its
keyword and 👍 parts kept apart for the explanation; empty without the ``semantic`` extra.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from digest.rank.model import LikedText, Parts
from digest.rank.semantic import model_id
from digest.rank.tfidf import BLOCK, N_FEATURES

FORMAT = 2  # 2: the semantic part
LIBRARY_KEPT = 50  # the latest liked ids whose library origin is kept: as many as explain.LIKED_COMPARED


def _no_vector() -> np.ndarray:
    return np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class Weights:
    columns: np.ndarray  # sorted int32
    values: np.ndarray  # the weight vector w over ``columns`` (float32)
    learned: np.ndarray  # what the 👍 and the classifier add (float32)
    keywords: np.ndarray  # the expanded keyword vector (float32)
    keyword_weight: float
    prior: float  # the corpus-mean penalty, until a 👎
    liked: tuple[Hashable, ...]
    terms: tuple[str, ...]  # the keywords they were derived for
    model: str = ""  # the embedding model of the semantic part ("" without one)
    semantic: np.ndarray = field(default_factory=_no_vector)  # the subscriber's vector in the embedding space
    semantic_keywords: np.ndarray = field(default_factory=_no_vector)  # its keyword part
    semantic_liked: np.ndarray = field(default_factory=_no_vector)  # its 👍 part
    # Of the latest LIBRARY_KEPT liked ids, those from the library: (id, title, text) for a liked text,
    # (id, None, None) for a stored paper (its title is read where it is shown).
    library: tuple[tuple[Hashable, str | None, str | None], ...] = ()

    @classmethod
    def of(cls, parts: Parts, keywords: Sequence[str]) -> Weights:
        meaning = parts.semantic
        return cls(
            parts.columns.astype(np.int32),
            parts.dense_weights.astype(np.float32),
            parts.learned_values.astype(np.float32),
            parts.keyword_values.astype(np.float32),
            parts.keyword_weight,
            parts.prior,
            tuple(parts.liked_ids),
            tuple(keywords),
            model_id() if meaning is not None else "",
            *(_no_vector(),) * 3 if meaning is None else (meaning.vector, meaning.keywords, meaning.liked),
            _library_of(parts),
        )

    def from_library(self, liked: Hashable) -> bool:
        return any(entry[0] == liked for entry in self.library)

    def liked_text(self, liked: Hashable) -> tuple[str, str] | None:
        """The (title, text) of a liked text of the library; None for a paper."""
        for key, title, text in self.library:
            if key == liked and title is not None and text is not None:
                return title, text
        return None

    def sparse(self, values: np.ndarray | None = None) -> sp.csr_matrix:
        """``values`` (the weight vector by default) as a 1 x N_FEATURES row."""
        dense = self.values if values is None else values
        at = np.flatnonzero(dense)
        return sp.csr_matrix((dense[at], self.columns[at], np.array([0, at.size])), shape=(1, N_FEATURES))

    @property
    def positive_words(self) -> np.ndarray:
        """The word columns with a positive weight: a pick must share one (it is the reason given)."""
        return self.columns[(self.columns < BLOCK) & (self.values > 0)]

    def to_bytes(self) -> bytes:
        head = json.dumps(
            {
                "format": FORMAT,
                "size": int(self.columns.size),
                "keyword_weight": self.keyword_weight,
                "prior": self.prior,
                "liked": list(self.liked),
                "terms": list(self.terms),
                "model": self.model,
                "dimension": int(self.semantic.size),
            }
            | ({"library": [list(entry) for entry in self.library]} if self.library else {})
        ).encode()
        gaps = np.diff(self.columns.astype(np.int64), prepend=0).astype(np.uint32)
        arrays = gaps.tobytes() + self.values.tobytes() + self.learned.tobytes() + self.keywords.tobytes()
        meaning = self.semantic.tobytes() + self.semantic_keywords.tobytes() + self.semantic_liked.tobytes()
        return zlib.compress(len(head).to_bytes(4, "little") + head + arrays + meaning, 1)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Weights:
        raw = zlib.decompress(blob)
        length = int.from_bytes(raw[:4], "little")
        head = json.loads(raw[4 : 4 + length])
        if head.get("format") != FORMAT:
            raise ValueError(f"unknown stored weights format {head.get('format')!r}")
        size, offset = head["size"], 4 + length
        columns = np.cumsum(np.frombuffer(raw, np.uint32, size, offset), dtype=np.int64).astype(np.int32)
        values, learned, keywords = (
            np.frombuffer(raw, np.float32, size, offset + 4 * size * part) for part in (1, 2, 3)
        )
        dimension, offset = head["dimension"], offset + 16 * size
        meaning = (
            np.frombuffer(raw, np.float32, dimension, offset + 4 * dimension * part) for part in (0, 1, 2)
        )
        return cls(
            columns,
            values,
            learned,
            keywords,
            head["keyword_weight"],
            head["prior"],
            tuple(head["liked"]),
            tuple(head["terms"]),
            head["model"],
            *meaning,
            tuple((key, title, text) for key, title, text in head.get("library", [])),
        )


def _library_of(parts: Parts) -> tuple[tuple[Hashable, str | None, str | None], ...]:
    """Of the latest ``LIBRARY_KEPT`` liked ids, those from the library (a liked text's title and text)."""
    texts: Mapping[Hashable, LikedText | None] = parts.library
    latest = [liked for liked in parts.liked_ids[-LIBRARY_KEPT:] if liked in texts]
    return tuple((liked, *((t.title, t.text) if (t := texts[liked]) else (None, None))) for liked in latest)
