from __future__ import annotations

import warnings

import numpy as np
import pytest

from digest.rank import classifier


def _liblinear(features, liked: np.ndarray, background) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The problem as scikit-learn's liblinear states it on the sparse rows, solved to convergence."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n, n_liked = liked.size, int(liked.sum())
    weights = np.concatenate(
        [np.where(liked, n / (2 * n_liked), n / (2 * (n - n_liked))), [classifier.BACKGROUND_SHARE * n]]
    )
    reference = LogisticRegression(
        C=classifier.CLASSIFIER_C, solver="liblinear", dual=True, tol=1e-10, max_iter=100_000
    ).fit(
        sp.vstack([features, sp.csr_matrix(background)]).astype(np.float64),
        np.concatenate([np.where(liked, 1.0, -1.0), [-1.0]]),
        sample_weight=weights,
    )
    return reference.coef_.ravel()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_classifier_is_liblinears_logistic_regression_solved_in_kernel_form() -> None:
    """Same problem as ``LogisticRegression(solver="liblinear")`` on the rows (intercept penalised, 👍/👎
    balanced, the background weighing ``BACKGROUND_SHARE`` times all the ratings): same coefficients."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    features = sp.random(60, 500, density=0.05, format="csr", random_state=1, dtype=np.float32)
    background = np.asarray(features.mean(axis=0)).ravel().astype(np.float64)
    liked = rng.random(60) < 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged within the budget
        coef = classifier.fit(classifier.gram(features), features, liked, background)
    reference = _liblinear(features, liked, background)
    assert _cosine(coef, reference) > 0.99999 and np.allclose(coef, reference, rtol=1e-3, atol=1e-3)


def test_two_rated_papers_with_the_same_text_still_train_the_classifier() -> None:
    """Identical rows make the Gram matrix singular; the fit must still be the liblinear one."""
    import scipy.sparse as sp

    base = sp.random(20, 300, density=0.1, format="csr", random_state=2, dtype=np.float32)
    features = sp.vstack([base, base[:2]], format="csr")
    liked = np.arange(22) % 3 == 0
    background = np.asarray(base.mean(axis=0)).ravel().astype(np.float64)
    coef = classifier.fit(classifier.gram(features), features, liked, background)
    assert _cosine(coef, _liblinear(features, liked, background)) > 0.9999


def test_the_gram_matrix_grown_click_by_click_is_the_one_computed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also once older rows leave the classifier's window of the latest ``CLASSIFIER_MAX_RATINGS``, and
    with columns used densely (``GRAM_DENSE_MIN``) and sparsely."""
    import scipy.sparse as sp

    monkeypatch.setattr(classifier, "GRAM_DENSE_MIN", 3)
    rows = sp.random(12, 200, density=0.2, format="csr", random_state=3, dtype=np.float32)
    gram = classifier.gram(rows[:2])
    for end, added in ((3, 1), (6, 3), (8, 2), (9, 1), (12, 3)):
        window = rows[max(0, end - 7) : end]
        gram = classifier.grown_gram(gram, window, added)
        assert np.allclose(gram, (window @ window.T).toarray(), atol=1e-6)
    assert gram.shape == (7, 7)
