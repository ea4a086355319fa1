from __future__ import annotations

import numpy as np
from rank_papers import PAPERS

from digest.rank.corpus import Corpus
from digest.rank.model import Profile
from digest.rank.weights import Weights


def _corpus() -> Corpus:
    return Corpus.from_texts(list(range(len(PAPERS))), [f"{t}\n{a}" for t, a in PAPERS])


def _same(a: Weights, b: Weights) -> bool:
    arrays = ("columns", "values", "learned", "keywords", "semantic", "semantic_keywords", "semantic_liked")
    scalars = ("keyword_weight", "prior", "liked", "terms", "model")
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in arrays) and all(
        getattr(a, n) == getattr(b, n) for n in scalars
    )


def test_weights_come_back_from_their_bytes_with_the_semantic_part() -> None:
    corpus = _corpus()
    weights = Weights.of(Profile(["Sound"], {1: 1, 9: -1}).parts(corpus), ["Sound"])
    assert _same(Weights.from_bytes(weights.to_bytes()), weights)


def test_weights_without_a_semantic_part_come_back_without_one(without_semantic: None) -> None:
    weights = Weights.of(Profile(["Sound"]).parts(_corpus()), ["Sound"])
    back = Weights.from_bytes(weights.to_bytes())
    assert back.model == "" and back.semantic.size == 0 and _same(back, weights)
