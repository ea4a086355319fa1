from __future__ import annotations

import numpy as np
import pytest
from rank_papers import PAPERS

from digest.rank import encoder, semantic
from digest.rank.corpus import Corpus
from digest.rank.model import Profile
from digest.rank.scoring import Request, pick_block, score_block
from digest.rank.weights import Weights
from digest.rank.window import corpus_window

pytestmark = pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")
TEXTS = [f"{t}\n{a}" for t, a in PAPERS]
IDS = list(range(len(PAPERS)))


def _corpus(embedded: list[int] | None = None) -> Corpus:
    corpus = Corpus.from_texts(IDS, TEXTS)
    chosen = IDS if embedded is None else embedded
    corpus.embed(chosen, encoder.encoder().encode([TEXTS[i] for i in chosen]))
    return corpus


def _weights(profile: Profile, corpus: Corpus) -> Weights:
    return Weights.of(profile.parts(corpus), profile.keywords)


def test_the_keyword_vector_weighs_every_keyword_the_same() -> None:
    sound, robots = encoder.encoder().encode(["Sound", "Robotics"])
    both = semantic.keyword_vector(("Sound", "Robotics"))
    assert np.allclose(both, (sound + robots) / np.linalg.norm(sound + robots), atol=1e-5)


def test_the_semantic_parts_are_the_keywords_and_the_unit_means_of_the_likes_and_dislikes() -> None:
    corpus = _corpus()
    parts = semantic.parts_for(corpus, ["Sound"], {0: 1, 1: 1, 9: -1})
    vectors = corpus.embeddings_of([0, 1, 9])
    liked = vectors[:2].mean(axis=0)
    assert np.allclose(parts.keywords, semantic.KEYWORDS * semantic.keyword_vector(("Sound",)))
    assert np.allclose(parts.liked, semantic.LIKED * liked / np.linalg.norm(liked), atol=1e-6)
    assert np.allclose(parts.disliked, semantic.DISLIKED * vectors[2], atol=1e-6)
    assert np.allclose(parts.vector, parts.keywords + parts.liked - parts.disliked)


def test_a_liked_paper_not_yet_embedded_counts_in_no_mean() -> None:
    corpus = _corpus(embedded=[1])
    parts = semantic.parts_for(corpus, [], {0: 1, 1: 1})
    assert np.allclose(parts.liked, corpus.embeddings_of([1])[0], atol=1e-6)


def test_a_score_is_the_z_blend_of_tfidf_and_meaning_written_in_tfidf_units() -> None:
    corpus = _corpus()
    window = corpus_window(corpus, IDS)
    weights = _weights(Profile(["Sound"], {0: 1, 9: -1}), corpus)
    plain = Weights(
        *[getattr(weights, f) for f in ("columns", "values", "learned", "keywords")], 1.0, 0.0, (), ()
    )
    tfidf = score_block(window, [plain])[0] - weights.prior * window.generality
    meaning = window.embeddings @ weights.semantic
    expected = tfidf + semantic.WEIGHT * tfidf.std() / meaning.std() * (meaning - meaning.mean())
    assert np.allclose(score_block(window, [weights])[0], expected, atol=1e-5)


def test_a_candidate_not_yet_embedded_is_scored_on_tfidf_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus(embedded=IDS[1:])
    with monkeypatch.context() as without:
        without.setattr(encoder, "installed", lambda: False)
        without.setitem(encoder._LOADED, "default", None)
        texts_only = Corpus.from_texts(IDS, TEXTS)
        weights = _weights(Profile(["Sound"]), texts_only)
        tfidf = score_block(corpus_window(texts_only, IDS), [weights])[0]
    assert weights.semantic.size == 0
    blended = score_block(corpus_window(corpus, IDS), [_weights(Profile(["Sound"]), corpus)])[0]
    assert blended[0] == pytest.approx(tfidf[0]) and not np.allclose(blended[1:], tfidf[1:])


def test_a_window_with_nothing_embedded_ranks_as_without_the_extra() -> None:
    corpus = Corpus.from_texts(IDS, TEXTS)
    weights = _weights(Profile(["Sound"], {0: 1}), corpus)
    window = corpus_window(corpus, IDS)
    assert weights.semantic.size == encoder.DIMENSION and window.centred is None
    plain = Weights(
        *[getattr(weights, f) for f in ("columns", "values", "learned", "keywords")], 1.0, 0.0, (), ()
    )
    expected = score_block(window, [plain])[0] - weights.prior * window.generality
    assert np.allclose(score_block(window, [weights])[0], expected)


def test_a_paper_close_in_meaning_may_be_picked_without_a_shared_word() -> None:
    corpus = _corpus()
    window = corpus_window(corpus, IDS)
    weights = _weights(Profile(["Sound"]), corpus)
    chosen = pick_block(window, [Request(weights, np.ones(len(window), dtype=bool), 4)], 0.0)[0]
    assert 1 in [i for i, _ in chosen.picks]  # music source separation: no word of "Sound"
    assert chosen.semantic_scale > 0
