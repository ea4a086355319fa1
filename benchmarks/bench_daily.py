"""One full day of the service at scale: a corpus of N papers, S subscribers, today's file, the whole send.

    python -m benchmarks.bench_daily [--papers 150000] [--subscribers 100000] [--per-day 300]
        [--rated-share 0.1] [--processes 2] [--small 5000] [--sample 1000] [--postgres URL] [--keep DIR]

The corpus is daily-papers API JSON built from the real archive's texts (``../shared/data/hf_daily``) with
half the words of each abstract and a third of each title swapped for other words of the archive, one file
per day (``--per-day`` papers), ingested day by day under a clock set to that day, so papers leave the
candidate window as they would. Subscribers get 1–3 keyword phrases from the archive's titles; a share of
them (``--rated-share``) 5–30 ratings of last week's papers, their models derived and stored as a vote
would; yesterday's run is replayed by deriving every subscriber's weights (stored, as a day's send
leaves them). Mail goes to the file outbox. Then, timed:

* today's file ingested, and the first digest after it (``send_digest``: a chunk of one);
* the whole send, ``digest send --processes P`` in its own process: wall time, its phases (claim/read, pick,
  render, ledger, transport), peak RSS of it and its worker processes; every subscriber must get exactly one
  digest (ledger rows = outbox files = subscribers);
* the floor in the same run: per subscriber, the bare product against the window, the top 10 and one
  10-pick email rendered (one process); the whole send is compared with the floor spread over P processes;
* the per-subscriber path (``send_digest`` one at a time) against the batch on a sample (``--sample``),
  both as dry runs, in one process;
* the pick at a ``--small`` corpus against the pick at the full corpus (same subscribers' kind, same code);
* ``digest serve``'s peak RSS on the full database (start-up, health check, one vote).

Every figure is printed beside what it is compared with, measured in the same run. Results go to
``benchmarks/results/bench_daily.json``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import time_machine
from sqlalchemy import func, insert, select

from digest.config import Settings, load_settings
from digest.db import Database
from digest.dispatch import send_digest, send_many
from digest.ingest.service import ingest_bytes
from digest.models import Delivery, DeliveryStatus, Feedback, Paper, Subscriber, SubscriberModel
from digest.rank import library_for
from digest.rank.cache import weights_for
from digest.rank.model import Profile
from digest.rank.scoring import score_block
from digest.rank.window import build_window
from digest.render import digest_context, make_message
from digest.signing import links_for
from digest.subscribers import import_csv

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DIGEST_SHARED_DIR", ROOT.parent / "shared"))
RESULTS = ROOT / "benchmarks" / "results" / "bench_daily.json"
SECRET = "benchmark-secret-key-0123456789"
WORD = re.compile(r"[A-Za-z][A-Za-z-]+")


# --- the data -----------------------------------------------------------------------------------------


def archive_papers() -> list[tuple[str, str]]:
    """(title, abstract) of every distinct paper of the archived daily-papers responses."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted((SHARED / "data" / "hf_daily").glob("*.json")):
        data = json.loads(path.read_text())
        for item in data if isinstance(data, list) else []:
            paper = item.get("paper") if isinstance(item, dict) else None
            if isinstance(paper, dict) and paper.get("summary") and paper.get("title"):
                found[paper["id"]] = (" ".join(paper["title"].split()), " ".join(paper["summary"].split()))
    return list(found.values())


class Perturber:
    """New papers from real ones: a share of their words swapped for words of the whole archive."""

    def __init__(self, papers: list[tuple[str, str]], seed: int) -> None:
        self.papers, self.rng = papers, random.Random(seed)
        counts = Counter(w for t, a in papers for w in WORD.findall(f"{t} {a}"))
        self.vocabulary = [w for w, n in counts.items() if n >= 3]

    def paper(self) -> tuple[str, str]:
        title, abstract = self.rng.choice(self.papers)
        return self._swap(title, 1 / 3), self._swap(abstract, 1 / 2)

    def _swap(self, text: str, share: float) -> str:
        words = text.split()
        return " ".join(self.rng.choice(self.vocabulary) if self.rng.random() < share else w for w in words)


def day_file(perturber: Perturber, day: dt.date, count: int, first: int) -> bytes:
    """One day's daily-papers API response of ``count`` papers, ids numbered from ``first``."""
    items = []
    for n in range(first, first + count):
        title, abstract = perturber.paper()
        paper = {
            "id": f"{(n // 100000) % 90 + 10:02d}{n // 100000 // 90 % 12 + 1:02d}.{n % 100000:05d}",
            "title": title,
            "summary": abstract,
            "authors": [{"name": "A. Author"}, {"name": "B. Author"}],
            "publishedAt": f"{day.isoformat()}T00:00:00.000Z",
        }
        items.append({"paper": paper, "title": title})
    return json.dumps(items).encode()


def keyword_pool(papers: list[tuple[str, str]], size: int = 400) -> list[str]:
    """Frequent two-word phrases of the archive's titles: what subscribers type."""
    stop = {"the", "and", "for", "with", "from", "via", "of", "in", "on", "to", "a", "an", "by", "is", "are"}
    counts: Counter[str] = Counter()
    for title, _ in papers:
        words = [w.lower() for w in WORD.findall(title)]
        counts.update(
            f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if a not in stop and b not in stop
        )
    return [phrase for phrase, _ in counts.most_common(size)]


# --- building a database ------------------------------------------------------------------------------


def settings_for(folder: Path, database_url: str | None) -> Settings:
    extra = {"database_url": database_url} if database_url else {}
    return load_settings(
        data_dir=folder, secret_key=SECRET, base_url="http://digest.example.org", hf_daily_url="", **extra
    )


def ingest_history(db: Database, perturber: Perturber, days: list[dt.date], per_day: int) -> float:
    """Ingest one file a day under a clock set to that day; returns the seconds it took."""
    started = time.perf_counter()
    for index, day in enumerate(days):
        data = day_file(perturber, day, per_day, index * per_day)
        with time_machine.travel(dt.datetime.combine(day, dt.time(6), dt.UTC), tick=False):
            ingest_bytes(db, f"history-{day.isoformat()}.json", data, digest_date=day)
    return time.perf_counter() - started


def add_subscribers(db: Database, settings: Settings, count: int, pool: list[str], seed: int) -> float:
    rng = random.Random(seed)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["email", "keywords", "time", "timezone"])
    for n in range(count):
        writer.writerow(
            [f"reader{n}@example.org", ", ".join(rng.sample(pool, rng.randint(1, 3))), "08:00", "UTC"]
        )
    started = time.perf_counter()
    with db.session() as session:
        report = import_csv(session, settings, io.StringIO(rows.getvalue()))
    assert not report.errors, report.errors[:3]
    return time.perf_counter() - started


def add_ratings(db: Database, share: float, seed: int, now: dt.datetime) -> tuple[int, float]:
    """Give a share of the subscribers 5–30 ratings of last week's papers, stored and derived as votes are."""
    rng = random.Random(seed)
    with db.session() as session:
        ids = list(session.scalars(select(Subscriber.id)))
        recent = list(
            session.scalars(select(Paper.id).where(Paper.first_seen_at >= now - dt.timedelta(days=9)))
        )
    rated = rng.sample(ids, int(len(ids) * share))
    started = time.perf_counter()
    for at in range(0, len(rated), 256):
        _rate_chunk(db, rated[at : at + 256], recent, rng, now)
    return len(rated), time.perf_counter() - started


def _rate_chunk(
    db: Database, ids: list[int], recent: list[int], rng: random.Random, now: dt.datetime
) -> None:
    with db.session() as session:
        feedback, models = [], []
        subscribers = {s.id: s for s in session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))}
        for sid in ids:
            labels = {paper: rng.choice((1, -1)) for paper in rng.sample(recent, rng.randint(5, 30))}
            feedback += [
                {"subscriber_id": sid, "paper_id": p, "value": v, "source": "web", "created_at": now}
                for p, v in labels.items()
            ]
            models.append(
                {
                    "subscriber_id": sid,
                    "version": 1,
                    "state": Profile(subscribers[sid].keywords, labels).to_state(),
                    "updated_at": now,
                }
            )
        session.execute(insert(Feedback), feedback)
        session.execute(insert(SubscriberModel), models)
        weights_for(library_for(session), list(subscribers.values()))  # derived and stored, as after a vote


def derive_all(db: Database) -> float:
    """Yesterday's run: every subscriber's weights derived and stored (keyword-only ones per keyword set),
    as a day's send leaves them; today's send then derives only what today made stale. Seconds it took."""
    started = time.perf_counter()
    with db.session() as session:
        ids = list(session.scalars(select(Subscriber.id)))
    for at in range(0, len(ids), 1000):
        with db.session() as session:
            chunk = list(session.scalars(select(Subscriber).where(Subscriber.id.in_(ids[at : at + 1000]))))
            weights_for(library_for(session), chunk)
    return time.perf_counter() - started


# --- the measurements -----------------------------------------------------------------------------------


def timed(run: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def floor(db: Database, settings: Settings, sample: list[int], now: dt.datetime) -> float:
    """Seconds per subscriber of the bare work: the product against the window, the top 10, one render."""
    with db.session() as session:
        window = build_window(session, now - dt.timedelta(days=settings.recency_days))
        subscribers = list(session.scalars(select(Subscriber).where(Subscriber.id.in_(sample))))
        weights = weights_for(library_for(session), subscribers)
        papers = list(session.scalars(select(Paper).where(Paper.id.in_(window.ids[:10]))))
    links = links_for(settings)
    started = time.perf_counter()
    scores = score_block(window, [weights[s.id] for s in subscribers])
    for subscriber, row in zip(subscribers, scores, strict=True):
        top = np.argpartition(-row, 10)[:10]
        picks = [_Pick(papers[i % len(papers)], float(row[t])) for i, t in enumerate(top)]
        make_message("digest", digest_context(subscriber, picks, links, now.date()))
    return (time.perf_counter() - started) / len(subscribers)


class _Pick:
    def __init__(self, paper: Paper, score: float) -> None:
        self.paper, self.score, self.why = paper, score, "mentions your keyword x"


def per_subscriber_path(
    db: Database, settings: Settings, sample: list[int], now: dt.datetime
) -> tuple[float, float]:
    """Seconds per subscriber, dry runs on ``sample``: one at a time (``send_digest``) and as one batch."""
    day = now.date()
    _, single = timed(lambda: [send_digest(db, settings, sid, day, now=now, dry_run=True) for sid in sample])
    _, batch = timed(lambda: send_many(db, settings, sample, digest_date=day, now=now, dry_run=True))
    return single / len(sample), batch / len(sample)


def pick_per_subscriber(db: Database, settings: Settings, sample: list[int], now: dt.datetime) -> float:
    """Seconds per subscriber of the pick phase of a dry-run batch (the window already read)."""
    day = now.date()
    send_many(db, settings, sample[:10], digest_date=day, now=now, dry_run=True)  # window read, caches warm
    report = send_many(db, settings, sample, digest_date=day, now=now, dry_run=True)
    return report.phases.seconds["pick"] / len(sample)


def whole_send(folder: Path, settings: Settings, processes: int) -> dict[str, Any]:
    """``digest send`` over every subscriber in its own process: wall time, phases, peak RSS."""
    env = _env(folder, settings)
    command = [sys.executable, "-m", "digest", "send", "--quiet", "--json", f"--processes={processes}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):
        raise SystemExit(f"digest send failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": wall, "peak_rss_mb": max(peak, before) / 1024, "summary": summary}


def _env(folder: Path, settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATA_DIR=str(folder),
        DIGEST_SECRET_KEY=SECRET,
        DIGEST_BASE_URL="http://digest.example.org",
        DIGEST_HF_DAILY_URL="",
        DIGEST_LOG_LEVEL="WARNING",
    )
    if settings.database_url:
        env["DIGEST_DATABASE_URL"] = settings.database_url
    return env


def serve_peak(folder: Path, settings: Settings) -> float:
    """Peak RSS (MB) of ``digest serve`` on the database: start-up, a health check, its jobs' first run."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _env(folder, settings) | {"DIGEST_INBOX_POLL_SECONDS": "3600"}
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0.0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, _rss_mb(process.pid))
            time.sleep(0.5)
            if time.monotonic() > deadline - 100 and _healthy(port):
                break
        for _ in range(20):  # its jobs ran at start (every digest is sent already: they find nothing due)
            peak = max(peak, _rss_mb(process.pid))
            time.sleep(0.25)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
    return peak


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            return b"200" in connection.recv(64)
    except OSError:
        return False


def counted(db: Database, folder: Path) -> dict[str, int]:
    with db.session() as session:
        sent = session.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.SENT))
        subscribers = session.scalar(select(func.count()).select_from(Subscriber))
        rows = session.scalar(select(func.count()).select_from(Delivery))
    files = sum(1 for _ in (folder / "outbox").glob("*.eml")) if (folder / "outbox").exists() else 0
    return {"subscribers": subscribers, "ledger_rows": rows, "sent": sent, "outbox_files": files}


# --- one database, end to end ---------------------------------------------------------------------------


def build(
    folder: Path, args: argparse.Namespace, papers: int, subscribers: int, database_url: str | None
) -> tuple[Database, Settings, dict[str, float]]:
    settings = settings_for(folder, database_url)
    db = Database(settings, migrate=True)
    archive = archive_papers()
    perturber = Perturber(archive, seed=1)
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in range(papers // args.per_day, 0, -1)]
    setup = {"ingest_history": ingest_history(db, perturber, days, args.per_day)}
    _, setup["first_window_ever"] = timed(lambda: _window(db, settings))  # ages the history once
    setup["subscribers"] = add_subscribers(db, settings, subscribers, keyword_pool(archive), seed=2)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rated, setup["ratings"] = add_ratings(db, args.rated_share, 3, now)
    setup["rated_subscribers"] = rated
    setup["derive_all"] = derive_all(db)  # from the window, as a day's send derives them
    setup["today_file"] = day_file(perturber, today, args.per_day, len(days) * args.per_day)  # type: ignore[assignment]
    return db, settings, setup


def _window(db: Database, settings: Settings) -> None:
    with db.session() as session:
        build_window(
            session, dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=settings.recency_days)
        )


def the_day(
    folder: Path, db: Database, settings: Settings, setup: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    _, ingest = timed(lambda: ingest_bytes(db, "today.json", setup.pop("today_file"), digest_date=now.date()))
    with db.session() as session:
        first_id = session.scalar(select(Subscriber.id).order_by(Subscriber.id).limit(1))
        sample = list(session.scalars(select(Subscriber.id).order_by(func.random()).limit(args.sample)))
    _, first = timed(lambda: send_digest(db, settings, first_id, now.date(), now=now, dry_run=True))
    result: dict[str, Any] = {"ingest_today": ingest, "first_digest": first}
    result["floor_per_subscriber"] = floor(db, settings, sample, now)
    result["single_per_subscriber"], result["batch_per_subscriber"] = per_subscriber_path(
        db, settings, sample[:200], now
    )
    result["pick_per_subscriber"] = pick_per_subscriber(db, settings, sample, now)
    result["send"] = whole_send(folder, settings, args.processes)
    result["counts"] = counted(db, folder)
    result["serve_peak_rss_mb"] = serve_peak(folder, settings)
    result["database_mb"] = _database_mb(folder, settings)
    return result


def _database_mb(folder: Path, settings: Settings) -> float:
    if settings.database_url:
        return float("nan")
    return sum(p.stat().st_size for p in folder.glob("digest.sqlite3*")) / 1e6


def small_pick(args: argparse.Namespace) -> float:
    """Pick per subscriber at the small corpus (its own database, same kinds of subscribers)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-daily-small-"))
    try:
        db, settings, _ = build(folder, args, args.small, min(args.sample, 2000), None)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with db.session() as session:
            sample = list(session.scalars(select(Subscriber.id).limit(args.sample)))
        value = pick_per_subscriber(db, settings, sample, now)
        db.dispose()
        return value
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, setup: dict[str, Any], day: dict[str, Any], small: float
) -> dict[str, Any]:
    send, counts = day["send"], day["counts"]
    n = counts["subscribers"]
    floor_total = day["floor_per_subscriber"] * n / args.processes
    single, batch, pick = (
        day["single_per_subscriber"],
        day["batch_per_subscriber"],
        day["pick_per_subscriber"],
    )
    rated = setup["rated_subscribers"]
    rows = [
        ("corpus / subscribers", f"{args.papers:,} papers / {n:,} subscribers ({rated:,} with ratings)"),
        ("whole send (wall)", f"{send['wall']:.1f} s = {n / send['wall']:.0f} digests/s"),
        (
            "floor for the same (bare product + top 10 + one render, / processes)",
            f"{floor_total:.1f} s → send is {send['wall'] / floor_total:.2f}× the floor",
        ),
        ("phases of the send (seconds, all processes)", json.dumps(send["summary"].get("phases", {}))),
        (
            "per subscriber: one at a time vs batch (dry run, sample)",
            f"{single * 1000:.2f} vs {batch * 1000:.2f} ms → {single / batch:.1f}×",
        ),
        (
            "pick per subscriber: small vs full corpus",
            f"{small * 1000:.3f} ms at {args.small:,} vs {pick * 1000:.3f} ms at {args.papers:,}"
            f" → {pick / small:.2f}×",
        ),
        ("today's file: ingest + first digest", f"{day['ingest_today']:.2f} + {day['first_digest']:.2f} s"),
        (
            "peak RSS: digest send / digest serve",
            f"{send['peak_rss_mb']:.0f} / {day['serve_peak_rss_mb']:.0f} MB",
        ),
        ("database size", f"{day['database_mb']:.0f} MB"),
        (
            "exactly once: subscribers / ledger rows / sent / outbox files",
            " / ".join(str(counts[k]) for k in ("subscribers", "ledger_rows", "sent", "outbox_files")),
        ),
        (
            "setup: history ingest / subscribers / ratings / yesterday's weights / first window ever (s)",
            " / ".join(
                f"{setup[k]:.1f}"
                for k in ("ingest_history", "subscribers", "ratings", "derive_all", "first_window_ever")
            ),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return {
        "args": vars(args),
        "setup": setup,
        "day": day,
        "small_pick_per_subscriber": small,
        "floor_total": floor_total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=150_000)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--per-day", type=int, default=300)
    parser.add_argument("--rated-share", type=float, default=0.1)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--sample", type=int, default=1_000)
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database instead of SQLite")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args(argv)
    if not (SHARED / "data" / "hf_daily").is_dir():
        print(f"skipped: {SHARED}/data/hf_daily is not there (the corpus is built from its texts)")
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-daily-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        db, settings, setup = build(folder, args, args.papers, args.subscribers, args.postgres)
        day = the_day(folder, db, settings, setup, args)
        db.dispose()
        small = small_pick(args)
        results = report(args, setup, day, small)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, default=str))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
