"""Many subscribers' picks from one window at once: their weights scattered into a dense block over the
columns the candidates use and multiplied with the candidates as one product, their semantic vectors
multiplied with the candidates' embeddings as one more (``digest.rank.semantic``: the blend), then each
one's picks chosen in score order (allowed, with a true reason: a word shared with what the subscriber asked
for or liked, or a semantic match; no near-copy).

Every subscriber scores every candidate, so the result is dense: a block of weights multiplied sparse x
dense, column by column, reads each weight once and keeps the block of scores being summed in cache
(bench_rank_pieces measures the sparse product against it). Subscribers with the very same weights (the
same keywords and no rating) are scored once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from digest.rank import semantic
from digest.rank.classifier import one_blas_thread
from digest.rank.weights import Weights
from digest.rank.window import Window

BLOCK = 128  # subscribers multiplied at once: the block of weights is BLOCK x the candidates' columns


@dataclass(frozen=True)
class Request:
    """One subscriber's pick: their weights, which candidates they may get, how many."""

    weights: Weights
    allowed: np.ndarray  # bool per candidate: fresh, never sent, never rated, not excluded
    k: int


@dataclass(frozen=True)
class Chosen:
    """One request's picks (candidate index, score), best first, and the semantic scale they were scored
    with: a pick's semantic contribution is ``semantic_scale`` · (its centred embedding · the subscriber's
    vector), 0 without a semantic part."""

    picks: list[tuple[int, float]]
    semantic_scale: float


def score_block(window: Window, weights: Sequence[Weights]) -> np.ndarray:
    """Scores of every candidate for each of ``weights`` (len(weights) x len(window))."""
    scores = np.empty((len(weights), len(window)))
    with one_blas_thread():
        for start in range(0, len(weights), BLOCK):
            chunk = weights[start : start + BLOCK]
            with _dense(window, chunk) as dense:
                tfidf = _scores(window, dense, chunk)
            scores[start : start + len(chunk)] = tfidf + _semantic(window, chunk, tfidf)[0]
    return scores


def pick_block(window: Window, requests: Sequence[Request], floor: float) -> list[Chosen]:
    """Each request's picks, best first."""
    with one_blas_thread():
        return _pick_blocks(window, requests, floor)


def _pick_blocks(window: Window, requests: Sequence[Request], floor: float) -> list[Chosen]:
    picks: list[Chosen] = []
    for start in range(0, len(requests), BLOCK):
        chunk = requests[start : start + BLOCK]
        distinct = list({id(r.weights): r.weights for r in chunk}.values())
        column = {id(w): j for j, w in enumerate(distinct)}
        with _dense(window, distinct) as dense:
            tfidf = _scores(window, dense, distinct)
            meaning, scale = _semantic(window, distinct, tfidf)
            scores = tfidf + meaning
            for request in chunk:
                j = column[id(request.weights)]
                eligible = _evidence(window, dense[:, j], meaning[j] if meaning.ndim else None)
                found = choose(window, scores[j], request.allowed, request.k, floor, eligible)
                picks.append(Chosen(found, float(scale[j])))
    return picks


def _semantic(window: Window, weights: Sequence[Weights], tfidf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the semantic part adds to each score (0 without one) and each subscriber's scale: the block's
    vectors multiplied with the candidates' centred embeddings, one dense product (on one BLAS thread, as the
    callers run it: on a busy 2-core machine two threads wait on each other, 2× slower in bench_rank)."""
    centred = window.centred_by_dimension
    if centred is None or not any(w.semantic.size for w in weights):
        return np.zeros(()), np.zeros(len(weights))
    vectors = np.zeros((len(weights), centred.shape[0]), dtype=np.float32)
    for j, w in enumerate(weights):
        if w.semantic.size:
            vectors[j] = w.semantic
    meaning = vectors @ centred
    scale = semantic.scales(tfidf, meaning, window.embedded)
    meaning *= scale[:, None].astype(np.float32)
    return meaning, scale


@contextmanager
def _dense(window: Window, weights: Sequence[Weights]) -> Iterator[np.ndarray]:
    """The weights over the window's columns, one column each (columns no candidate uses are left out).

    A full block is the window's own, reused: zeroed after use, not allocated again (a fresh block of this
    size costs more in page faults than the product); a smaller one is made for the call.
    Either is C-contiguous, as the product wants it (a column slice would be copied at every call)."""
    local, compact = window.columns
    block = (
        window.block(BLOCK)
        if len(weights) == BLOCK
        else np.zeros((compact.shape[1], len(weights)), np.float32)
    )
    for j, w in enumerate(weights):
        at = local[w.columns]
        hit = at >= 0
        block[at[hit], j] = w.values[hit]
    try:
        yield block
    finally:
        block.fill(0.0)  # one sequential pass: cheaper than zeroing each column's entries again


def _scores(window: Window, dense: np.ndarray, weights: Sequence[Weights]) -> np.ndarray:
    scores = np.asarray(window.columns[1] @ dense, dtype=np.float64).T
    prior = np.array([w.prior for w in weights])
    return scores - prior[:, None] * window.generality


def _evidence(window: Window, column: np.ndarray, meaning: np.ndarray | None) -> Callable[[int], bool]:
    """Whether a candidate has a true "why": a word shared with the positive part of these weights, or a
    semantic match (the semantic part raised its score). A paper without one is never picked, whatever its
    score after the negative parts (👎, corpus mean) moved it. Words only (two English texts share
    character 4-grams anyway), from the paper's own row (a word a short paper only borrowed from its
    neighbours is not a reason to give)."""
    words = window.words
    if meaning is None:
        return lambda i: bool((column[words[i]] > 0).any())
    return lambda i: bool(meaning[i] > 0 or (column[words[i]] > 0).any())


def choose(
    window: Window,
    scores: np.ndarray,
    allowed: np.ndarray,
    k: int,
    floor: float,
    eligible: Callable[[int], bool] | None = None,
) -> list[tuple[int, float]]:
    """The best ``k`` allowed candidates in score order, skipping the ineligible and near-copies of a pick
    already made. Scores may be negative (the 👎 and corpus-mean parts subtract), which says nothing against
    a paper on a day when every paper is below zero, so ``floor`` only applies when it is above 0."""
    chosen: list[tuple[int, float]] = []
    candidates = np.flatnonzero(allowed)
    for i in candidates[np.argsort(-scores[candidates], kind="stable")]:
        if len(chosen) == k or (floor > 0 and scores[i] < floor):
            break
        if eligible is not None and not eligible(int(i)):
            continue
        if any(window.near(int(i), c) for c, _ in chosen):
            continue
        chosen.append((int(i), float(scores[i])))
    return chosen
