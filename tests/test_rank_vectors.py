from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from rank_papers import PAPERS

from digest.rank.corpus import Corpus
from digest.rank.vectors import row_of, sparse_dot, unit, values_at


def _corpus(n: int) -> Corpus:
    return Corpus.from_texts(list(range(n)), [f"{t}\n{a}" for t, a in PAPERS[:n]])


def test_sparse_dot_matches_the_sparse_product() -> None:
    corpus = _corpus(len(PAPERS))
    query = corpus.encode(["robot audio retrieval"])
    expected = (corpus.matrix @ query.T).toarray().ravel()
    assert np.allclose(sparse_dot(corpus.matrix, query), expected, atol=1e-6)


def test_values_at_reads_a_rows_values_at_the_given_columns() -> None:
    row = _corpus(len(PAPERS)).matrix[3]
    columns = np.concatenate([row.indices[::7], [0, 5, row.indices.max() + 1]])
    assert np.array_equal(values_at(row, columns), row[:, columns].toarray().ravel())
    unsorted = sp.csr_matrix((row.data[::-1], row.indices[::-1], row.indptr), shape=row.shape)
    assert np.array_equal(values_at(unsorted, columns), row[:, columns].toarray().ravel())


def test_the_row_of_each_stored_value() -> None:
    matrix = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [0, 3, 0]]))
    assert row_of(matrix).tolist() == [0, 0, 2]


def test_unit_scales_to_unit_length_and_leaves_zero_alone() -> None:
    assert np.allclose(unit(np.array([3.0, 4.0])), [0.6, 0.8])
    assert np.array_equal(unit(np.zeros(3)), np.zeros(3))
