"""Votes while a maximum-size file is ingested on SQLite (goal: no ingest holds the write lock for more than
a second or two; every vote answers 2xx within 1 s).

    python -m benchmarks.bench_write_lock [--entries 1400000] [--baseline-tree DIR] [--vote-every 0.25]

Generates a JSON digest file of ``--entries`` small entries (1.4 M entries make 49 MB, just under the
50 MiB DIGEST_MAX_FILE_BYTES default), then, for this tree (and ``--baseline-tree``, e.g. a
``git archive`` of the previous commit, run back to back on the same file), in separate processes: the web
app under uvicorn, ``digest ingest FILE``, a vote every ``--vote-every`` seconds over HTTP, and a probe that
tries to take SQLite's write lock every 2 ms without waiting, so the longest stretch it could not is the
longest time one writer held the lock. Prints one table; writes ``benchmarks/results/bench_write_lock.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

SECRET = "benchmark-secret-key-not-for-production"
PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results"
VOTE_TIMEOUT = 120.0


def write_big_file(path: Path, entries: int) -> Path:
    """``entries`` entries of ~35 bytes each: a title and nothing else (the most rows per byte)."""
    if path.exists() and path.stat().st_size > entries * 30:
        return path
    with path.open("w") as handle:
        handle.write("[")
        for n in range(entries):
            handle.write(("," if n else "") + json.dumps({"title": f"Small entry {n:08d}"}))
        handle.write("]")
    return path


SEED = """
import sys
from digest.config import load_settings
from digest.db import Database
from digest.models import Paper
from digest.signing import links_for
from digest.subscribers import create_subscriber
settings = load_settings(data_dir=sys.argv[1], secret_key=sys.argv[2], base_url="http://127.0.0.1")
db = Database(settings, migrate=True)
with db.session() as session:
    session.add(Paper(key="title:seed", title_key="seed", title="Seed paper", authors=[]))
    session.flush()
    sid = create_subscriber(session, settings, email="ada@example.org", keywords="diffusion").id
    paper = session.query(Paper).one().id
print(links_for(settings).feedback(sid, paper, "up").split("/feedback/", 1)[1])
"""

WHICH = "import digest; print(digest.__file__)"

SERVE = """
import sys, uvicorn
from digest.config import load_settings
from digest.db import Database
from digest.web.app import create_app
port = int(sys.argv[3])
settings = load_settings(data_dir=sys.argv[1], secret_key=sys.argv[2], base_url=f"http://127.0.0.1:{port}")
uvicorn.run(create_app(settings, Database(settings)), host="127.0.0.1", port=port, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(tree: Path, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "DIGEST_DATA_DIR": str(data_dir),
        "DIGEST_SECRET_KEY": SECRET,
    }


class LockProbe(threading.Thread):
    """Tries BEGIN IMMEDIATE every 2 ms without waiting; the longest run of failures is the longest hold."""

    def __init__(self, database: Path) -> None:
        super().__init__(daemon=True)
        self.database, self.longest, self.stop = database, 0.0, threading.Event()

    def run(self) -> None:
        connection = sqlite3.connect(self.database, timeout=0, isolation_level=None)
        locked_since: float | None = None
        while not self.stop.is_set():
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
                if locked_since is not None:
                    self.longest = max(self.longest, time.perf_counter() - locked_since)
                locked_since = None
            except sqlite3.OperationalError:
                locked_since = locked_since or time.perf_counter()
            time.sleep(0.002)


def _csrf(client: httpx.Client, token: str) -> str:
    page = client.get(f"/feedback/{token}").text
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def vote_while(client: httpx.Client, token: str, running: subprocess.Popen[Any], every: float) -> list[Any]:
    csrf = _csrf(client, token)
    votes: list[tuple[float, int]] = []
    while running.poll() is None:
        started = time.perf_counter()
        try:
            status = client.post(f"/feedback/{token}", data={"csrf_token": csrf}).status_code
        except httpx.HTTPError:
            status = 0
        votes.append((time.perf_counter() - started, status))
        time.sleep(max(0.0, every - (time.perf_counter() - started)))
    return votes


def run_tree(tree: Path, big: Path, every: float) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-write-lock-"))
    env = _env(tree, data_dir)
    # cwd=tree: `python -c` and `-m` put the working directory first on sys.path, before PYTHONPATH.
    run = {"env": env, "cwd": tree}
    token = subprocess.check_output([sys.executable, "-c", SEED, str(data_dir), SECRET], text=True, **run)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(data_dir), SECRET, str(port)], **run)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=VOTE_TIMEOUT)
    try:
        _wait_up(client)
        probe = LockProbe(data_dir / "digest.sqlite3")
        probe.start()
        started = time.perf_counter()
        ingest = subprocess.Popen([sys.executable, "-m", "digest", "ingest", str(big)], **run)
        votes = vote_while(client, token.strip(), ingest, every)
        seconds = time.perf_counter() - started
        probe.stop.set()
        probe.join()
    finally:
        server.terminate()
        server.wait()
    latencies = sorted(latency for latency, _ in votes)
    return {
        "tree": str(tree),
        "code": subprocess.check_output([sys.executable, "-c", WHICH], text=True, **run).strip(),
        "ingest_exit": ingest.returncode,
        "ingest_seconds": round(seconds, 1),
        "longest_write_lock_seconds": round(probe.longest, 2),
        "votes": len(votes),
        "votes_2xx": sum(200 <= status < 300 for _, status in votes),
        "votes_over_1s": sum(latency > 1.0 for latency in latencies),
        "vote_p50_seconds": round(latencies[len(latencies) // 2], 3) if latencies else None,
        "vote_max_seconds": round(latencies[-1], 3) if latencies else None,
    }


def _wait_up(client: httpx.Client) -> None:
    for _ in range(200):
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the web app did not start")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_400_000)
    parser.add_argument("--vote-every", type=float, default=0.25)
    parser.add_argument("--baseline-tree", type=Path)
    args = parser.parse_args(argv)
    big = write_big_file(Path(tempfile.gettempdir()) / f"digest-big-{args.entries}.json", args.entries)
    print(f"file: {big} ({big.stat().st_size / 1e6:.1f} MB, {args.entries} entries)")
    trees = [PROJECT] + ([args.baseline_tree.resolve()] if args.baseline_tree else [])
    rows = [run_tree(tree, big, args.vote_every) for tree in trees]
    for row in rows:
        print(json.dumps(row))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_write_lock.json").write_text(json.dumps(rows, indent=2) + "\n")
    ok = all(
        r["ingest_exit"] == 0 and r["votes_over_1s"] == 0 and r["votes_2xx"] == r["votes"] for r in rows[:1]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
