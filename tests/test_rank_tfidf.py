from __future__ import annotations

import numpy as np
from rank_papers import PAPERS

from digest.rank import tfidf
from digest.rank.corpus import Corpus
from digest.rank.tfidf import BLOCK, TermStatistics, phrase_pattern, term_counts


def _corpus(n: int) -> Corpus:
    return Corpus.from_texts(list(range(n)), [f"{t}\n{a}" for t, a in PAPERS[:n]])


def test_rare_terms_weigh_more_than_common_ones() -> None:
    corpus = _corpus(len(PAPERS))
    common, rare = corpus.encode(["audio"]), corpus.encode(["lattice"])
    assert corpus.idf[rare.indices[0]] > corpus.idf[common.indices[0]]


def test_a_keyword_phrase_also_matches_as_a_bigram() -> None:
    corpus = _corpus(len(PAPERS))
    phrase = corpus.encode(["Information Retrieval"])
    words = phrase.indices[phrase.indices < BLOCK]
    assert words.size == 3  # "information", "retrieval" and "information retrieval"
    assert phrase.nnz > 3  # and the character 4-grams they share with the corpus


def test_word_and_character_blocks_weigh_the_same_in_a_unit_row() -> None:
    row = _corpus(len(PAPERS)).matrix[0]
    words = row.data[row.indices < BLOCK]
    chars = row.data[row.indices >= BLOCK]
    assert np.isclose(np.dot(words, words), 0.5, atol=1e-5)
    assert np.isclose(np.dot(chars, chars), 0.5, atol=1e-5)


def test_a_word_only_one_paper_has_still_counts_but_a_lone_character_gram_does_not() -> None:
    corpus = _corpus(len(PAPERS))
    lattice = corpus.encode(["lattice"])
    assert lattice.indices[lattice.indices < BLOCK].size == 1  # a typed keyword can match one new paper
    assert corpus.encode(["zzzz"]).nnz == 0  # a 4-gram no paper shares is noise


def test_phrase_pattern_matches_whole_words_case_insensitively() -> None:
    pattern = phrase_pattern("speech synthesis")
    assert pattern.search("Neural Speech  Synthesis rocks")
    assert pattern.search("speech-synthesis")
    assert not pattern.search("speech synthesiser")
    assert not phrase_pattern("GAN").search("organ transplants")


def test_character_counts_are_exactly_the_character_vectorizers() -> None:
    texts = [f"{t}\n{a}" for t, a in PAPERS] + ["", "Robots  robots ROBOTIC", "3d-gan"]
    expected = tfidf.CHAR_VECTORIZER.transform(texts).tocsr()
    assert (tfidf.char_counts(texts) != expected).nnz == 0


def test_a_terms_column_is_the_word_vectorizers_column_for_it() -> None:
    robot, phrase = tfidf.term_columns(["robot", "information retrieval"])
    assert tfidf.VECTORIZER.transform(["robot"]).indices.tolist() == [robot]
    assert phrase in tfidf.VECTORIZER.transform(["information retrieval"]).indices  # the bigram's column


def test_statistics_count_the_papers_each_feature_occurs_in() -> None:
    statistics = TermStatistics()
    statistics.add(term_counts(["robot grasping", "robot walking"]))
    statistics.add(term_counts(["speech synthesis"]))
    [robot] = tfidf.term_columns(["robot"])
    [speech] = tfidf.term_columns(["speech"])
    assert statistics.n == 3 and statistics.df[robot] == 2 and statistics.df[speech] == 1
    assert statistics.idf[robot] < statistics.idf[speech]


def test_weighed_rows_have_unit_length_blocks_of_equal_weight() -> None:
    statistics = TermStatistics()
    counts = term_counts([f"{t}\n{a}" for t, a in PAPERS])
    statistics.add(counts)
    rows = statistics.weigh(counts).toarray()
    assert np.allclose((rows[:, :BLOCK] ** 2).sum(axis=1), 0.5, atol=1e-5)
    assert np.allclose((rows[:, BLOCK:] ** 2).sum(axis=1), 0.5, atol=1e-5)


def test_a_row_with_only_one_block_is_that_block_at_unit_length() -> None:
    statistics = TermStatistics()
    counts = term_counts(["lattice cryptography", "lattice signatures"])
    statistics.add(counts)
    words_only = counts[:, :BLOCK].tocsr()
    words_only.resize(counts.shape)
    row = statistics.weigh(words_only[:1]).toarray()
    assert np.isclose((row**2).sum(), 1.0, atol=1e-6) and not row[:, BLOCK:].any()
