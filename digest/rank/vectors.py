"""Rows of the hashed space (2**21 columns) multiplied and read where scipy's own calls build an index as
wide as the space, and a dense vector made unit length."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def sparse_dot(rows: sp.csr_matrix, vector: sp.csr_matrix) -> np.ndarray:
    """``rows @ vector.T`` for a 1 x N row, in float64, without transposing anything N-sized."""
    # hand-made: `rows @ vector.T` costs 1.8–6.6× on a pick's products, in float32 (bench_rank_pieces)
    if vector.nnz == 0 or rows.nnz == 0:
        return np.zeros(rows.shape[0], dtype=np.float64)
    if rows.nnz > 50_000:  # many rows: one scatter into a dense vector, then a plain mat-vec
        dense = np.zeros(vector.shape[1], dtype=np.float64)
        dense[vector.indices] = vector.data
        return np.asarray(rows @ dense).ravel()
    columns, values = _sorted(vector)
    at = np.searchsorted(columns, rows.indices)
    at[at == columns.size] = 0
    hit = columns[at] == rows.indices
    products = np.where(hit, values[at] * rows.data, 0.0)
    return np.bincount(row_of(rows), weights=products, minlength=rows.shape[0])


def values_at(row: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """``row[0, columns]`` of a 1 x N row, as a dense array over ``columns`` only."""
    # hand-made: `row[:, columns]` costs 13–35× on a paper's terms (bench_rank_pieces)
    indices, data = _sorted(row)
    if indices.size == 0:
        return np.zeros(columns.size)
    at = np.searchsorted(indices, columns)
    at[at == indices.size] = 0
    return np.where(indices[at] == columns, data[at], 0.0)


def row_of(matrix: sp.csr_matrix) -> np.ndarray:
    """The row of each stored value of a CSR matrix."""
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to unit length (as it is when all zero)."""
    # hand-made: normalize costs 22×, +22% of `digest eval rank` (bench_rank_pieces); a BLAS norm stalls
    norm = float(np.sqrt(np.square(vector).sum()))
    return vector / norm if norm else vector


def _sorted(row: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """The columns and values of a 1 x N row, by column."""
    if row.has_sorted_indices:
        return row.indices, row.data
    order = np.argsort(row.indices)
    return row.indices[order], row.data[order]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of a dense matrix scaled to unit length (all-zero rows as they are)."""
    norms = np.sqrt(np.square(matrix).sum(axis=1, keepdims=True))
    return matrix / np.where(norms > 0, norms, 1.0)
