"""The semantic part of a subscriber model, and its blend with the TF-IDF score.

In the sentence-embedding space (``digest.rank.encoder``) a subscriber is one vector

    u = KEYWORDS · unit(mean of unit(embed(keyword))) + LIKED · unit(mean 👍 embedding)
        − DISLIKED · unit(mean 👎 embedding)

and a candidate with embedding e scores s = u · e. Per subscriber, over the window's embedded candidates, the
blend is z(TF-IDF score) + WEIGHT · z(s), written in TF-IDF units so a score floor keeps its meaning:

    score = t + WEIGHT · σ(t) / σ(s) · (s − mean(s))

z-scores make the blend independent of how large a subscriber's TF-IDF scores happen to be (keywords alone,
or a classifier at weight 3). A candidate not yet embedded adds 0: it is ranked on TF-IDF alone, as every
candidate is without the ``semantic`` extra.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from digest.rank import encoder
from digest.rank.source import PaperSource
from digest.rank.vectors import unit

# Chosen on the dev files and the second split (docs/ranking.md, "The semantic part").
KEYWORDS = 1.0
LIKED = 1.0
DISLIKED = 1.0
WEIGHT = 1.0


@dataclass(frozen=True)
class SemanticParts:
    """The subscriber's vector by source (float32, DIMENSION each), kept apart for the explanation."""

    keywords: np.ndarray
    liked: np.ndarray
    disliked: np.ndarray

    @property
    def vector(self) -> np.ndarray:
        return (self.keywords + self.liked - self.disliked).astype(np.float32)


def model_id() -> str:
    """The embedding model the semantic parts are derived for; "" without the ``semantic`` extra."""
    return encoder.MODEL_ID if encoder.installed() else ""


def parts_for(
    source: PaperSource, keywords: Sequence[str], labels: Mapping[Hashable, int]
) -> SemanticParts | None:
    """The semantic parts for these keywords and ratings (papers not embedded yet count in no mean); None
    without the ``semantic`` extra."""
    if encoder.encoder() is None:
        return None
    kw = keyword_vector(tuple(keywords)) if keywords else None
    ids = list(labels)
    vectors = source.embeddings_of(ids) if ids else None
    zero = np.zeros(encoder.DIMENSION, dtype=np.float32)
    liked = disliked = zero
    if vectors is not None:
        values = np.fromiter(labels.values(), dtype=np.int8, count=len(ids))
        embedded = vectors.any(axis=1)  # a paper not embedded yet counts in no mean
        liked, disliked = (_centroid(vectors, embedded & side) for side in (values > 0, values < 0))
    return SemanticParts(
        zero if kw is None else (KEYWORDS * kw).astype(np.float32), LIKED * liked, DISLIKED * disliked
    )


def keyword_vector(keywords: tuple[str, ...]) -> np.ndarray | None:
    """unit(mean of each keyword's unit embedding): every keyword weighs the same, as in the TF-IDF query."""
    if encoder.encoder() is None or not keywords:
        return None
    return unit(np.mean([phrase_vector(k) for k in keywords], axis=0)).astype(np.float32)


# Per phrase, not per keyword set: subscribers share phrases far more often than whole sets (bench_daily:
# 3,000 subscribers drawing from 400 phrases had ~2,900 distinct sets), and explanations ask per phrase.
# 16,384 phrases are ~25 MB.
@lru_cache(maxsize=16_384)
def phrase_vector(phrase: str) -> np.ndarray:
    """One keyword's unit embedding (the ``semantic`` extra must be installed)."""
    model = encoder.encoder()
    assert model is not None, "phrase_vector needs the semantic extra"
    vector = model.encode([phrase])[0]
    vector.flags.writeable = False  # shared by every caller
    return vector


def _centroid(vectors: np.ndarray, side: np.ndarray) -> np.ndarray:
    """unit(mean) of the rows of ``vectors`` on this ``side`` (zeros when there are none): the unit sum."""
    if not side.any():
        return np.zeros(encoder.DIMENSION, dtype=np.float32)
    return unit(side.astype(np.float32) @ vectors).astype(np.float32)


# --- the blend, for a block of subscribers against a window -----------------------------------------------


def centred(embeddings: np.ndarray, embedded: np.ndarray) -> np.ndarray:
    """The candidates' embeddings minus their mean over the embedded ones, zero rows for the others: their
    product with u is s − mean(s), and a part's share of a pick's contribution is scale · (row · part)."""
    if not embedded.any():
        return np.zeros_like(embeddings, dtype=np.float32)
    return np.where(embedded[:, None], embeddings - embeddings[embedded].mean(axis=0), 0.0).astype(np.float32)


def scales(tfidf: np.ndarray, semantic: np.ndarray, embedded: np.ndarray) -> np.ndarray:
    """Per subscriber (rows of ``tfidf`` and of the centred ``semantic`` scores), WEIGHT · σ(t) / σ(s) over
    the embedded candidates; 0 where s is flat (no semantic part, or nothing embedded)."""
    if not embedded.any():
        return np.zeros(tfidf.shape[0])
    if not embedded.all():
        tfidf, semantic = tfidf[:, embedded], semantic[:, embedded]
    spread_t, spread_s = tfidf.std(axis=1), semantic.std(axis=1)
    return np.where(spread_s > 0, WEIGHT * spread_t / np.where(spread_s > 0, spread_s, 1.0), 0.0)
