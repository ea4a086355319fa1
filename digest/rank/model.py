"""The subscriber's relevance model: keywords expanded through the corpus, Rocchio on 👍/👎, and a
classifier 👍 vs 👎 (``digest.rank.classifier``) once there are enough ratings of both kinds.

A profile is the subscriber's keywords and latest rating per paper (its whole stored state, plain JSON);
the weights are derived from them in the corpus' TF-IDF space whenever the corpus changes, so they are
always expressed under the current IDF. Score of a paper row x:

    score(x) = w · x − PRIOR · [no 👎 yet] · cos(x, corpus mean)
    w = KEYWORD · expand(keywords) + LIKED · unit(mean(👍 rows) ** LIKED_POWER)
        − DISLIKED · unit(mean(👎 rows)) + CLASSIFIER · unit(classifier coefficients)

Why: the expansion (pseudo-relevance feedback) reaches papers that never use the keyword; unit-length
centroids let the 👍 outweigh the keywords however diverse the liked papers, and ``LIKED_POWER`` < 1
keeps a few liked papers' terms from drowning under those most of them share; the corpus mean stands in
for 👎 until there is one, so generic papers stop winning on common vocabulary; unrated papers are never
negatives (a paper nobody rated may not have been seen).

A library the subscriber imported (``digest.subscribers.library``) adds its stored papers as 👍 ratings, and
its other entries as *liked texts* (title and abstract): rows weighed like any paper's (``encode``), rated 👍
before any click, so they enter the 👍 centroid and the classifier the same way.

A click updates the derived model instead of deriving it again (``digest.rank.rated``): the rated rows
are kept over the few columns they and the keyword vector use, so a rating appends a row, adds it to the
centroids' running sums and grows the classifier's dot products. New keywords, or a corpus grown past
``rated.IDF_DRIFT`` (the IDF moved), derive everything again.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from digest.rank import classifier, semantic
from digest.rank.corpus import paper_text
from digest.rank.expansion import expand_keywords
from digest.rank.rated import RatedPapers
from digest.rank.source import PaperSource
from digest.rank.tfidf import BLOCK, N_FEATURES
from digest.rank.vectors import sparse_dot, unit

STATE_FORMAT = 1
# Chosen by measurement on the dev replay and CiteULike files (README, "Ranking model").
KEYWORD_WEIGHT = 1.0
KEYWORD_HALF_LIFE = 0  # 👍 count at which the keywords weigh half; 0 = they never fade
LIKED_WEIGHT = 1.0
LIKED_POWER = 0.7
DISLIKED_WEIGHT = 1.0
PRIOR_WEIGHT = 0.75  # the corpus mean, subtracted while there is no 👎 yet
CLASSIFIER_WEIGHT = 3.0
SCORE_CHUNK = 64  # profiles scored together by ``score_many``
TEXT_ID_PREFIX = "library:"  # a liked text's id among the rated papers' ("library:0", "library:1", …)


class LikedText(NamedTuple):
    """An entry of the subscriber's library that is no stored paper: its text still counts as a 👍."""

    title: str
    abstract: str | None = None

    @property
    def text(self) -> str:
        return paper_text(self.title, self.abstract)


class Parts:
    """The weight vector's components, kept apart so an explanation can say which one drove a score.

    Held as dense vectors over the few columns the keywords and the rated papers use (``dense_weights``
    is what scoring needs, over ``columns``); the sparse rows only when scoring, an explanation or a test
    asks.
    """

    def __init__(
        self,
        columns: np.ndarray,
        keywords: np.ndarray,
        liked: np.ndarray,
        disliked: np.ndarray,
        classifier: np.ndarray,
        liked_ids: tuple[Hashable, ...],
        n_disliked: int,
        library: Mapping[Hashable, LikedText | None] | None = None,
        meaning: semantic.SemanticParts | None = None,
    ) -> None:
        self.columns = columns
        self.semantic = meaning  # the sentence-embedding part (None without the `semantic` extra)
        self.liked_ids = liked_ids
        # The liked ids that came from the library: a liked text's id → the text, a stored paper's → None.
        self.library: Mapping[Hashable, LikedText | None] = library or {}
        self.prior = 0.0 if n_disliked else PRIOR_WEIGHT  # the corpus-mean penalty, until a 👎
        learned = LIKED_WEIGHT * liked + CLASSIFIER_WEIGHT * classifier
        weights = self.keyword_weight * keywords + learned - DISLIKED_WEIGHT * disliked
        self.dense_weights = weights.astype(np.float32)
        # Kept for the explanation as float32 (a profile may sit in a per-process cache).
        self._keywords = keywords  # shared with the ``RatedPapers`` it came from
        self._liked, self._disliked, self._classifier = (
            v.astype(np.float32) for v in (liked, disliked, classifier)
        )

    @property
    def keyword_weight(self) -> float:
        return _keyword_weight(len(self.liked_ids))

    @property
    def learned_values(self) -> np.ndarray:
        """What the ratings add that pulls papers up (👍 centroid and classifier), over ``columns``."""
        return LIKED_WEIGHT * self._liked + CLASSIFIER_WEIGHT * self._classifier

    @property
    def keyword_values(self) -> np.ndarray:
        """The expanded keyword vector over ``columns``."""
        return self._keywords

    @cached_property
    def weights(self) -> sp.csr_matrix:
        """The weight vector, a 1 x N_FEATURES row."""
        return self._sparse(self.dense_weights)

    @cached_property
    def keywords(self) -> sp.csr_matrix:
        return self._sparse(self._keywords)

    @cached_property
    def liked(self) -> sp.csr_matrix:
        """Unit length, already flattened by LIKED_POWER."""
        return self._sparse(self._liked)

    @cached_property
    def disliked(self) -> sp.csr_matrix:
        return self._sparse(self._disliked)

    @cached_property
    def classifier(self) -> sp.csr_matrix:
        """Unit length; empty until there are enough ratings of both kinds."""
        return self._sparse(self._classifier)

    @cached_property
    def learned(self) -> sp.csr_matrix:
        """What the ratings add that pulls papers up: the 👍 centroid and the classifier."""
        return self._sparse(self.learned_values)

    def _sparse(self, dense: np.ndarray) -> sp.csr_matrix:
        at = np.flatnonzero(dense)
        return sp.csr_matrix(
            (dense[at].astype(np.float32), self.columns[at], np.array([0, at.size])), shape=(1, N_FEATURES)
        )


def _keyword_weight(n_liked: int) -> float:
    return KEYWORD_WEIGHT / (1.0 + n_liked / KEYWORD_HALF_LIFE) if KEYWORD_HALF_LIFE else KEYWORD_WEIGHT


def _flattened(mean: np.ndarray) -> np.ndarray:
    """``mean ** LIKED_POWER``, computed on the non-zero entries only (a fractional power is slow, and
    most columns belong to the keywords or the 👎 rows)."""
    flat = np.zeros_like(mean)
    at = np.flatnonzero(mean)
    flat[at] = np.power(mean[at], LIKED_POWER)
    return flat


class Profile:
    """Keywords + latest rating per paper id (+ the imported library: the stored papers it rated 👍, the
    liked texts of the others); derives ``Parts`` for a corpus and caches them.

    A rating made after the parts were derived is applied as an update of the cached ``RatedPapers`` (its row
    appended and added to the centroids' sums, the classifier refitted on the grown dot products); a new
    corpus version or new keywords derive everything again.
    """

    def __init__(
        self,
        keywords: Iterable[str] = (),
        labels: Mapping[Hashable, int] | None = None,
        *,
        library: Iterable[Hashable] = (),
        texts: Iterable[LikedText] = (),
    ) -> None:
        self.keywords = [k.strip() for k in keywords if k.strip()]
        self.labels: dict[Hashable, int] = dict(labels or {})
        self.library: list[Hashable] = list(dict.fromkeys(library))
        self.texts: list[LikedText] = [LikedText(*text) for text in texts]
        self._rated: RatedPapers | None = None
        self._parts: Parts | None = None
        self._changed: list[Hashable] = []

    def copy(self) -> Profile:
        """An independent profile sharing the (immutable) derived state: copy-on-write for caches."""
        twin = Profile(self.keywords, self.labels, library=self.library, texts=self.texts)
        twin._rated, twin._parts, twin._changed = self._rated, self._parts, list(self._changed)
        return twin

    # --- learning ----------------------------------------------------------------------------------
    def rate(self, paper_id: Hashable, value: int) -> None:
        """Record 👍 (+1) or 👎 (-1); the latest rating of a paper replaces an earlier one."""
        if value not in (1, -1):
            raise ValueError(f"rating must be +1 or -1, got {value!r}")
        if self.labels.get(paper_id) == value:
            return
        self.labels[paper_id] = value
        self._changed.append(paper_id)
        self._parts = None

    def set_keywords(self, keywords: Iterable[str]) -> None:
        cleaned = [k.strip() for k in keywords if k.strip()]
        if cleaned != self.keywords:
            self.keywords = cleaned
            self._rated = self._parts = None

    def set_library(self, papers: Iterable[Hashable], texts: Iterable[LikedText]) -> None:
        """The imported library: which rated papers came from it (``rate`` them 👍 too), and the liked
        texts of its other entries (they replace those of an earlier library)."""
        papers, texts = list(dict.fromkeys(papers)), [LikedText(*text) for text in texts]
        if (papers, texts) != (self.library, self.texts):
            self.library, self.texts = papers, texts
            self._rated = self._parts = None

    def text_ids(self) -> dict[Hashable, LikedText]:
        """The liked texts by their id among the rated papers."""
        return {f"{TEXT_ID_PREFIX}{n}": text for n, text in enumerate(self.texts)}

    # --- scoring -----------------------------------------------------------------------------------
    def parts(self, corpus: PaperSource) -> Parts:
        """The derived model under ``corpus``: updated for new ratings, derived again when stale."""
        if self._rated is None or self._rated.stale(corpus):
            query = expand_keywords(corpus, self.keywords) if self.keywords else None
            texts = {key: text.text for key, text in self.text_ids().items()}
            self._rated, self._parts = RatedPapers.build(corpus, query, self.labels, texts), None
        elif self._changed:
            self._rated = self._rated.updated(corpus, self.labels, self._changed)
        self._changed = []
        if self._parts is None:
            library = {paper: None for paper in self.library} | self.text_ids()
            meaning = semantic.parts_for(corpus, self.keywords, self.labels)
            self._parts = _derived(self._rated, library, meaning)
        return self._parts

    def weights(self, corpus: PaperSource) -> sp.csr_matrix:
        return self.parts(corpus).weights

    def score(self, corpus: PaperSource, rows: sp.csr_matrix) -> np.ndarray:
        """Scores of the given TF-IDF rows (e.g. ``corpus.matrix[candidate_rows]``)."""
        parts = self.parts(corpus)
        scores = sparse_dot(rows, parts.weights)
        if parts.prior:
            scores -= parts.prior * corpus.generality(rows)
        return scores

    def evidence(self, corpus: PaperSource, rows: sp.csr_matrix) -> np.ndarray:
        """Whether each row shares a word or phrase with what pulls papers up (keywords, 👍, classifier).

        A paper without one has no true "why" and is never picked, whatever its score after the negative
        parts (👎, corpus mean) moved it. Words only: two English texts share character 4-grams anyway.
        ``rows`` are the papers' own rows (``PaperSource.own_of``): a word a short paper only borrowed
        from its neighbours is not a reason to give.
        """
        weights = self.parts(corpus).weights
        keep = (weights.indices < BLOCK) & (weights.data > 0)
        positive = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), weights.indices[keep], [0, int(keep.sum())]),
            shape=weights.shape,
        )
        words = rows.copy()
        words.data = np.abs(words.data)
        return sparse_dot(words, positive) > 0

    # --- persistence -------------------------------------------------------------------------------
    def to_state(self) -> bytes:
        """Serialise as JSON (never pickle: the bytes come back from the database).

        Keywords, labels and the library are the whole state: the vectors are a deterministic average of
        corpus rows (and of the liked texts' rows), re-derived in milliseconds under the current IDF, so
        nothing has to be refitted after a restart. A profile without a library has no ``library`` key.
        """
        meta: dict[str, object] = {
            "format": STATE_FORMAT,
            "keywords": self.keywords,
            "labels": list(self.labels.items()),
        }
        if self.library or self.texts:
            meta["library"] = {"papers": self.library, "texts": [list(text) for text in self.texts]}
        return json.dumps(meta, ensure_ascii=False).encode()

    @classmethod
    def from_state(cls, state: bytes) -> Profile:
        meta = json.loads(bytes(state).decode())
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown subscriber model format {meta.get('format')!r}")
        labels = {paper: int(value) for paper, value in meta["labels"]}
        wrong = [paper for paper, value in labels.items() if value not in (1, -1)]
        if wrong:  # the classifier counts every rated row as a 👍 or a 👎
            raise ValueError(f"subscriber model state: rating of paper {wrong[0]!r} must be +1 or -1")
        library = meta.get("library") or {}
        texts = [LikedText(str(title), abstract) for title, abstract in library.get("texts", [])]
        return cls(meta["keywords"], labels, library=library.get("papers", []), texts=texts)


def score_many(profiles: Sequence[Profile], corpus: PaperSource, rows: sp.csr_matrix) -> np.ndarray:
    """``Profile.score`` for many profiles at once (profiles x rows).

    Every profile scores every row, so the result is dense: rather than one sparse product (which first
    sizes a sparse result, then fills it), each few profiles' weights are scattered into a dense block
    over the columns the rows use and multiplied sparse x dense, column by column, so each weight row is
    read once and the few rows of scores being summed stay in cache. Profiles are derived a few at a
    time, so their parts need not all be held at once.
    """
    # hand-made: the stacked weights' sparse product costs 2.3×, +9% of `digest eval rank` (bench_rank_pieces)
    rows = sp.csr_matrix(rows)
    used, local, compact = _by_used_column(rows)
    generality = corpus.generality(rows)
    scores = np.empty((len(profiles), rows.shape[0]))
    dense = np.zeros((compact.shape[1], SCORE_CHUNK), dtype=np.float32)
    for start in range(0, len(profiles), SCORE_CHUNK):
        parts = [p.parts(corpus) for p in profiles[start : start + SCORE_CHUNK]]
        columns = np.concatenate([p.columns for p in parts])
        hit = used[columns]
        at = local[columns[hit]], np.repeat(np.arange(len(parts)), [p.columns.size for p in parts])[hit]
        dense[at] = np.concatenate([p.dense_weights for p in parts])[hit]
        scores[start : start + len(parts)] = (compact @ dense[:, : len(parts)]).T
        dense[at] = 0.0  # cheaper than a fresh zeroed block per chunk
        scores[start : start + len(parts)] -= np.array([p.prior for p in parts])[:, None] * generality
    return scores


def _by_used_column(rows: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, sp.csc_matrix]:
    """Which columns ``rows`` use, each column's position among those, and ``rows`` over those columns
    only, stored column by column."""
    used = np.zeros(N_FEATURES, dtype=bool)
    used[rows.indices] = True
    local = np.cumsum(used, dtype=np.int32) - 1
    compact = sp.csr_matrix(
        (rows.data, local[rows.indices], rows.indptr), shape=(rows.shape[0], int(local[-1]) + 1)
    )
    return used, local, compact.tocsc()


def _derived(
    rated: RatedPapers, library: Mapping[Hashable, LikedText | None], meaning: semantic.SemanticParts | None
) -> Parts:
    """The weight vector's components from the rated rows' sums and the classifier fitted on them, with the
    library's origins and the semantic part (``digest.rank.semantic``)."""
    liked, disliked = rated.labels > 0, rated.labels < 0
    liked_dense = unit(_flattened(rated.sums[0] / max(int(liked.sum()), 1)))
    disliked_dense = unit(rated.sums[1] / max(int(disliked.sum()), 1))
    coef = np.zeros(rated.columns.size, dtype=np.float64)
    if rated.gram is not None and rated.trains_classifier:
        coef = unit(
            classifier.fit(rated.gram, rated.classifier_rows, rated.classifier_liked, rated.background)
        )
    n_disliked = int(disliked.sum())
    return Parts(
        rated.columns,
        rated.keywords,
        liked_dense,
        disliked_dense,
        coef,
        rated.liked,
        n_disliked,
        library=library,
        meaning=meaning,
    )
