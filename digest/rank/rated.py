"""A subscriber's rated papers under one corpus version, kept ready for the next click: the incremental
update of the derived model (``digest.rank.model``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.rank import classifier
from digest.rank.source import PaperSource

CLASSIFIER_MIN_RATINGS = 10
# A derived model stays valid while the corpus has grown by at most this share since it was derived: the
# IDF moves little, and a day's new papers must not derive every model again (on the dev replay 5% keeps
# every figure, 10% moves hit@10 by .0025; docs/scaling.md). A click still updates it at once.
IDF_DRIFT = 0.05
# The classifier learns from the papers most recently rated (first time): tastes drift, and it bounds a
# click's cost.
CLASSIFIER_MAX_RATINGS = 1000


@dataclass(frozen=True)
class RatedPapers:
    """The rated papers in a compact column space, ready for an update.

    ``columns`` (sorted) are the columns the keyword vector and the rated rows use; ``matrix`` holds the
    rated rows (in rating order) over those columns only, so the centroids' sums and the classifier's
    dot products are kept up to date without touching 2**21-sized arrays. A new rating appends its row
    and inserts its new columns (no sort of the stored rows), so a click never derives the model again.
    Never mutated: an update builds a new one, so a cached profile can be shared (``Profile.copy``).
    """

    source: Hashable  # the corpus (``PaperSource.identity``)
    basis: int  # its size when the rows were weighed
    ids: tuple
    labels: np.ndarray  # +1 / -1 per rated paper
    columns: np.ndarray
    matrix: sp.csr_matrix
    keywords: np.ndarray  # the expanded keyword vector over ``columns``
    sums: np.ndarray  # Σ 👍 rows then Σ 👎 rows over ``columns`` (2 × len(columns)), kept up to date
    # What only the classifier needs, None until it trains (``trains_classifier``): the dot products among
    # its rows (``classifier_rows``) and the older papers' mean at ``columns``.
    gram: np.ndarray | None
    background: np.ndarray | None

    @classmethod
    def build(
        cls,
        corpus: PaperSource,
        query: sp.csr_matrix | None,
        labels: Mapping[Hashable, int],
        texts: Mapping[Hashable, str] | None = None,
    ) -> RatedPapers:
        """The papers rated in ``labels`` (those the corpus has), with the expanded keyword ``query``;
        ``texts`` (liked texts that are no papers, by id) come first, each a 👍 weighed like a paper."""
        papers = tuple(corpus.known(list(labels)))
        rated = corpus.rows_of(papers)
        texts = texts or {}
        if texts:
            rated = sp.vstack([corpus.encode(list(texts.values())), rated], format="csr")
        ids = tuple(texts) + papers
        indices = rated.indices
        columns, local = np.unique(
            indices if query is None else np.concatenate([indices, query.indices]), return_inverse=True
        )
        matrix = sp.csr_matrix(
            (rated.data, local[: indices.size], rated.indptr), shape=(len(ids), columns.size)
        )
        keywords = np.zeros(columns.size, dtype=np.float64)
        if query is not None:
            keywords[local[indices.size :]] = query.data
        values = np.array([1.0] * len(texts) + [labels[i] for i in papers], dtype=np.float64)
        sums = _side_sums(matrix, values, columns.size)
        built = cls(corpus.identity, len(corpus), ids, values, columns, matrix, keywords, sums, None, None)
        return built.with_classifier_inputs(corpus)

    def stale(self, corpus: PaperSource) -> bool:
        """Derived on another corpus, or on this one before it grew past ``IDF_DRIFT``."""
        return self.source != corpus.identity or len(corpus) > self.basis * (1 + IDF_DRIFT)

    @property
    def liked(self) -> tuple[Hashable, ...]:
        return tuple(paper for paper, label in zip(self.ids, self.labels, strict=True) if label > 0)

    def updated(
        self, corpus: PaperSource, labels: Mapping[Hashable, int], changed: Iterable[Hashable]
    ) -> RatedPapers:
        """The same with the ratings of the ``changed`` papers added or replaced."""
        values = self.labels.copy()
        position = {paper: i for i, paper in enumerate(self.ids)}
        fresh, flipped = [], []
        for paper in dict.fromkeys(changed):
            if paper in position:
                if values[position[paper]] != labels[paper]:  # not when flipped and flipped back
                    flipped.append(position[paper])
                    values[position[paper]] = labels[paper]
            else:
                fresh.append(paper)
        fresh = corpus.known(fresh)
        sums = _flipped(self.sums, self.matrix, values, np.array(flipped, dtype=np.int64))
        relabelled = dataclasses.replace(self, labels=values, sums=sums)
        if fresh:
            return relabelled._appended(corpus, fresh, labels)
        return relabelled.with_classifier_inputs(corpus)  # the rows, hence the dot products, are the same

    def _appended(
        self, corpus: PaperSource, fresh: list[Hashable], labels: Mapping[Hashable, int]
    ) -> RatedPapers:
        """The same with the rows of the newly rated ``fresh`` papers appended."""
        sub = corpus.rows_of(fresh)
        grown = self._with_columns(corpus, sub.indices)
        columns, matrix = grown.columns, grown.matrix
        matrix = sp.csr_matrix(
            (
                np.concatenate([matrix.data, sub.data]),
                np.concatenate([matrix.indices, np.searchsorted(columns, sub.indices).astype(np.int32)]),
                np.concatenate([matrix.indptr, matrix.indptr[-1] + sub.indptr[1:]]),
            ),
            shape=(matrix.shape[0] + len(fresh), columns.size),
        )
        added_values = np.array([float(labels[p]) for p in fresh])
        sums = grown.sums + _side_sums(matrix[-len(fresh) :], added_values, columns.size)
        gram = None if self.gram is None else classifier.grown_gram(self.gram, _recent(matrix), len(fresh))
        appended = dataclasses.replace(
            grown,
            ids=self.ids + tuple(fresh),
            labels=np.concatenate([self.labels, added_values]),
            matrix=matrix,
            sums=sums,
            gram=gram,
        )
        return appended.with_classifier_inputs(corpus)

    def _with_columns(self, corpus: PaperSource, wanted: np.ndarray) -> RatedPapers:
        """The same over its columns and those of ``wanted`` it lacks (inserted in order: a stored column
        moves up by the count inserted before it)."""
        columns = self.columns
        at = np.minimum(np.searchsorted(columns, wanted), max(columns.size - 1, 0))
        known = columns[at] == wanted if columns.size else np.zeros(wanted.size, dtype=bool)
        added = np.unique(wanted[~known])
        if added.size == 0:
            return self
        moved = (np.arange(columns.size) + np.searchsorted(added, columns)).astype(np.int32)
        columns = np.insert(columns, np.searchsorted(columns, added), added)
        matrix = sp.csr_matrix(
            (self.matrix.data, moved[self.matrix.indices], self.matrix.indptr),
            shape=(self.matrix.shape[0], columns.size),
        )
        background = self.background
        if background is not None:  # the mean at the new columns read from the corpus' memo
            background = _grown(background, moved, columns.size)
            background[np.searchsorted(columns, added)] = _background(corpus, added)
        return dataclasses.replace(
            self,
            columns=columns,
            matrix=matrix,
            keywords=_grown(self.keywords, moved, columns.size),
            sums=_grown(self.sums, moved, columns.size),
            background=background,
        )

    def with_classifier_inputs(self, corpus: PaperSource) -> RatedPapers:
        """Itself, with ``gram`` and ``background`` computed once the classifier trains (a subscriber
        with 👍 only, like every CiteULike case, never pays for them)."""
        if self.gram is not None or not self.trains_classifier:
            return self
        gram, background = classifier.gram(self.classifier_rows), _background(corpus, self.columns)
        return dataclasses.replace(self, gram=gram, background=background)

    @property
    def trains_classifier(self) -> bool:
        """Enough of the classifier's ratings (the latest ``CLASSIFIER_MAX_RATINGS``), of both kinds."""
        recent = self.labels[-CLASSIFIER_MAX_RATINGS:]
        return bool((recent > 0).any() and (recent < 0).any() and recent.size >= CLASSIFIER_MIN_RATINGS)

    @property
    def classifier_rows(self) -> sp.csr_matrix:
        """The rows the classifier learns from: the latest ``CLASSIFIER_MAX_RATINGS``."""
        return _recent(self.matrix)

    @property
    def classifier_liked(self) -> np.ndarray:
        """Whether each of ``classifier_rows`` is a 👍."""
        return self.labels[-CLASSIFIER_MAX_RATINGS:] > 0


def _background(corpus: PaperSource, columns: np.ndarray) -> np.ndarray | None:
    """The older papers' mean row at ``columns`` only (None while there are no older papers): the
    classifier's weights live on the rated papers' terms, the mean only tells it which of those terms an
    average paper has."""
    mean = corpus.background_mean()
    return None if mean is None else mean[columns].astype(np.float64)


def _side_sums(matrix: sp.csr_matrix, labels: np.ndarray, size: int) -> np.ndarray:
    """Σ of the 👍 rows and Σ of the 👎 rows in one ``bincount``: a 👎 row counts in a second copy of the
    columns."""
    if not (labels < 0).any():  # 👍 only (every CiteULike case): one side
        return np.vstack([np.bincount(matrix.indices, matrix.data, minlength=size), np.zeros(size)])
    side = np.repeat((labels < 0).astype(np.int64) * size, np.diff(matrix.indptr))
    return np.bincount(matrix.indices + side, matrix.data, minlength=2 * size).reshape(2, size)


def _flipped(sums: np.ndarray, matrix: sp.csr_matrix, labels: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """``sums`` with the ``flipped`` rows (now labelled ``labels``) moved to their new side; the same array
    when nothing flipped (a click on a new paper, the usual case, allocates nothing here)."""
    if flipped.size == 0:
        return sums
    moved, size = matrix[flipped], sums.shape[1]
    return sums + _side_sums(moved, labels[flipped], size) - _side_sums(moved, -labels[flipped], size)


def _grown(vector: np.ndarray, moved: np.ndarray, size: int) -> np.ndarray:
    """``vector`` (or each row of it) over the columns after an insertion (``moved``: where each old column
    went), 0 elsewhere."""
    grown = np.zeros((*vector.shape[:-1], size), dtype=vector.dtype)
    grown[..., moved] = vector
    return grown


def _recent(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The classifier's rows: the last ``CLASSIFIER_MAX_RATINGS`` (no copy while there are not more)."""
    return matrix if matrix.shape[0] <= CLASSIFIER_MAX_RATINGS else matrix[-CLASSIFIER_MAX_RATINGS:]
