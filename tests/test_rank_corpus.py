from __future__ import annotations

import numpy as np
import pytest
from rank_papers import PAPERS

from digest.rank import corpus as corpus_module
from digest.rank.corpus import Corpus
from digest.rank.tfidf import BLOCK


def _corpus(n: int) -> Corpus:
    return Corpus.from_texts(list(range(n)), [f"{t}\n{a}" for t, a in PAPERS[:n]])


def test_rows_are_unit_length() -> None:
    norms = np.sqrt(_corpus(len(PAPERS)).matrix.multiply(_corpus(len(PAPERS)).matrix).sum(axis=1))
    assert np.allclose(np.asarray(norms).ravel(), 1.0, atol=1e-5)


def test_extending_the_corpus_keeps_the_feature_space_and_updates_idf() -> None:
    grown = _corpus(6)
    before_columns = set(grown.matrix[0].indices)
    before_version = grown.version
    grown.extend(list(range(6, len(PAPERS))), [f"{t}\n{a}" for t, a in PAPERS[6:]])
    fresh = _corpus(len(PAPERS))
    # The same columns stay; a character 4-gram joins once a second paper has it (MIN_DF).
    assert before_columns <= set(grown.matrix[0].indices)
    assert grown.version > before_version
    assert np.allclose(grown.matrix.toarray(), fresh.matrix.toarray(), atol=1e-6)


def test_extending_with_known_ids_changes_nothing() -> None:
    corpus = _corpus(4)
    version = corpus.version
    corpus.extend([0, 1], ["other text", "more text"])
    assert (len(corpus), corpus.version) == (4, version)


def test_background_mean_is_the_mean_row_of_the_papers_older_than_the_background_age() -> None:
    texts = [f"{t}\n{a}" for t, a in PAPERS]
    corpus = Corpus(background_age=2.0)
    corpus.extend(list(range(6)), texts[:6], [0.0, 0.0, 1.0, 1.0, 1.5, 1.5])
    assert corpus.background_mean() is None  # nothing is 2 days older than the newest paper yet
    corpus.extend(list(range(6, len(texts))), texts[6:], 3.0)
    expected = np.asarray(corpus.matrix[[0, 1, 2, 3]].mean(axis=0)).ravel()
    assert np.allclose(corpus.background_mean(), expected, atol=1e-7)
    version = corpus.version
    corpus.set_background_age(5.0)
    assert corpus.version == version + 1 and corpus.background_mean() is None


def test_papers_added_without_a_time_are_seen_now() -> None:
    import time

    corpus = Corpus.from_texts([1], ["A paper about robots"])
    assert abs(corpus.seen[0] - time.time() / corpus_module.DAY) < 1.0


# --- short papers smoothed by their nearest papers --------------------------------------------------------
TITLES = [
    "Graph neural networks for molecular property prediction",
    "Message passing networks predict molecular properties",
    "Molecular graphs and property prediction benchmarks",
    "Equivariant message passing for molecules",
    "Protein folding with attention",
    "Attention models of protein structure",
    "Protein structure prediction from sequence alone",
    "Reinforcement learning for robot grasping",
    "Grasping unknown objects with deep reinforcement learning",
    "Robot manipulation from human videos",
]


def _titles(monkeypatch: pytest.MonkeyPatch, **constants: float) -> Corpus:
    """The titles above as a corpus, with smoothing constants set for a corpus this small (by default
    no feature is rare enough below 600 papers)."""
    monkeypatch.setattr(corpus_module, "NEIGHBOUR_MAX_SHARE", 1.0)
    monkeypatch.setattr(corpus_module, "NEIGHBOUR_MAX_DF", 3)
    for name, value in constants.items():
        monkeypatch.setattr(corpus_module, name, value)
    return Corpus.from_texts(list(range(len(TITLES))), TITLES)


def _reference(corpus: Corpus) -> np.ndarray:
    """``Corpus.matrix`` computed the slow, obvious way: dense rows, every pair compared."""
    own = corpus.own(np.arange(len(corpus))).toarray().astype(np.float64)
    rare = (corpus.df > 0) & (corpus.df <= corpus_module.NEIGHBOUR_MAX_DF)
    sims = own[:, rare] @ own[:, rare].T
    np.fill_diagonal(sims, -1.0)
    words = (own[:, :BLOCK] != 0).sum(axis=1)
    share = corpus_module.SHORT_MU / (corpus_module.SHORT_MU + words)
    rows = own.copy()
    for i in np.flatnonzero(share >= corpus_module.MIN_BORROW):
        found = [j for j in np.argsort(-sims[i], kind="stable") if sims[i, j] > 0][: corpus_module.NEIGHBOURS]
        if found:
            rows[i] = own[i] + share[i] * own[found].mean(axis=0)
            rows[i] /= np.linalg.norm(rows[i])
    return rows


def test_a_short_paper_is_its_own_row_plus_a_share_of_its_nearest_papers_mean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corpus = _titles(monkeypatch)
    assert np.allclose(corpus.matrix.toarray(), _reference(corpus), atol=1e-6)
    assert not np.allclose(corpus.matrix.toarray(), corpus.own(np.arange(len(corpus))).toarray())


def test_a_smoothed_title_scores_words_only_its_neighbours_use(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _titles(monkeypatch)
    encoded = corpus.encode(["benchmarks"])
    [benchmarks] = encoded.indices[encoded.indices < BLOCK]
    assert corpus.own([0])[0, benchmarks] == 0
    assert corpus.matrix[0, benchmarks] > 0  # borrowed from "Molecular graphs and property prediction…"
    assert corpus.matrix[7, benchmarks] == 0  # robot grasping is not near it
    norms = np.sqrt(np.asarray(corpus.matrix.multiply(corpus.matrix).sum(axis=1)).ravel())
    assert np.allclose(norms, 1.0, atol=1e-5)


def test_a_paper_with_an_abstract_keeps_its_own_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # An abstract of ~60 words: it would borrow under MIN_BORROW of its neighbours, so it is not searched.
    abstract = " ".join(f"{t} {a}" for t, a in PAPERS)
    corpus = _titles(monkeypatch)
    corpus.extend([len(TITLES)], [f"{TITLES[0]}\n{abstract}"])
    row = len(TITLES)
    assert np.allclose(corpus.matrix[row].toarray(), corpus.own([row]).toarray())
    assert not np.allclose(corpus.matrix[0].toarray(), corpus.own([0]).toarray())


def test_below_six_hundred_papers_no_feature_is_rare_enough_to_smooth_by() -> None:
    corpus = Corpus.from_texts(list(range(len(TITLES))), TITLES)
    assert np.array_equal(corpus.matrix.toarray(), corpus.own(np.arange(len(corpus))).toarray())


def test_a_papers_own_row_is_its_row_without_smoothing(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = np.array([5, 0, 9, 0])
    unsmoothed = Corpus.from_texts(list(range(len(TITLES))), TITLES).matrix[rows]  # < 600 papers: as is
    corpus = _titles(monkeypatch)
    assert np.allclose(corpus.own(rows).toarray(), unsmoothed.toarray(), atol=1e-7)
    assert not np.allclose(corpus.matrix[rows].toarray(), unsmoothed.toarray())
