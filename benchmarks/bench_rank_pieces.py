"""The hand-made pieces of ``digest/rank`` against the library calls they stand in for.

Run: ``python -m benchmarks.bench_rank_pieces [--shared ../shared] [--repeat 5]``.

Each piece is timed on the inputs the dev files give it (best of ``--repeat``, CPU time, the hand-made
piece and the library call alternately), and its result checked against the library's. Where the piece
runs inside ``digest eval rank`` (the arxiv-sanity-lite cost ratio is measured on that run), the seconds
the library call would add there are also given as a share of the same run. Prints a table and saves
JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from digest.evaluate import case_profile, eval_rank
from digest.rank import classifier, tfidf
from digest.rank.corpus import Corpus, most_similar_first, paper_text, similar_pairs
from digest.rank.model import Profile, score_many
from digest.rank.rated import RatedPapers
from digest.rank.vectors import sparse_dot, unit, values_at

ROOT = Path(__file__).resolve().parent


def _rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _best(run: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def _compare(hand: Callable[[], Any], library: Callable[[], Any], repeat: int) -> dict[str, float]:
    hand_s = library_s = float("inf")
    for _ in range(repeat):  # alternately, so both see the same machine
        hand_s = min(hand_s, _best(hand, 1))
        library_s = min(library_s, _best(library, 1))
    return {"hand_ms": hand_s * 1e3, "library_ms": library_s * 1e3, "library_cost": library_s / hand_s}


def _corpus(papers: list[dict], seen: list[float]) -> Corpus:
    texts = [paper_text(p["title"], p.get("abstract")) for p in papers]
    return Corpus.from_texts([p["id"] for p in papers], texts, seen)


def character_counts(citeulike: list[dict], arxiv: list[dict], repeat: int) -> dict[str, dict]:
    results = {}
    for name, papers in (("titles", citeulike), ("abstracts", arxiv)):
        texts = [paper_text(p["title"], p.get("abstract")) for p in papers]
        assert (tfidf.char_counts(texts) != tfidf.CHAR_VECTORIZER.transform(texts)).nnz == 0
        results[name] = _compare(
            lambda texts=texts: tfidf.char_counts(texts),
            lambda texts=texts: tfidf.CHAR_VECTORIZER.transform(texts).tocsr(),
            repeat,
        )
    return results


def neighbour_sort(corpus: Corpus, repeat: int) -> dict[str, float]:
    """The sort of the (row, other row) pairs when short papers look for their nearest papers."""
    plain = corpus.statistics.terms.weigh(corpus._all_counts())  # the rows before smoothing
    row, _, value = similar_pairs(plain, corpus.df, np.arange(len(corpus)))
    return _compare(lambda: most_similar_first(row, value), lambda: np.lexsort((-value, row)), repeat)


def centroid_units(corpus: Corpus, cases: list[dict], repeat: int) -> dict[str, float]:
    """``unit`` on the 👍 and 👎 centroids of every case's cold derivation (two per case)."""
    vectors = []
    for case in cases:
        labels = {paper: 1 for paper in case["liked"]} | {paper: -1 for paper in case["disliked"]}
        rated = RatedPapers.build(corpus, None, labels)
        vectors += [rated.sums[0] / max(len(case["liked"]), 1), rated.sums[1] / max(len(case["disliked"]), 1)]
    return _compare(
        lambda: [unit(v) for v in vectors], lambda: [normalize(v.reshape(1, -1)) for v in vectors], repeat
    )


def scoring_many(corpus: Corpus, cases: list[dict], candidates: sp.csr_matrix, repeat: int) -> dict:
    """``score_many`` for eval rank's first 1,024 cases against the sparse product of their weights."""
    profiles = [case_profile(case) for case in cases[:1024]]
    weights = sp.vstack([p.weights(corpus) for p in profiles], format="csr")  # derived once, for both
    priors = np.array([p.parts(corpus).prior for p in profiles])[:, None]
    generality = corpus.generality(candidates)

    def library() -> np.ndarray:
        return (candidates @ weights.T).T.toarray() - priors * generality

    assert np.allclose(score_many(profiles, corpus, candidates), library(), atol=1e-5)
    return _compare(lambda: score_many(profiles, corpus, candidates), library, repeat)


def products(corpus: Corpus, repeat: int) -> dict[str, dict]:
    """A pick's sparse products on the arXiv file: the day's candidates by a 300-rating profile's weights,
    the chosen papers by one paper (near-copies), the liked papers by one paper (explanations); and the
    paper's and the weights' values at its terms (explanations)."""
    rng = np.random.default_rng(0)
    rated = rng.choice(len(corpus), size=300, replace=False)
    profile = Profile(["Sound"], {corpus.ids[i]: int(rng.choice([1, -1])) for i in rated})
    weights, matrix = profile.weights(corpus), corpus.matrix
    liked = corpus.rows_of(profile.parts(corpus).liked_ids)
    results = {}
    for name, rows, vector in (
        ("day x weights", matrix[-200:], weights),
        ("picks x paper", matrix[:10], matrix[20]),
        ("liked x paper", liked, matrix[20]),
    ):
        assert np.allclose(sparse_dot(rows, vector), (rows @ vector.T).toarray().ravel(), atol=1e-6)
        results[f"sparse_dot {name}"] = _compare(
            lambda r=rows, v=vector: sparse_dot(r, v), lambda r=rows, v=vector: (r @ v.T).toarray(), repeat
        )
    columns = tfidf.term_columns(sorted(set(tfidf.ANALYZER(paper_text("Speech synthesis", "audio " * 50)))))
    own = corpus.own([20])
    terms = np.union1d(columns, own.indices[own.indices < tfidf.BLOCK])
    for name, row in (("paper", own), ("weights", weights)):
        assert np.array_equal(values_at(row, terms), row[:, terms].toarray().ravel())
        results[f"values_at {name}"] = _compare(
            lambda r=row: values_at(r, terms), lambda r=row: r[:, terms].toarray(), repeat
        )
    return results


def classifier_fit(corpus: Corpus, repeat: int) -> dict[str, float]:
    """The L-BFGS fit of a click at 300 ratings: the loss given to SciPy against ``LogisticRegression``."""
    rng = np.random.default_rng(1)
    rated = rng.choice(len(corpus), size=300, replace=False)
    profile = Profile([], {corpus.ids[i]: int(rng.choice([1, -1])) for i in rated})
    profile.parts(corpus)
    state = profile._rated
    assert state is not None and state.gram is not None
    kernel = classifier._kernel(state.gram, state.classifier_rows, state.background)
    labels, weights = classifier._targets(state.classifier_liked, kernel.shape[0] - state.gram.shape[0])
    factor = np.linalg.cholesky(kernel)

    def hand() -> None:
        scipy.optimize.minimize(
            classifier._logistic_loss,
            np.zeros(kernel.shape[0]),
            args=(factor, labels, classifier.CLASSIFIER_C * weights),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": classifier.CLASSIFIER_MAX_ITER},
        )

    def library() -> None:
        LogisticRegression(
            C=classifier.CLASSIFIER_C, fit_intercept=False, max_iter=classifier.CLASSIFIER_MAX_ITER
        ).fit(factor, labels, sample_weight=weights)

    with classifier.one_blas_thread():
        return _compare(hand, library, repeat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent.parent / "shared")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cul, arx = args.shared / "eval" / "citeulike_cold", args.shared / "eval" / "arxiv_replay"
    citeulike, arxiv, cases = (
        _rows(cul / "papers.jsonl.gz"),
        _rows(arx / "papers.jsonl.gz"),
        _rows(cul / "cases.jsonl.gz"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        eval_rank(cul / "papers.jsonl.gz", cul / "cases.jsonl.gz", Path(tmp) / "r.jsonl")
        eval_rank_s = time.process_time() - start
    fresh = {p["id"] for p in citeulike if p.get("split") == "candidate"}
    cite_corpus = _corpus(citeulike, [float(p["id"] in fresh) for p in citeulike])  # as eval rank has it
    candidates = cite_corpus.matrix[cite_corpus.rows([p["id"] for p in citeulike if p["id"] in fresh])]
    newest = max(p["date"] for p in arxiv)
    arxiv_corpus = _corpus(arxiv, [float(p["date"] == newest) * 30 for p in arxiv])
    counts = character_counts(citeulike, arxiv, args.repeat)
    in_eval_rank = {  # pieces that run inside `digest eval rank`, each as often as there
        "char_counts titles": counts.pop("titles"),
        "neighbour sort": neighbour_sort(cite_corpus, args.repeat),
        "unit (centroids)": centroid_units(cite_corpus, cases, args.repeat),
        "score_many (1,024 cases)": scoring_many(cite_corpus, cases, candidates, args.repeat),
    }
    for values in in_eval_rank.values():
        values["eval_rank_share"] = (values["library_ms"] - values["hand_ms"]) / 1e3 / eval_rank_s
    elsewhere = {"char_counts abstracts": counts.pop("abstracts"), **products(arxiv_corpus, args.repeat)}
    elsewhere["classifier fit (300 ratings)"] = classifier_fit(arxiv_corpus, args.repeat)
    results = {"eval_rank_cpu_s": eval_rank_s, "in_eval_rank": in_eval_rank, "elsewhere": elsewhere}
    print(f"digest eval rank: {eval_rank_s:.2f} s CPU")
    for group in (in_eval_rank, elsewhere):
        for name, values in group.items():
            cells = "  ".join(f"{k}={v:.3g}" for k, v in values.items())
            print(f"{name:<30} {cells}")
    out = ROOT / "results" / "bench_rank_pieces.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
