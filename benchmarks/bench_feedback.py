"""Feedback POSTs against the real app under uvicorn on loopback (goal: ≥ 500 requests/s, p99 ≤ 50 ms).

    python -m benchmarks.bench_feedback [--requests 3000] [--concurrency 8] [--subscribers 50] [--papers 300]

Three processes: this one seeds a temporary SQLite database and reports; a server process runs
`create_app` under uvicorn as `digest serve` does (one worker, INFO access log into a file, which is then
checked for leaked tokens); a load process drives it with httpx (asyncio, `--concurrency` connections,
each with its own CSRF cookie, as a browser would have after opening the feedback page). Phases:
* healthz — GET /healthz (a DB ping): the baseline of what this server and machine can answer;
* feedback page — GET /feedback/<token> (what a click in a mail costs, and what link scanners cost);
* vote — POST /feedback/<token>: record_feedback (Feedback row + the subscriber's model update) + page.
Then votes stored in the database must equal the vote POSTs answered 2xx.
Prints a table and writes ``benchmarks/results/bench_feedback.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECRET = "benchmark-secret-key-not-for-production"
PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- the server process ------------------------------------------------------------------------------


def serve(data_dir: str, port: int, log_file: str, synchronous: str) -> None:
    import logging

    import uvicorn
    from sqlalchemy import event

    from digest.config import load_settings
    from digest.db import Database
    from digest.web.app import create_app

    settings = load_settings(data_dir=Path(data_dir), secret_key=SECRET, base_url=f"http://127.0.0.1:{port}")
    db = Database(settings)
    if synchronous != "default":
        # Benchmark-only knob: what SQLite's fsync per commit costs (WAL + NORMAL syncs at checkpoints).
        event.listen(db.engine, "connect", lambda conn, _: conn.execute(f"PRAGMA synchronous={synchronous}"))
    app = create_app(settings, db)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info")
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(message)s"))
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.access").addHandler(handler)
    server.run()


# --- the load process --------------------------------------------------------------------------------


async def _worker(base: str, method: str, paths: list[str], jobs: asyncio.Queue, out: list[Any]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        token = ""
        if method == "POST":  # open one feedback page first: the CSRF cookie and its form token
            token = CSRF_FIELD.search((await client.get(paths[0])).text).group(1)  # type: ignore[union-attr]
        while True:
            index = await jobs.get()
            if index is None:
                return
            path = paths[index % len(paths)]
            started = time.perf_counter()
            if method == "POST":
                answer = await client.post(path, data={"csrf_token": token})
            else:
                answer = await client.get(path)
            out.append((time.perf_counter() - started, answer.status_code))


async def _drive(base: str, method: str, paths: list[str], count: int, concurrency: int) -> dict[str, Any]:
    jobs: asyncio.Queue = asyncio.Queue()
    for index in range(count):
        jobs.put_nowait(index)
    for _ in range(concurrency):
        jobs.put_nowait(None)
    out: list[tuple[float, int]] = []
    started = time.perf_counter()
    await asyncio.gather(*(_worker(base, method, paths, jobs, out) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in out)
    ok = sum(1 for _, status in out if 200 <= status < 300)
    return {
        "requests": len(out),
        "ok_2xx": ok,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(out) / elapsed, 1),
        "p50_ms": round(_quantile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_quantile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "statuses": sorted({status for _, status in out}),
    }


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def load(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    run = _drive(spec["base"], spec["method"], spec["paths"], spec["count"], spec["concurrency"])
    result = asyncio.run(run)
    print(json.dumps(result))


# --- the orchestrating process -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(data_dir: Path, subscribers: int, papers: int) -> tuple[list[int], list[int]]:
    from digest.config import load_settings
    from digest.db import Database
    from digest.models import Paper
    from digest.subscribers import create_subscriber

    settings = load_settings(data_dir=data_dir, secret_key=SECRET)
    db = Database(settings, migrate=True)
    words = "diffusion retrieval robotics agents reasoning vision language speech graphs alignment".split()
    with db.session() as session:
        paper_rows = [
            Paper(
                key=f"bench:{i}",
                title_key=f"bench {i}",
                title=f"Paper {i} on {words[i % 10]}",
                abstract=" ".join(random.choices(words, k=120)),
                authors=["A. B."],
            )
            for i in range(papers)
        ]
        session.add_all(paper_rows)
        session.flush()
        subscriber_ids = [
            create_subscriber(session, settings, email=f"reader{i}@example.org", keywords=[words[i % 10]]).id
            for i in range(subscribers)
        ]
        paper_ids = [paper.id for paper in paper_rows]
    db.dispose()
    return subscriber_ids, paper_ids


def _vote_paths(subscriber_ids: list[int], paper_ids: list[int], count: int) -> list[str]:
    from digest.signing import Signer

    signer = Signer(SECRET)
    rng = random.Random(7)
    votes = [
        (rng.choice(["up", "down"]), rng.choice(subscriber_ids), rng.choice(paper_ids))
        for _ in range(min(count, 2000))
    ]
    return [f"/feedback/{signer.dumps(vote, sid, pid)}" for vote, sid, pid in votes]


def _run_load(tmp: Path, base: str, method: str, paths: list[str], count: int, concurrency: int) -> dict:
    spec = tmp / f"spec-{method}-{len(paths)}.json"
    spec.write_text(
        json.dumps(
            {"base": base, "method": method, "paths": paths, "count": count, "concurrency": concurrency}
        )
    )
    command = [sys.executable, "-m", "benchmarks.bench_feedback", "--load", str(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _wait_until_up(base: str, server: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server process exited")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer /healthz within 30 s")


def _votes_stored(data_dir: Path) -> int:
    from sqlalchemy import func, select

    from digest.config import load_settings
    from digest.db import Database
    from digest.models import Feedback

    db = Database(load_settings(data_dir=data_dir, secret_key=SECRET), migrate=False)
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(Feedback)) or 0
    db.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument(
        "--synchronous",
        choices=["default", "normal", "off"],
        default="default",
        help="SQLite PRAGMA synchronous in the server (default: as `digest serve` runs)",
    )
    internal = {"help": argparse.SUPPRESS}
    parser.add_argument("--serve", nargs=4, metavar=("DATA_DIR", "PORT", "LOG", "SYNC"), **internal)
    parser.add_argument("--load", metavar="SPEC", **internal)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2], args.serve[3])
    elif args.load:
        load(args.load)
    else:
        report(args)


def report(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as folder:
        tmp = Path(folder)
        subscriber_ids, paper_ids = _seed(tmp / "var", args.subscribers, args.papers)
        paths = _vote_paths(subscriber_ids, paper_ids, args.requests)
        port, log = _free_port(), tmp / "access.log"
        base = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_feedback",
            "--serve",
            str(tmp / "var"),
            str(port),
            str(log),
            args.synchronous,
        ]
        server = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_until_up(base, server)
            _run_load(tmp, base, "GET", ["/healthz"], 300, args.concurrency)  # warm-up
            phases = {
                "healthz": _run_load(tmp, base, "GET", ["/healthz"], args.requests, args.concurrency),
                "feedback page": _run_load(tmp, base, "GET", paths, args.requests, args.concurrency),
                "vote": _run_load(tmp, base, "POST", paths, args.requests, args.concurrency),
            }
        finally:
            server.terminate()
            server.wait(20)
        stored = _votes_stored(tmp / "var")
        logged = log.read_text()
        leaked = sum(1 for path in paths if path.rsplit("/", 1)[1] in logged)
    _print_and_save(args, phases, stored, leaked, logged.count("/feedback/<token>"))


def _print_and_save(args: argparse.Namespace, phases: dict, stored: int, leaked: int, redacted: int) -> None:
    print(f"{'phase':<15}{'requests':>9}{'2xx':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, phase in phases.items():
        print(
            f"{name:<15}{phase['requests']:>9}{phase['ok_2xx']:>7}{phase['requests_per_s']:>9}"
            f"{phase['p50_ms']:>9}{phase['p99_ms']:>9}{phase['max_ms']:>9}"
        )
    vote = phases["vote"]
    checks = {
        "votes_stored": stored,
        "vote_2xx": vote["ok_2xx"],
        "stored_equals_2xx": stored == vote["ok_2xx"],
        "goal_rps_500": vote["requests_per_s"] >= 500,
        "goal_p99_50ms": vote["p99_ms"] <= 50,
        "tokens_in_access_log": leaked,
        "redacted_log_lines": redacted,
    }
    print(json.dumps(checks))
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": vars(args),
        "phases": phases,
        "checks": checks,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    suffix = "" if args.synchronous == "default" else f"_{args.synchronous}"
    name = f"bench_feedback{suffix}.json"
    (RESULTS / name).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
