from __future__ import annotations

import numpy as np
import pytest
from rank_papers import PAPERS

from digest.rank import encoder
from digest.rank.corpus import Corpus
from digest.rank.explain import Vocabulary, entries, explain, lookup, top_terms
from digest.rank.model import LikedText, Profile
from digest.rank.scoring import Request, pick_block
from digest.rank.weights import Weights
from digest.rank.window import corpus_window

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


# --- each kind of line names the source that drove the score -----------------------------------------------
needs_model = pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")

LIKED_RETRIEVAL = ("Robustness of dense retrieval", "How sensitive dense retrieval models are to typos.")
SOUND_RETRIEVAL = (
    "Sound retrieval for audio clips",
    "Sound events in audio clips are found by a sound and audio retrieval model, robust and sensitive.",
)
COINED = ("CoRAG: sound tagging", "CoRAG tags sound in audio clips; CoRAG improves sound tagging.")


@needs_model
def test_keywords_that_drive_the_score_are_named_though_there_is_a_like() -> None:
    line = why_in_a_window(Profile(["Robotics"], {8: 1}), PAPERS, 7)
    assert line.startswith("related to your keywords (Robotics) through: robot")


def embedded_corpus(papers: list[tuple[str, str]]) -> tuple[Corpus, list[str]]:
    texts = [f"{t}\n{a}" for t, a in papers]
    corpus = Corpus.from_texts(list(range(len(papers))), texts)
    corpus.embed(list(range(len(papers))), encoder.encoder().encode(texts))
    return corpus, texts


def why_in_a_window(profile: Profile, papers: list[tuple[str, str]], paper: int) -> str:
    """The line a digest gives for ``paper`` among ``papers`` (all embedded), as ``pick`` builds it."""
    corpus, texts = embedded_corpus(papers)
    window = corpus_window(corpus, corpus.ids)
    weights = Weights.of(profile.parts(corpus), profile.keywords)
    allowed = np.zeros(len(window), dtype=bool)
    scale = pick_block(window, [Request(weights, allowed, 1)], 0.0)[0].semantic_scale
    return explain(
        weights,
        entries(corpus.matrix[paper]),
        entries(corpus.own([paper])),
        texts[paper],
        corpus.rows_of,
        lambda i: papers[i][0],
        meaning=window.meaning(paper, scale),
        liked_embeddings=corpus.embeddings_of,
        vocabulary=Vocabulary(corpus.df, len(corpus)),
    )


def test_a_keyword_line_quotes_terms_of_the_keywords_never_of_a_liked_paper() -> None:
    papers = [*PAPERS, LIKED_RETRIEVAL, SOUND_RETRIEVAL]
    corpus, texts = embedded_corpus(papers)
    profile = Profile(["Sound"], {len(PAPERS): 1})
    weights = Weights.of(profile.parts(corpus), profile.keywords)
    pick = len(PAPERS) + 1
    line = explain(
        weights, entries(corpus.matrix[pick]), entries(corpus.own([pick])), texts[pick], corpus.rows_of, str
    )
    assert line.startswith("mentions your keyword Sound")
    assert not any(word in line for word in ("retrieval", "robust", "sensitive"))


def test_the_also_tail_skips_a_word_only_the_paper_itself_uses() -> None:
    papers = [*PAPERS, COINED]
    corpus, texts = embedded_corpus(papers)
    weights = Weights.of(Profile(["Sound"]).parts(corpus), ["Sound"])
    pick = len(PAPERS)
    plain = explain(
        weights, entries(corpus.matrix[pick]), entries(corpus.own([pick])), texts[pick], corpus.rows_of, str
    )
    vocabulary = Vocabulary(corpus.df, len(corpus))
    line = explain(
        weights,
        entries(corpus.matrix[pick]),
        entries(corpus.own([pick])),
        texts[pick],
        corpus.rows_of,
        str,
        vocabulary=vocabulary,
    )
    assert "corag" in plain  # the paper's own coinage weighs most in the expanded keywords
    assert line.startswith("mentions your keyword Sound") and "corag" not in line


@needs_model
def test_a_like_that_drives_the_score_names_the_liked_paper_though_there_are_keywords() -> None:
    line = why_in_a_window(Profile(["Cryptography"], {8: 1}), PAPERS, 7)
    assert line == "similar to “Robot grasping from point clouds” you liked"


@needs_model
def test_a_paper_close_in_meaning_to_the_keywords_says_so() -> None:
    assert why_in_a_window(Profile(["Sound"]), PAPERS, 1) == "close in meaning to your keyword Sound"


@needs_model
def test_a_semantic_match_names_the_keyword_it_is_closest_to() -> None:
    line = why_in_a_window(Profile(["Cryptography", "Sound"]), PAPERS, 1)
    assert line == "close in meaning to your keyword Sound"


@needs_model
def test_a_paper_that_mentions_the_keyword_is_explained_by_its_words() -> None:
    line = why_in_a_window(Profile(["Information Retrieval"]), PAPERS, 6)
    assert line.startswith("mentions your keyword Information Retrieval")
