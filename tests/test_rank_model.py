from __future__ import annotations

import warnings

import numpy as np
import pytest
from rank_papers import BORROWING_TITLES, PAPERS, smooth_small_corpora

from digest.rank import model
from digest.rank.corpus import Corpus
from digest.rank.model import Profile

TEXTS = [f"{t}\n{a}" for t, a in PAPERS]


@pytest.fixture
def corpus() -> Corpus:
    return Corpus.from_texts(list(range(len(PAPERS))), TEXTS)


def _ranking(profile: Profile, corpus: Corpus) -> list[int]:
    return list(np.argsort(-profile.score(corpus, corpus.matrix), kind="stable"))


def test_keywords_alone_rank_their_topic_first(corpus: Corpus) -> None:
    ranking = _ranking(Profile(["Information Retrieval"]), corpus)
    assert set(ranking[:3]) == {4, 5, 6}


def test_keyword_expansion_reaches_papers_that_never_use_the_keyword(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached = Profile(["Sound"]).evidence(corpus, corpus.own(np.arange(len(corpus))))
    assert "sound" not in TEXTS[2].lower()
    assert reached[2]  # speaker verification, reached through "audio"
    assert not reached[9]  # cryptography is not reached
    monkeypatch.setattr(model, "EXPANSION_DOCS", 0)
    unexpanded = Corpus.from_texts(list(range(len(PAPERS))), TEXTS)  # expansions are memoised per corpus
    assert not Profile(["Sound"]).evidence(unexpanded, unexpanded.matrix)[2]


def test_until_the_first_dislike_generic_papers_are_held_back(corpus: Corpus) -> None:
    profile = Profile([], {7: 1})
    parts = profile.parts(corpus)
    assert parts.prior == model.PRIOR_WEIGHT
    profile.rate(9, -1)
    assert profile.parts(corpus).prior == 0  # a real 👎 takes the corpus mean's place


def test_enough_ratings_of_both_kinds_train_a_classifier(corpus: Corpus) -> None:
    few = Profile([], {7: 1, 9: -1})
    assert few.parts(corpus).classifier.nnz == 0
    many = Profile([], {i: (1 if i in (7, 8, 3) else -1) for i in range(model.CLASSIFIER_MIN_RATINGS)})
    assert many.parts(corpus).classifier.nnz > 0
    scores = many.score(corpus, corpus.matrix)
    assert min(scores[7], scores[8]) > max(scores[i] for i in (4, 5, 6, 9))


def test_a_like_pulls_similar_papers_up(corpus: Corpus) -> None:
    profile = Profile([])
    profile.rate(7, 1)
    assert _ranking(profile, corpus)[:2] == [7, 8]


def test_a_dislike_pushes_similar_papers_down(corpus: Corpus) -> None:
    profile = Profile(["diffusion"])
    before = profile.score(corpus, corpus.matrix)
    profile.rate(0, -1)
    after = profile.score(corpus, corpus.matrix)
    assert before[0] > 0 and after[0] < 0  # the speech paper, first-ranked on "diffusion" before
    assert (
        after[11] > after[1] > after[0]
    )  # image diffusion leads; the speech paper's audio neighbour follows


def test_the_latest_rating_of_a_paper_wins(corpus: Corpus) -> None:
    profile = Profile([])
    profile.rate(9, 1)
    profile.rate(9, -1)
    assert profile.labels == {9: -1}
    assert profile.score(corpus, corpus.matrix)[9] < 0


def test_ratings_must_be_plus_or_minus_one() -> None:
    with pytest.raises(ValueError, match="rating"):
        Profile([]).rate(1, 2)


def test_state_round_trips_and_scores_the_same(corpus: Corpus) -> None:
    profile = Profile(["Robotics", "grasping"], {7: 1, 9: -1})
    restored = Profile.from_state(profile.to_state())
    assert (restored.keywords, restored.labels) == (profile.keywords, profile.labels)
    assert np.allclose(restored.score(corpus, corpus.matrix), profile.score(corpus, corpus.matrix))


def test_unknown_state_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        Profile.from_state(b'{"format": 99, "keywords": [], "labels": []}')


def test_a_state_with_a_rating_other_than_up_or_down_is_refused() -> None:
    with pytest.raises(ValueError, match="rating of paper 7 must be"):
        Profile.from_state(b'{"format": 1, "keywords": [], "labels": [[7, 0]]}')


def test_explanation_names_the_matched_keyword(corpus: Corpus) -> None:
    why = Profile(["Query Expansion"]).explain(corpus, 6, TEXTS[6], lambda i: PAPERS[i][0])
    assert why.startswith("mentions your keyword Query Expansion")


def test_explanation_names_the_liked_paper_when_likes_drive_the_score(corpus: Corpus) -> None:
    profile = Profile([], {8: 1})
    why = profile.explain(corpus, 7, TEXTS[7], lambda i: PAPERS[i][0])
    assert why == "similar to “Robot grasping from point clouds” you liked"


def test_explanation_names_related_terms_when_the_keyword_is_absent(corpus: Corpus) -> None:
    why = Profile(["Sound"]).explain(corpus, 2, TEXTS[2], lambda i: PAPERS[i][0])
    assert why.startswith("related to your keywords (Sound) through:")
    assert "audio" in why


def _weights_close(a: Profile, b: Profile, corpus: Corpus) -> bool:
    return np.allclose(a.weights(corpus).toarray(), b.weights(corpus).toarray(), atol=1e-6)


def test_a_rating_after_derivation_updates_the_model_like_a_fresh_derivation(corpus: Corpus) -> None:
    labels = {i: (1 if i in (7, 8, 3) else -1) for i in range(model.CLASSIFIER_MIN_RATINGS)}
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
    assert list(profile.parts(corpus).liked_rows) == list(fresh.parts(corpus).liked_rows)


def test_an_update_before_a_classifier_exists_matches_a_fresh_derivation(corpus: Corpus) -> None:
    profile = Profile(["Sound"])
    profile.parts(corpus)  # keywords only: the rated columns are the keyword vector's
    for paper in (0, 2, 9):
        profile.rate(paper, 1 if paper != 9 else -1)
        profile.parts(corpus)
    assert _weights_close(profile, Profile(["Sound"], profile.labels), corpus)


def test_a_new_corpus_version_derives_the_model_again(corpus: Corpus) -> None:
    profile = Profile(["robot"], {7: 1})
    first = profile.parts(corpus)
    corpus.extend(["new"], ["Robots that learn to grasp"])
    assert profile.parts(corpus) is not first
    assert _weights_close(profile, Profile(["robot"], {7: 1}), corpus)


def test_a_copy_rates_without_touching_the_original(corpus: Corpus) -> None:
    original = Profile(["robot"], {7: 1})
    parts = original.parts(corpus)
    twin = original.copy()
    twin.rate(9, -1)
    assert twin.parts(corpus).prior == 0
    assert original.labels == {7: 1} and original.parts(corpus) is parts and parts.prior > 0


def _liblinear(features, liked: np.ndarray, background) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The problem as scikit-learn's liblinear states it on the sparse rows, solved to convergence."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n, n_liked = liked.size, int(liked.sum())
    weights = np.concatenate(
        [np.where(liked, n / (2 * n_liked), n / (2 * (n - n_liked))), [model.BACKGROUND_SHARE * n]]
    )
    reference = LogisticRegression(
        C=model.CLASSIFIER_C, solver="liblinear", dual=True, tol=1e-10, max_iter=100_000
    ).fit(
        sp.vstack([features, sp.csr_matrix(background)]).astype(np.float64),
        np.concatenate([np.where(liked, 1.0, -1.0), [-1.0]]),
        sample_weight=weights,
    )
    return reference.coef_.ravel()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_classifier_is_liblinears_logistic_regression_solved_in_kernel_form() -> None:
    """Same problem as ``LogisticRegression(solver="liblinear")`` on the rows (intercept penalised, 👍/👎
    balanced, the background weighing ``BACKGROUND_SHARE`` times all the ratings): same coefficients."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    features = sp.random(60, 500, density=0.05, format="csr", random_state=1, dtype=np.float32)
    background = np.asarray(features.mean(axis=0)).ravel().astype(np.float64)
    liked = rng.random(60) < 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged within the budget
        coef = model._classifier(model._gram(features), features, liked, background)
    reference = _liblinear(features, liked, background)
    assert _cosine(coef, reference) > 0.99999 and np.allclose(coef, reference, rtol=1e-3, atol=1e-3)


def test_two_rated_papers_with_the_same_text_still_train_the_classifier() -> None:
    """Identical rows make the Gram matrix singular; the fit must still be the liblinear one."""
    import scipy.sparse as sp

    base = sp.random(20, 300, density=0.1, format="csr", random_state=2, dtype=np.float32)
    features = sp.vstack([base, base[:2]], format="csr")
    liked = np.arange(22) % 3 == 0
    background = np.asarray(base.mean(axis=0)).ravel().astype(np.float64)
    coef = model._classifier(model._gram(features), features, liked, background)
    assert _cosine(coef, _liblinear(features, liked, background)) > 0.9999


def test_the_gram_matrix_grown_click_by_click_is_the_one_computed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also once older rows leave the classifier's window of the latest ``CLASSIFIER_MAX_RATINGS``, and
    with columns used densely (``GRAM_DENSE_MIN``) and sparsely."""
    import scipy.sparse as sp

    monkeypatch.setattr(model, "CLASSIFIER_MAX_RATINGS", 7)
    monkeypatch.setattr(model, "GRAM_DENSE_MIN", 3)
    rows = sp.random(12, 200, density=0.2, format="csr", random_state=3, dtype=np.float32)
    gram = model._gram(rows[:2])
    for end, added in ((3, 1), (6, 3), (8, 2), (9, 1), (12, 3)):
        window = rows[max(0, end - 7) : end]
        gram = model._grown_gram(gram, window, added)
        assert np.allclose(gram, (window @ window.T).toarray(), atol=1e-6)
    assert gram.shape == (7, 7)


def test_the_classifier_learns_from_the_latest_ratings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "CLASSIFIER_MAX_RATINGS", 10)
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


def test_the_mean_older_paper_teaches_the_classifier_which_liked_terms_every_paper_has() -> None:
    """👍 and 👎 both come from shown papers; the mean older paper says "learning" is no reason to like."""
    old = [f"Learning {topic} with deep learning models" for topic in ("graphs", "vision", "text", "speech")]
    liked = [f"Robot grasping learning {n}" for n in range(6)]
    disliked = [f"Cryptographic protocol audit {n}" for n in range(6)]
    texts = old * 10 + liked + disliked
    ids = list(range(len(texts)))
    seen = [0.0] * 40 + [10.0] * 12
    labels = {40 + i: 1 for i in range(6)} | {46 + i: -1 for i in range(6)}

    def weight_of(word: str, corpus: Corpus) -> float:
        return float(Profile([], labels).parts(corpus).classifier[0, model.term_columns([word])[0]])

    with_background = Corpus.from_texts(ids, texts, seen)
    assert with_background.background_mean() is not None
    without = Corpus.from_texts(ids, texts, 10.0)  # everything new: no background
    assert without.background_mean() is None
    assert weight_of("learning", with_background) < weight_of("learning", without)
    assert weight_of("grasping", with_background) > 0


def test_scoring_many_profiles_at_once_equals_scoring_each(corpus: Corpus) -> None:
    profiles = [Profile(["Sound"]), Profile(["Information Retrieval"]), Profile()]
    profiles[2].rate(4, 1)
    profiles[2].rate(9, -1)
    profiles += [Profile(["lattice"]) for _ in range(model.SCORE_CHUNK)]  # more than one chunk
    rows = corpus.matrix[[0, 3, 5, 8, 9]]
    together = model.score_many(profiles, corpus, rows)
    assert together.shape == (len(profiles), 5)
    assert np.allclose(together, [p.score(corpus, rows) for p in profiles], atol=1e-6)


def test_a_cold_derivation_reads_the_rated_rows_as_the_corpus_holds_them(corpus: Corpus) -> None:
    rows = np.array([7, 2, 2, 0])
    indptr, indices, data = model._gathered(corpus.matrix, rows)
    expected = corpus.matrix[rows]
    assert np.array_equal(indptr, expected.indptr)
    assert np.array_equal(indices, expected.indices) and np.array_equal(data, expected.data)


def test_a_word_a_short_paper_only_borrowed_is_no_reason_to_pick_it(monkeypatch: pytest.MonkeyPatch) -> None:
    smooth_small_corpora(monkeypatch)
    corpus = Corpus.from_texts(list(range(len(BORROWING_TITLES))), BORROWING_TITLES)
    profile = Profile(["benchmarks"])
    everyone = np.arange(len(BORROWING_TITLES))
    assert profile.evidence(corpus, corpus.matrix)[1]  # its smoothed row has "benchmarks"
    assert not profile.evidence(corpus, corpus.own(everyone))[1]  # its own title does not
    assert list(np.flatnonzero(profile.evidence(corpus, corpus.own(everyone)))) == [0]
