"""The classifier part of a subscriber's model: an L2 logistic regression 👍 vs 👎, with the older
papers' mean row as one heavy 👎, solved in kernel form so that a click grows it instead of refitting it.

The problem is liblinear's (L2, ``CLASSIFIER_C``, the intercept a constant feature 1 penalised like the
rest), solved over the rated rows' dot products (the Gram matrix), which a click grows by one row,
rather than over their non-zeros, which liblinear's solver walks many times per fit.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
import scipy.special
from threadpoolctl import ThreadpoolController

from digest.rank.vectors import row_of

CLASSIFIER_C = 1.0
CLASSIFIER_MAX_ITER = 500  # L-BFGS iterations (a few tens are used at 300 ratings)
BACKGROUND_SHARE = 100.0  # the older papers' mean row, weighing this many times all the ratings together
GRAM_DENSE_MIN = 32  # columns in at least this many rated rows are multiplied densely (``gram``)


def fit(
    gram: np.ndarray, rows: sp.csr_matrix, liked: np.ndarray, background: np.ndarray | None
) -> np.ndarray:
    """Coefficients (over ``rows``' columns) of a logistic regression 👍 vs 👎 on the rated ``rows`` (a 👍
    where ``liked``, a 👎 otherwise; both kinds present) with the ``background`` row (the older papers'
    mean, if any) as one more 👎; ``gram`` is ``rows @ rows.T`` (``gram``, ``grown_gram``).

    👍 and 👎 weigh half each; the background row weighs ``BACKGROUND_SHARE`` times all the ratings
    together, so the fit holds an average paper firmly on the 👎 side and learns what sets the 👍 apart
    from any paper, not only from the 👎 the subscriber was shown. Kernel form: with K = X Xᵀ + 1 = L Lᵀ,
    logistic regression on the rows of L finds θ, and w = Xᵀ L⁻ᵀ θ is the same optimum (the weights lie
    in the span of the rows, and ‖θ‖ = ‖w‖).
    """
    kernel, n = _kernel(gram, rows, background), liked.size
    labels, weights = _targets(liked, kernel.shape[0] - n)
    with one_blas_thread():
        factor = scipy.linalg.cholesky(kernel, lower=True, check_finite=False)
        theta = scipy.optimize.minimize(
            _logistic_loss,
            np.zeros(kernel.shape[0]),
            args=(factor, labels, CLASSIFIER_C * weights),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": CLASSIFIER_MAX_ITER},
        ).x
        dual = scipy.linalg.solve_triangular(factor, theta, lower=True, trans="T", check_finite=False)
    coef = np.asarray(rows.T @ dual[:n], dtype=np.float64)
    return coef + dual[n] * background if background is not None else coef


def _targets(liked: np.ndarray, n_background: int) -> tuple[np.ndarray, np.ndarray]:
    """±1 per rated row then -1 per background row, and the sample weights: 👍 and 👎 half each, each
    background row ``BACKGROUND_SHARE`` times all the ratings together."""
    n, n_liked = liked.size, int(liked.sum())
    labels = np.concatenate([np.where(liked, 1.0, -1.0), -np.ones(n_background)])
    weights = np.concatenate(
        [
            np.where(liked, n / (2 * n_liked), n / (2 * (n - n_liked))),
            np.full(n_background, BACKGROUND_SHARE * n),
        ]
    )
    return labels, weights


def _logistic_loss(
    theta: np.ndarray, features: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Σ weight · log(1 + e^(−label · x·θ)) + ½‖θ‖² and its gradient: liblinear's L2 logistic regression
    (``weights`` already times C)."""
    # hand-made: LogisticRegression.fit costs 1.9× and stops short of the optimum (bench_rank_pieces)
    margins = labels * (features @ theta)
    loss = float(weights @ np.logaddexp(0.0, -margins) + 0.5 * theta @ theta)
    return loss, features.T @ (-weights * labels * scipy.special.expit(-margins)) + theta


def _kernel(gram: np.ndarray, rows: sp.csr_matrix, background: np.ndarray | None) -> np.ndarray:
    """Dot products among the rows and the background row, + 1 for the intercept's constant feature.

    A tiny ridge (1e-9 of the mean diagonal) keeps it positive definite for the Cholesky factor when two
    rated papers have the same text; it moves the fit by far less than the solver's tolerance.
    """
    n = gram.shape[0]
    size = n + (background is not None)
    kernel = np.empty((size, size))
    kernel[:n, :n] = gram
    if background is not None:
        kernel[:n, n] = kernel[n, :n] = rows @ background
        kernel[n, n] = float(np.square(background).sum())
    kernel += 1.0
    kernel.flat[:: size + 1] += 1e-9 * float(np.trace(kernel)) / size
    return kernel


def gram(rows: sp.csr_matrix) -> np.ndarray:
    """``rows @ rows.T`` as a dense float64 array.

    A sparse product costs the square of each column's row count, so the few columns most rows share
    (common character 4-grams) are multiplied as a dense block instead. Only a cold derivation pays this;
    a click grows it (``grown_gram``).
    """
    counts = np.bincount(rows.indices, minlength=rows.shape[1])
    common = counts >= GRAM_DENSE_MIN
    dense = rows[:, np.flatnonzero(common)].toarray().astype(np.float64)
    rare = rows[:, np.flatnonzero(~common)].astype(np.float64)
    with one_blas_thread():
        return dense @ dense.T + (rare @ rare.T).toarray()


def grown_gram(before: np.ndarray, rows: sp.csr_matrix, added: int) -> np.ndarray:
    """The Gram matrix of ``rows`` (the classifier's rows, the last ``added`` of them new) from ``before``,
    that of the rows before: only the new rows' dot products are computed; rows that fell out of the
    classifier's window of latest ratings are dropped from the front."""
    kept = rows.shape[0] - added
    if kept <= 0 or added > 32:  # a batch: as cheap at once, and the dense block below stays small
        return gram(rows)
    fresh = rows[kept:]
    block = np.zeros((rows.shape[1], added))  # the new rows scattered: one mat-vec each, no sparse product
    block[fresh.indices, row_of(fresh)] = fresh.data
    cross = rows @ block
    grown = np.empty((rows.shape[0], rows.shape[0]))
    grown[:kept, :kept] = before[before.shape[0] - kept :, before.shape[0] - kept :]
    grown[:, kept:] = cross
    grown[kept:, :] = cross.T
    return grown


@cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread: the classifier's arrays are a few hundred rows, too small to share, and on a
    busy 2-core machine OpenBLAS threads wait on each other."""
    return _blas_threads().limit(limits=1, user_api="blas")
