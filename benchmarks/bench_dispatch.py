"""Dispatch N due subscribers to the file outbox, on SQLite and on PostgreSQL: digests per second.

    python -m benchmarks.bench_dispatch [--subscribers 10000] [--papers-days 7] [--backends sqlite,postgres]

For each backend, in a fresh database holding the last ``--papers-days`` archived daily-papers files
(../shared/data/hf_daily; synthetic distinct papers when it is absent) and N due subscribers:
* claim only  — find, claim and release every row, no send: the scheduling overhead (the baseline);
* pick only   — ``pick_digest`` for a sample of subscribers: the ranking cost inside each send;
* dispatch    — ``Dispatcher.run()``: claim, pick, render, ledger, outbox file, release, for all N.
The ratios compare each phase with the dispatch rate in the same run. PostgreSQL is skipped when its
server (``DIGEST_TEST_POSTGRES_URL``, default the local test server) does not answer.
Prints a table and writes ``benchmarks/results/bench_dispatch.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text, update

from digest.config import Settings, load_settings
from digest.db import Database
from digest.dispatch import Dispatcher, DispatchReport
from digest.ingest.service import ingest_paths
from digest.models import Delivery, Paper, Subscriber, utcnow
from digest.rank import pick_digest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DAILY = Path(os.environ.get("DIGEST_SHARED_DIR", ROOT.parent / "shared")) / "data" / "hf_daily"
PG_ADMIN_URL = os.environ.get("DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RESULTS = ROOT / "benchmarks" / "results"
SECRET = "benchmark-secret-key-0123456789"
KEYWORDS = [
    ["diffusion", "video generation"],
    ["language model", "reasoning"],
    ["robot", "embodied agent"],
    ["speech", "audio"],
    ["efficient attention", "long context"],
    ["reinforcement learning"],
    ["multimodal", "vision language"],
]
PICK_SAMPLE = 100


def load_papers(db: Database, days: int, now: dt.datetime) -> int:
    files = sorted(SHARED_DAILY.glob("*.json"))[-days:] if SHARED_DAILY.is_dir() else []
    if files:
        ingest_paths(db, files)
    else:
        _synthetic_papers(db, 10 * days)
    with db.session() as session:
        # Make them all recent so every subscriber's candidate set is the whole (modest) corpus.
        session.execute(update(Paper).values(first_seen_at=now - dt.timedelta(hours=2)))
        return session.scalar(select(func.count()).select_from(Paper))


def _synthetic_papers(db: Database, count: int) -> None:
    rng = random.Random(7)
    words = [
        f"{a}{b}"
        for a in ("neur", "graph", "token", "pixel", "robot", "audio", "sparse")
        for b in ("al", "ic", "er", "ing", "ive", "ous", "ment", "ness", "ise", "ity")
    ]
    topics = [" ".join(k) for k in KEYWORDS]
    with db.session() as session:
        for n in range(count):
            title = f"{rng.choice(topics)} with {' '.join(rng.sample(words, 4))} ({n})"
            abstract = f"We study {title}. " + " ".join(rng.sample(words, 30))
            session.add(Paper(key=f"title:bench {n}", title_key=f"bench {n}", title=title, abstract=abstract))


def add_due_subscribers(db: Database, count: int, due: dt.datetime) -> None:
    rows = [
        {
            "channel": "email",
            "email": f"reader{n}@example.org",
            "keywords": KEYWORDS[n % len(KEYWORDS)],
            "excluded_keywords": [],
            "timezone": "UTC",
            "send_time": due.strftime("%H:%M"),
            "weekdays": "0123456",
            "cadence": "daily",
            "digest_size": 10,
            "status": "active",
            "created_at": due,
            "next_send_at": due,
            "failure_count": 0,
        }
        for n in range(count)
    ]
    with db.session() as session:
        for start in range(0, count, 1000):
            session.execute(insert(Subscriber), rows[start : start + 1000])


def claim_only(db: Database, settings: Settings, now: dt.datetime) -> int:
    dispatcher = Dispatcher(db, settings, clock=lambda: now)
    report, done = DispatchReport(), 0
    while due := dispatcher.find_due(now):
        for row in due:
            claim = dispatcher.claim(row, now, report)
            if claim is not None:
                dispatcher.release(claim)
                done += 1
    return done


def pick_only(db: Database, settings: Settings, now: dt.datetime) -> int:
    with db.session() as session:
        sample = session.scalars(select(Subscriber).order_by(Subscriber.id).limit(PICK_SAMPLE)).all()
        for subscriber in sample:
            pick_digest(session, settings, subscriber, now=now)
        return len(sample)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def run_backend(name: str, settings: Settings, subscribers: int, days: int) -> dict[str, Any]:
    db = Database(settings, migrate=True)
    try:
        now = utcnow().replace(microsecond=0)
        due = now - dt.timedelta(minutes=1)
        papers = load_papers(db, days, now)
        add_due_subscribers(db, subscribers, due)
        claim_s, claimed = timed(lambda: claim_only(db, settings, now))
        with db.session() as session:  # due again, for the real run
            session.execute(update(Subscriber).values(next_send_at=due))
        pick_s, picked = timed(lambda: pick_only(db, settings, now))
        dispatch_s, report = timed(lambda: Dispatcher(db, settings, clock=lambda: now).run())
        with db.session() as session:
            ledger = session.scalar(select(func.count()).select_from(Delivery))
        outbox = sum(1 for p in settings.outbox.glob("*") if not p.name.startswith("."))
    finally:
        db.dispose()
    return {
        "backend": name,
        "papers": papers,
        "subscribers": subscribers,
        "rates_per_s": {
            "claim only": claimed / claim_s,
            "pick only": picked / pick_s,
            "dispatch": report.claimed / dispatch_s,
        },
        "seconds": {"claim only": claim_s, "pick only (sample)": pick_s, "dispatch": dispatch_s},
        "report": report.as_dict(),
        "ledger_rows": ledger,
        "outbox_files": outbox,
    }


@contextmanager
def sqlite_settings() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as folder:
        yield load_settings(data_dir=Path(folder), secret_key=SECRET)


@contextmanager
def postgres_settings() -> Iterator[Settings | None]:
    name = f"digest_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any connection error: the server is not there
        print(f"postgres: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
        yield None
        return
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dispatch-pg-") as folder:
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            yield load_settings(data_dir=Path(folder), database_url=url, secret_key=SECRET)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table(results: list[dict[str, Any]]) -> str:
    rows = [f"{'backend':<10}{'phase':<12}{'per s':>10}{'ms each':>10}{'× dispatch':>12}"]
    for result in results:
        base = result["rates_per_s"]["dispatch"]
        for phase, rate in result["rates_per_s"].items():
            rows.append(
                f"{result['backend']:<10}{phase:<12}{rate:>10.1f}{1000 / rate:>10.2f}{rate / base:>12.1f}"
            )
        rows.append(
            f"{result['backend']:<10}{result['subscribers']} due subscribers, {result['papers']} papers: "
            f"{result['report']['outcomes']}, ledger rows {result['ledger_rows']}, "
            f"outbox files {result['outbox_files']}"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000, help="due subscribers per backend")
    parser.add_argument("--papers-days", type=int, default=7, help="archived days of papers to load")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    args = parser.parse_args()
    import digest.rank  # noqa: F401  (load numpy/scipy/sklearn before any clock starts)

    results = []
    backends = {"sqlite": sqlite_settings, "postgres": postgres_settings}
    for name in args.backends.split(","):
        with backends[name]() as settings:
            if settings is not None:
                results.append(run_backend(name, settings, args.subscribers, args.papers_days))
                print(table(results[-1:]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "bench_dispatch",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "system": platform.platform(),
        },
        "results": results,
    }
    (RESULTS / "bench_dispatch.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {RESULTS / 'bench_dispatch.json'}")


if __name__ == "__main__":
    main()
