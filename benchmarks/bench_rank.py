"""Cost (and quality) of the ranking model.

Run: ``python benchmarks/bench_rank.py [--shared ../shared] [--sample 60] [--events 300]``.

Measures, on the dev files of ``../shared/eval``: ``digest eval rank`` (whole CiteULike file), the
arxiv-sanity-lite reference method (its TF-IDF settings + LinearSVC C=0.01, balanced, everything not liked
negative) on a sample of the same users with the per-user cost ratio, ``digest eval replay``, and the
p50/p99 of one ``record_feedback`` on a migrated SQLite database: event stored only, event stored + model
updated so it is ready to score (the default; the issue's ≤ 20 ms), and the model derived cold from its
stored state (after a restart or new papers). With the ``semantic`` extra: the model's load time, its
throughput on a day's 300 papers (title + abstract, as the embed step runs), and ``digest eval rank`` once
more with the semantic part off, so the per-user cost of each is measured in the same run (the papers'
embeddings are read from the eval cache, filled before timing: a paper is embedded once, not per user).
Prints a table and saves JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from digest.config import load_settings
from digest.db import Database
from digest.evaluate import embeddings, eval_rank, eval_replay
from digest.models import Paper, Subscriber, SubscriberModel
from digest.rank import Profile, encoder, library_for, pick_digest, record_feedback
from digest.rank.corpus import paper_text
from digest.rank.embeddings import store as store_embeddings
from digest.rank.library import index_stored

DAY = 300  # a day's new papers

ROOT = Path(__file__).resolve().parent


def _rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _timed(run, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = run(*args)
    return result, time.perf_counter() - start


def arxiv_sanity_reference(papers_path: Path, cases_path: Path, sample: int) -> dict:
    """The reference method on the first ``sample`` users: recall@100 and seconds per user."""
    papers, cases = _rows(papers_path), _rows(cases_path)[:sample]
    vectorizer = TfidfVectorizer(
        strip_accents="unicode", lowercase=True, analyzer="word", stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2), max_features=20000,
        norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True, max_df=0.1, min_df=5,
    )  # fmt: skip
    matrix = vectorizer.fit_transform([p["title"] + " " + (p.get("abstract") or "") for p in papers])
    index = {p["id"]: i for i, p in enumerate(papers)}
    candidates = np.array([i for i, p in enumerate(papers) if p["split"] == "candidate"])
    recalls, start = [], time.perf_counter()
    for case in cases:
        labels = np.zeros(len(papers))
        labels[[index[i] for i in case["liked"]]] = 1
        svm = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01).fit(matrix, labels)
        top = candidates[np.argsort(-svm.decision_function(matrix[candidates]))[:100]]
        relevant = {index[i] for i in case["relevant"]}
        recalls.append(len(relevant & set(top)) / min(len(relevant), 100))
    return {"recall@100": float(np.mean(recalls)), "s_per_user": (time.perf_counter() - start) / len(cases)}


def _percentiles(name: str, timings: list[float]) -> dict:
    return {f"{name}_p{q}_ms": float(np.percentile(timings, q)) for q in (50, 99)}


def feedback_latency(papers_path: Path, events: int) -> dict:
    """p50/p99 of one ``record_feedback`` on a migrated SQLite database, three ways.

    ``store``: the event stored and the ratings saved, model left to be updated when next used
    (``update=False``); ``update``: the same plus the model brought up to date under the current corpus
    (the default: what a click costs end to end); ``cold``: deriving that model from its stored state alone,
    what the first use after a restart or after new papers arrive pays. Two subscribers with the same
    keywords rate the same random papers with the same random values, one per mode.
    """
    papers = _rows(papers_path)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), secret_key="bench-secret-key-0123456789")
        db = Database(settings, migrate=True)
        with db.session() as session:
            # Each paper first seen on its listing date, so the older ones are the classifiers' background.
            now = dt.datetime.fromisoformat(max(p["date"] for p in papers)) + dt.timedelta(hours=12)
            session.add_all(
                Paper(key=f"title:{p['id']}", title_key=p["id"], title=p["title"], abstract=p.get("abstract"),
                      first_seen_at=dt.datetime.fromisoformat(p["date"]))
                for p in papers
            )  # fmt: skip
            store_only, updated = (
                Subscriber(channel="email", email=f"{n}@example.org", keywords=["Sound"]) for n in "ab"
            )
            session.add_all([store_only, updated])
            session.flush()
            ids = list(
                session.scalars(Paper.__table__.select().with_only_columns(Paper.id).order_by(Paper.id))
            )
            # As the service has them: every paper indexed at ingest and embedded after (the vectors from the
            # eval cache), so a click measures the click, not the indexing or a lookup of missing vectors.
            index_stored(session, ids)
            vectors = embeddings([paper_text(p["title"], p.get("abstract")) for p in papers])
            if vectors is not None:
                store_embeddings(session, ids, vectors)
            pick_digest(session, settings, updated, now=now)  # warms the per-process corpus cache
            corpus = library_for(session)
            rng, timings = np.random.default_rng(0), {"store": [], "update": [], "cold": []}
            for paper_id in rng.choice(ids, size=events, replace=False):
                value = int(rng.choice([1, -1]))
                for name, subscriber in (("store", store_only), ("update", updated)):
                    start = time.perf_counter()
                    update = name == "update"
                    record_feedback(session, subscriber, int(paper_id), value, "bench", update=update)
                    timings[name].append((time.perf_counter() - start) * 1000)
                state = session.get(SubscriberModel, updated.id).state
                start = time.perf_counter()
                Profile.from_state(state).parts(corpus)
                timings["cold"].append((time.perf_counter() - start) * 1000)
            _, pick_seconds = _timed(lambda: pick_digest(session, settings, updated, now=now))
        db.dispose()
    percentiles = {k: v for name, values in timings.items() for k, v in _percentiles(name, values).items()}
    return {**percentiles, "events": events, "corpus_papers": len(papers), "pick_digest_s": pick_seconds}


def embedding_cost(papers_path: Path) -> dict:
    """Load time of the model and papers/s on a day's papers (the newest DAY of the replay file)."""
    start = time.perf_counter()
    model = encoder.encoder()
    load_s = time.perf_counter() - start
    if model is None:
        return {"installed": False}
    day = [paper_text(p["title"], p.get("abstract")) for p in _rows(papers_path)[-DAY:]]
    _, seconds = _timed(model.encode, day)
    titles, title_s = _timed(model.encode, [t.split("\n")[0] for t in day])
    return {
        "model": encoder.MODEL_ID,
        "load_s": load_s,
        "day_papers": DAY,
        "day_s": seconds,
        "papers_per_s": DAY / seconds,
        "titles_per_s": len(titles) / title_s,
        "goal_day_s": 30,
        "stored_bytes_per_paper": 2 * encoder.DIMENSION,
        "stored_mb_per_100k": 2 * encoder.DIMENSION * 100_000 / 1e6,
    }


def _without_semantic(run, *args):  # type: ignore[no-untyped-def]
    """``run`` with the semantic part off (as without the extra)."""
    installed, loaded = encoder.installed, dict(encoder._LOADED)
    encoder.installed, encoder._LOADED["default"] = (lambda: False), None  # type: ignore[assignment]
    try:
        return run(*args)
    finally:
        encoder.installed = installed  # type: ignore[assignment]
        encoder._LOADED.clear()
        encoder._LOADED.update(loaded)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent.parent / "shared")
    parser.add_argument("--sample", type=int, default=60, help="users for the arxiv-sanity-lite reference")
    parser.add_argument("--events", type=int, default=300, help="feedback events for the latency measure")
    args = parser.parse_args()
    cul, arx = args.shared / "eval" / "citeulike_cold", args.shared / "eval" / "arxiv_replay"
    embedding = embedding_cost(arx / "papers.jsonl.gz")
    for path in (cul / "papers.jsonl.gz", arx / "papers.jsonl.gz"):  # each paper embedded once, before timing
        embeddings([paper_text(p["title"], p.get("abstract")) for p in _rows(path)])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rank, rank_s = _timed(eval_rank, cul / "papers.jsonl.gz", cul / "cases.jsonl.gz", out / "r.jsonl")
        plain, plain_s = _without_semantic(
            _timed, eval_rank, cul / "papers.jsonl.gz", cul / "cases.jsonl.gz", out / "t.jsonl"
        )
        replay, replay_s = _timed(eval_replay, arx / "papers.jsonl.gz", arx / "users.jsonl.gz", out / "p")
    reference = arxiv_sanity_reference(cul / "papers.jsonl.gz", cul / "cases.jsonl.gz", args.sample)
    ours_per_user, theirs, events = rank_s / rank["users"], reference["s_per_user"], args.events
    results = {
        "embedding": embedding,
        "eval_rank": {"seconds": rank_s, "goal_s": 30, "ms_per_user": 1000 * ours_per_user, **rank},
        "eval_rank_tfidf_only": {"seconds": plain_s, "ms_per_user": 1000 * plain_s / plain["users"], **plain},
        "eval_replay": {"seconds": replay_s, "goal_s": 60, **replay},
        "arxiv_sanity_lite": {**reference, "users": args.sample, "ms_per_user": 1000 * theirs,
                              "cost_ratio": theirs / ours_per_user,
                              "cost_ratio_tfidf_only": theirs * plain["users"] / plain_s,
                              "goal_ratio": 25},
        "record_feedback": {**feedback_latency(arx / "papers.jsonl.gz", args.events), "goal_p99_ms": 20},
        "record_feedback_tfidf_only": _without_semantic(feedback_latency, arx / "papers.jsonl.gz", events),
    }  # fmt: skip
    for name, values in results.items():
        cells = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        print(f"{name:<18} " + "  ".join(cells))
    out = ROOT / "results" / "bench_rank.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
