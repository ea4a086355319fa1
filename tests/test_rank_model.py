from __future__ import annotations

import zlib

import numpy as np
import pytest
from rank_papers import BORROWING_TITLES, PAPERS, smooth_small_corpora

from digest.rank import expansion, model, rated
from digest.rank.corpus import Corpus
from digest.rank.model import LikedText, Profile
from digest.rank.tfidf import term_columns
from digest.rank.weights import Weights

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
    monkeypatch.setattr(expansion, "EXPANSION_DOCS", 0)
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
    many = Profile([], {i: (1 if i in (7, 8, 3) else -1) for i in range(rated.CLASSIFIER_MIN_RATINGS)})
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


def _weights_close(a: Profile, b: Profile, corpus: Corpus) -> bool:
    return np.allclose(a.weights(corpus).toarray(), b.weights(corpus).toarray(), atol=1e-6)


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
        return float(Profile([], labels).parts(corpus).classifier[0, term_columns([word])[0]])

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


def test_a_word_a_short_paper_only_borrowed_is_no_reason_to_pick_it(monkeypatch: pytest.MonkeyPatch) -> None:
    smooth_small_corpora(monkeypatch)
    corpus = Corpus.from_texts(list(range(len(BORROWING_TITLES))), BORROWING_TITLES)
    profile = Profile(["benchmarks"])
    everyone = np.arange(len(BORROWING_TITLES))
    assert profile.evidence(corpus, corpus.matrix)[1]  # its smoothed row has "benchmarks"
    assert not profile.evidence(corpus, corpus.own(everyone))[1]  # its own title does not
    assert list(np.flatnonzero(profile.evidence(corpus, corpus.own(everyone)))) == [0]


# --- a library's liked texts -------------------------------------------------------------------------

ROBOT_TEXT = LikedText(
    "Quadruped robots that walk",
    "A legged robot learns to walk over rough terrain with reinforcement learning.",
)


def test_a_liked_text_pulls_papers_like_it_up_as_a_liked_paper_would(corpus: Corpus) -> None:
    from_text = Profile([], texts=[ROBOT_TEXT])
    assert set(_ranking(from_text, corpus)[:2]) == {7, 8}  # the two robot papers
    assert from_text.parts(corpus).liked_ids == ("library:0",)
    as_paper = Profile([], {7: 1})
    text_liked = from_text.parts(corpus).liked.toarray()
    assert (text_liked @ as_paper.parts(corpus).liked.toarray().T).item() > 0.5  # the 👍 centroids agree


def test_liked_texts_are_weighed_like_the_corpus_and_enter_the_classifier(corpus: Corpus) -> None:
    labels = {i: -1 for i in (0, 1, 2, 4, 5, 6, 9, 10, 11)}
    texts = [ROBOT_TEXT, LikedText("Robot grasping of unknown objects", "A robot arm grasps objects.")]
    profile = Profile([], labels, texts=texts)
    parts = profile.parts(corpus)
    assert parts.classifier.nnz > 0  # 2 liked texts + 9 👎: enough ratings of both kinds
    scores = profile.score(corpus, corpus.matrix)
    assert min(scores[7], scores[8]) > max(scores[i] for i in labels)


def test_a_new_library_replaces_the_liked_texts_and_derives_the_model_again(corpus: Corpus) -> None:
    profile = Profile(["cryptography"], texts=[ROBOT_TEXT])
    first = profile.parts(corpus)
    profile.set_library([], [LikedText("Dense retrieval of passages", None)])
    second = profile.parts(corpus)
    assert second is not first and second.library == {"library:0": LikedText("Dense retrieval of passages")}
    profile.set_library([], [LikedText("Dense retrieval of passages", None)])
    assert profile.parts(corpus) is second  # the same library: nothing to derive


def test_the_library_is_part_of_the_stored_state_and_absent_from_a_state_without_one() -> None:
    profile = Profile(["robots"], {3: 1, 4: -1}, library=[3], texts=[ROBOT_TEXT])
    again = Profile.from_state(profile.to_state())
    assert (again.keywords, again.labels, again.library, again.texts) == (
        ["robots"],
        {3: 1, 4: -1},
        [3],
        [ROBOT_TEXT],
    )
    assert b"library" not in Profile(["robots"], {3: 1}).to_state()  # the format of every model so far
    old = b'{"format": 1, "keywords": ["robots"], "labels": [[3, 1]]}'
    assert Profile.from_state(old).texts == []


def test_weights_keep_what_the_explanation_needs_of_the_library(corpus: Corpus) -> None:
    profile = Profile([], {8: 1, 9: 1}, library=[8], texts=[ROBOT_TEXT])
    weights = Weights.of(profile.parts(corpus), [])
    assert weights.liked == ("library:0", 8, 9)
    assert weights.from_library("library:0") and weights.from_library(8) and not weights.from_library(9)
    assert (
        weights.liked_text("library:0") == (ROBOT_TEXT.title, ROBOT_TEXT.text)
        and weights.liked_text(8) is None
    )
    again = Weights.from_bytes(weights.to_bytes())
    assert again.library == weights.library
    assert b"library" not in zlib.decompress(Weights.of(Profile([], {9: 1}).parts(corpus), []).to_bytes())
