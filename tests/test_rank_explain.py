from __future__ import annotations

import pytest
from rank_papers import PAPERS

from digest.rank.corpus import Corpus
from digest.rank.explain import entries, explain, lookup, top_terms
from digest.rank.model import LikedText, Profile
from digest.rank.weights import Weights

TEXTS = [f"{t}\n{a}" for t, a in PAPERS]


def why(profile: Profile, corpus: Corpus, paper: int, title_of=lambda i: PAPERS[i][0]) -> str:  # type: ignore[no-untyped-def]
    """The line a digest gives for ``paper``, from the weights it reads for ``profile``."""
    weights = Weights.of(profile.parts(corpus), profile.keywords)
    row, own = entries(corpus.matrix[paper]), entries(corpus.own([paper]))
    return explain(weights, row, own, TEXTS[paper], corpus.rows_of, title_of)


@pytest.fixture
def corpus() -> Corpus:
    return Corpus.from_texts(list(range(len(PAPERS))), TEXTS)


def test_explanation_names_the_matched_keyword(corpus: Corpus) -> None:
    line = why(Profile(["Query Expansion"]), corpus, 6)
    assert line.startswith("mentions your keyword Query Expansion")


def test_explanation_names_the_liked_paper_when_likes_drive_the_score(corpus: Corpus) -> None:
    profile = Profile([], {8: 1})
    line = why(profile, corpus, 7)
    assert line == "similar to “Robot grasping from point clouds” you liked"


def test_explanation_names_related_terms_when_the_keyword_is_absent(corpus: Corpus) -> None:
    line = why(Profile(["Sound"]), corpus, 2)
    assert line.startswith("related to your keywords (Sound) through:")
    assert "audio" in line


def test_a_long_liked_title_is_shortened_at_a_word_boundary(corpus: Corpus) -> None:
    title = "Robot grasping from point clouds " * 4
    line = why(Profile([], {8: 1}), corpus, 7, lambda i: title)
    quoted = line.removeprefix("similar to “").removesuffix("” you liked")
    assert len(quoted) <= 80 and quoted.endswith(" Robot…") and title.startswith(quoted[:-1])


def test_top_terms_are_the_papers_words_that_weigh_most_in_its_score(corpus: Corpus) -> None:
    weights = Profile(["robot grasping"]).weights(corpus)
    weights = lookup(*entries(weights))
    terms = top_terms(entries(corpus.own([8])), weights, TEXTS[8], limit=2)
    assert terms[0] in {"robot", "grasping", "robot arm", "grasps"} and len(terms) == 2
    assert top_terms(entries(corpus.own([8])), weights, "", limit=2) == []


def test_a_pick_near_a_liked_text_of_the_library_names_it_as_such(corpus: Corpus) -> None:
    text = LikedText("Quadruped robots that walk", "A legged robot learns to walk over rough terrain.")
    weights = Weights.of(Profile([], texts=[text]).parts(corpus), [])

    def rows(ids):  # type: ignore[no-untyped-def]
        assert list(ids) == ["library:0"]
        return corpus.encode([weights.liked_text("library:0")[1]])  # type: ignore[index]

    row, own = entries(corpus.matrix[7]), entries(corpus.own([7]))
    line = explain(weights, row, own, TEXTS[7], rows, lambda i: weights.liked_text(i)[0])  # type: ignore[index]
    assert line == "similar to “Quadruped robots that walk” in your library"


def test_a_pick_near_a_stored_paper_of_the_library_names_it_as_such(corpus: Corpus) -> None:
    profile = Profile([], {8: 1}, library=[8])
    assert why(profile, corpus, 7) == "similar to “Robot grasping from point clouds” in your library"
