"""What a corpus adds up to, kept up to date as papers arrive instead of recomputed over every paper.

* the term statistics (document frequencies and their count, hence the IDF: ``digest.rank.tfidf``);
* the sum of every paper's row, weighed when it arrived: its direction is the corpus mean, "a paper",
  which the prior holds against subscribers without a 👎 yet (``generality``);
* the sum of the rows of the papers older than the candidate window (the background), weighed when they
  left the window: their mean is what a subscriber's classifier holds on the 👎 side.

A row weighed when it arrived is not weighed again when later papers move the IDF: the corpus mean and the
background drift with the IDF only through the papers added since, so nothing re-weighs the history
(on the dev files this left the figures unchanged; docs/scaling.md). ``version`` counts the changes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from digest.rank.tfidf import N_FEATURES, TermStatistics


class CorpusStatistics:
    """Term statistics, the corpus-mean sum and the background sum of one corpus."""

    def __init__(self) -> None:
        self.terms = TermStatistics()
        self.mean_sum = np.zeros(N_FEATURES, dtype=np.float64)
        self.background_sum = np.zeros(N_FEATURES, dtype=np.float64)
        self.background_papers = 0
        self.version = 0
        self._mean: np.ndarray | None = None

    def copy(self) -> CorpusStatistics:
        twin = CorpusStatistics()
        twin.terms.n, twin.terms.df = self.terms.n, self.terms.df.copy()
        twin.mean_sum, twin.background_sum = self.mean_sum.copy(), self.background_sum.copy()
        twin.background_papers, twin.version = self.background_papers, self.version
        return twin

    @property
    def papers(self) -> int:
        return self.terms.n

    def count(self, counts: sp.csr_matrix) -> None:
        """Count new papers' term counts in the document frequencies (before their rows are weighed)."""
        self.terms.add(counts)
        self.version += 1

    def add_rows(self, rows: sp.csr_matrix) -> None:
        """Add the new papers' rows, weighed under the IDF that counts them, to the corpus-mean sum."""
        self.mean_sum += _column_sums(rows)
        self._mean = None

    def add_background(self, rows: sp.csr_matrix) -> None:
        """Add the rows of papers that just left the candidate window to the background."""
        if rows.shape[0]:
            self.background_sum += _column_sums(rows)
            self.background_papers += rows.shape[0]
            self.version += 1

    def reset_background(self) -> None:
        """Forget the background (the window changed length: papers must age into it again)."""
        self.background_sum[:] = 0.0
        self.background_papers = 0
        self.version += 1

    def background_mean(self) -> np.ndarray | None:
        """The background papers' mean row (dense, float32), or None while there are none."""
        if not self.background_papers:
            return None
        return (self.background_sum / self.background_papers).astype(np.float32)

    def generality(self, rows: sp.csr_matrix) -> np.ndarray:
        """Cosine of each (unit) row to the corpus mean: how much a paper looks like any paper."""
        if self._mean is None:
            norm = float(np.sqrt(np.square(self.mean_sum).sum()))
            self._mean = (self.mean_sum / norm if norm else self.mean_sum).astype(np.float32)
        return np.asarray(rows @ self._mean, dtype=np.float64).ravel()


def _column_sums(rows: sp.csr_matrix) -> np.ndarray:
    return np.bincount(rows.indices, weights=rows.data, minlength=N_FEATURES)
