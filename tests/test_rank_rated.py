from __future__ import annotations

import numpy as np
import pytest
from rank_papers import PAPERS

from digest.rank import rated
from digest.rank.corpus import Corpus
from digest.rank.model import Profile

TEXTS = [f"{t}\n{a}" for t, a in PAPERS]


@pytest.fixture
def corpus() -> Corpus:
    return Corpus.from_texts(list(range(len(PAPERS))), TEXTS)


def _weights_close(a: Profile, b: Profile, corpus: Corpus) -> bool:
    return np.allclose(a.weights(corpus).toarray(), b.weights(corpus).toarray(), atol=1e-6)


def test_a_rating_after_derivation_updates_the_model_like_a_fresh_derivation(corpus: Corpus) -> None:
    labels = {i: (1 if i in (7, 8, 3) else -1) for i in range(rated.CLASSIFIER_MIN_RATINGS)}
    profile = Profile(["robot"], labels)
    derived = profile.parts(corpus)
    profile.rate(11, 1)  # a new paper: its row is appended to the rated rows
    profile.rate(9, 1)  # a changed rating: only its label moves
    profile.rate(8, 1)  # unchanged: nothing to do
    profile.rate(2, 1)
    profile.rate(2, -1)  # changed and changed back: nothing to do either
    assert profile.parts(corpus) is not derived
    assert profile._rated is not None and profile._rated.ids[-1] == 11
    fresh = Profile(["robot"], profile.labels)
    assert _weights_close(profile, fresh, corpus)
    assert np.allclose(profile.score(corpus, corpus.matrix), fresh.score(corpus, corpus.matrix), atol=1e-6)
    assert list(profile.parts(corpus).liked_ids) == list(fresh.parts(corpus).liked_ids)


def test_an_update_before_a_classifier_exists_matches_a_fresh_derivation(corpus: Corpus) -> None:
    profile = Profile(["Sound"])
    profile.parts(corpus)  # keywords only: the rated columns are the keyword vector's
    for paper in (0, 2, 9):
        profile.rate(paper, 1 if paper != 9 else -1)
        profile.parts(corpus)
    assert _weights_close(profile, Profile(["Sound"], profile.labels), corpus)


def test_the_classifier_learns_from_the_latest_ratings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rated, "CLASSIFIER_MAX_RATINGS", 10)
    texts = TEXTS + [f"{text}\nA follow-up study." for text in TEXTS]  # papers 12-23 echo papers 0-11
    corpus = Corpus.from_texts(list(range(len(texts))), texts)
    recent = {i: (1 if i in (7, 8, 3) else -1) for i in range(10)}

    def classifier(old_rating: int) -> np.ndarray:  # papers 12-15 rated first, then 0-9, then 16
        profile = Profile(["robot"], {i: old_rating for i in (12, 13, 14, 15)} | recent)
        profile.parts(corpus)
        profile.rate(16, 1)  # the window moves on by one
        assert profile._rated is not None and profile._rated.gram.shape == (10, 10)
        cold = Profile(["robot"], profile.labels).parts(corpus).classifier.toarray()
        assert np.allclose(profile.parts(corpus).classifier.toarray(), cold, atol=1e-5)
        return cold

    assert np.abs(classifier(-1)).sum() > 0
    assert np.allclose(classifier(-1), classifier(1), atol=1e-5)  # the older ratings are out of it
    assert not np.allclose(classifier(-1), Profile([], recent).parts(corpus).classifier.toarray())


def test_the_rated_rows_are_the_corpus_rows_over_the_columns_they_and_the_keywords_use(
    corpus: Corpus,
) -> None:
    query = corpus.encode(["robot"])
    built = rated.RatedPapers.build(corpus, query, {7: 1, 2: -1, 0: 1, "unknown": 1})
    expected = corpus.matrix[[7, 2, 0]]
    assert built.ids == (7, 2, 0)
    assert np.array_equal(built.columns, np.union1d(expected.indices, query.indices))
    assert np.array_equal(built.matrix.toarray(), expected[:, built.columns].toarray())
    assert np.array_equal(built.keywords, query[:, built.columns].toarray().ravel())
    assert np.allclose(
        built.sums,
        [expected[[0, 2]].sum(axis=0).A1[built.columns], expected[1, built.columns].toarray().ravel()],
    )
