"""What the subscriber model asks of a corpus: papers' rows by id, and the statistics they add up to.

Two answer it: ``digest.rank.corpus.Corpus`` (every paper in memory: the evaluation and the tests) and
``digest.rank.library.Library`` (the service: statistics in memory, other papers read from their stored
term counts when their rows are needed).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from digest.rank.expansion import Expandable


class PaperSource(Expandable, Protocol):
    """A corpus as the subscriber model sees it."""

    @property
    def identity(self) -> Hashable:
        """Which corpus this is: a model derived on another one is derived again."""
        ...

    def __len__(self) -> int: ...

    def own_of(self, ids: Sequence[Hashable]) -> sp.csr_matrix: ...

    def background_mean(self) -> np.ndarray | None: ...

    def generality(self, rows: sp.csr_matrix) -> np.ndarray: ...

    def embeddings_of(self, ids: Sequence[Hashable]) -> np.ndarray | None:
        """The papers' sentence embeddings (float32 rows, zeros for a paper not embedded yet); None when the
        corpus has none at all (``digest.rank.semantic``)."""
        ...
