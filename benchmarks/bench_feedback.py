"""Feedback POSTs against the real app under uvicorn on loopback (goal: ≥ 500 requests/s, p99 ≤ 50 ms).

    python -m benchmarks.bench_feedback [--requests 3000] [--concurrency 8] [--postgres [ADMIN_URL]]
                                        [--baseline-tree DIR] [--uvicorn-loop L] [--uvicorn-http H]

Separate processes: this one seeds a fresh database and reports; a server process runs `create_app`
under uvicorn as `digest serve` does (one worker, INFO access log into a file, which is then checked for
leaked tokens); one or more load processes (`--load-processes`) drive it over raw keep-alive HTTP/1.1
sockets with `--concurrency` connections in all, a fixed number of requests, each connection holding its
own CSRF cookie as a browser would after opening the feedback page. The load client is deliberately
minimal (under 0.1 ms of CPU a request; the httpx client it replaces cost more than the server, and
capped the old figures); its CPU share is printed next to the server's so a saturated client shows. Phases:
* healthz — GET /healthz (a DB ping): the baseline of what this server and machine can answer;
* feedback page — GET /feedback/<token> (what a click in a mail costs, and what link scanners cost);
* vote — POST /feedback/<token>: token + CSRF check, Feedback row + the subscriber's model update, page.
Checks: no vote stored by the GET phases; votes stored equal the vote POSTs answered OK (a vote answers
303 with its result page's address, a page 200).

`--postgres` runs the same against a fresh database created on the PostgreSQL server (admin URL,
default postgresql+psycopg://postgres@127.0.0.1:5432/test) and dropped afterwards. `--baseline-tree`
also runs every phase against another checkout of the project (e.g. `git worktree add /tmp/base HEAD~1`)
on the same seeded data, alternating with this tree `--rounds` times, and prints after/before ratios: on
a shared machine only figures from the same run compare, and the server's CPU milliseconds per request
move least with the machine's load. Prints tables; writes ``benchmarks/results/bench_feedback[_pg].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SECRET = "benchmark-secret-key-not-for-production"
PROJECT = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve()
RESULTS = PROJECT / "benchmarks" / "results"
CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')
CSRF_COOKIE = re.compile(rb"digest_csrf=([^;\s]+)", re.IGNORECASE)
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- the server process ------------------------------------------------------------------------------


def serve(spec: dict[str, Any]) -> None:
    """`digest serve`'s web half: the same settings, Database and uvicorn.Config (plus loop/http knobs)."""
    import logging

    import uvicorn

    import digest
    from digest.config import load_settings
    from digest.db import Database
    from digest.web.app import create_app

    Path(spec["log"]).write_text(f"serving {digest.__file__}\n")
    port = spec["port"]
    settings = load_settings(
        data_dir=Path(spec["data_dir"]),
        database_url=spec["database_url"],
        secret_key=SECRET,
        base_url=f"http://127.0.0.1:{port}",
    )
    app = create_app(settings, Database(settings))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="info", loop=spec["loop"], http=spec["http"]
    )
    handler = logging.FileHandler(spec["log"])
    handler.setFormatter(logging.Formatter("%(message)s"))
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.access").addHandler(handler)
    server.run()


# --- the load process --------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection: just enough protocol for this app's answers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            found = re.search(rb"content-length: *(\d+)", lower)
            body = await self.reader.readexactly(int(found.group(1))) if found else b""
        if b"connection: close" in lower:
            self.writer.close()
            self.writer = None
        return status, head, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _raw(method: str, path: str, host: str, cookie: bytes = b"", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host.encode(), b"User-Agent: bench"]
    if cookie:
        lines.append(b"Cookie: digest_csrf=" + cookie)
    if method == "POST":
        lines += [b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, method, paths = "127.0.0.1", spec["port"], spec["method"], spec["paths"]
    host_header = f"{host}:{port}"
    indices = itertools.count(spec["first_index"])
    last_index = spec["first_index"] + spec["count"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ready, go = asyncio.Event(), asyncio.Event()
    connected = 0

    async def connection() -> None:
        nonlocal connected
        http = Http(host, port)
        cookie, field = b"", b""
        if method == "POST":  # open one feedback page first: the CSRF cookie and its form token
            _, head, body = await http.request(_raw("GET", paths[0], host_header))
            cookie = CSRF_COOKIE.search(head).group(1)  # type: ignore[union-attr]
            field = b"csrf_token=" + CSRF_FIELD.search(body).group(1)  # type: ignore[union-attr]
        else:
            await http.request(_raw("GET", paths[0], host_header))  # connect before the clock starts
        connected += 1
        if connected == spec["connections"]:
            ready.set()
        await go.wait()
        while (index := next(indices)) < last_index:
            raw = _raw(method, paths[index % len(paths)], host_header, cookie, field)
            started = time.perf_counter()
            try:
                status, _, _ = await http.request(raw)
            except (OSError, asyncio.IncompleteReadError):
                status, http = 0, Http(host, port)  # counted as an error (status 0); reconnect
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        http.close()

    tasks = [asyncio.ensure_future(connection()) for _ in range(spec["connections"])]
    await ready.wait()
    delay = spec["start_at"] - time.time()  # all load processes start together
    await asyncio.sleep(max(0.0, delay))
    cpu_start, started = time.process_time(), time.time()
    go.set()
    await asyncio.gather(*tasks)
    return {
        "latencies": latencies,
        "statuses": statuses,
        "started": started,
        "ended": time.time(),
        "cpu_s": time.process_time() - cpu_start,
    }


def load(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    try:
        import uvloop  # the client's own overhead, not the server's: use the fastest loop at hand

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_drive(spec))))


# --- the orchestrating process -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(data_dir: Path, database_url: str | None, subscribers: int, papers: int) -> tuple[list, list]:
    from digest.config import load_settings
    from digest.db import Database
    from digest.models import Paper
    from digest.subscribers import create_subscriber

    settings = load_settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET)
    db = Database(settings, migrate=True)
    words = "diffusion retrieval robotics agents reasoning vision language speech graphs alignment".split()
    rng = random.Random(3)
    with db.session() as session:
        paper_rows = [
            Paper(
                key=f"bench:{i}",
                title_key=f"bench {i}",
                title=f"Paper {i} on {words[i % 10]}",
                abstract=" ".join(rng.choices(words, k=120)),
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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_load(tmp: Path, server: Server, method: str, paths: list[str], count: int, args) -> dict:
    """`count` requests over `args.concurrency` connections split across `args.load_processes`."""
    processes = max(1, min(args.load_processes, args.concurrency))
    start_at = time.time() + 1.0 + 0.3 * processes
    children = []
    offset = random.Random(count).randrange(len(paths))
    for n in range(processes):
        share = count // processes + (1 if n < count % processes else 0)
        first = offset + sum(count // processes + (1 if k < count % processes else 0) for k in range(n))
        spec = {
            "port": server.port,
            "method": method,
            "paths": paths,
            "first_index": first,
            "count": share,
            "connections": args.concurrency // processes + (1 if n < args.concurrency % processes else 0),
            "start_at": start_at,
        }
        spec_file = tmp / f"spec-{method}-{n}.json"
        spec_file.write_text(json.dumps(spec))
        command = [sys.executable, str(THIS_FILE), "--load", str(spec_file)]
        children.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=PROJECT))
    time.sleep(max(0.0, start_at - time.time()))
    server_cpu = _cpu_seconds(server.process.pid)
    outs = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
    server_cpu = _cpu_seconds(server.process.pid) - server_cpu
    if any(child.returncode for child in children):
        raise SystemExit("a load process failed")
    latencies = sorted(latency for out in outs for latency in out["latencies"])
    statuses: dict[str, int] = {}
    for out in outs:
        for status, n in out["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    elapsed = max(out["ended"] for out in outs) - min(out["started"] for out in outs)
    return {
        "requests": len(latencies),
        "ok": sum(n for status, n in statuses.items() if 200 <= int(status) < 300 or int(status) == 303),
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(_quantile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(_quantile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(_quantile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "server_cpu_pct": round(100 * server_cpu / elapsed, 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu / len(latencies), 3),
        "client_cpu_pct": round(100 * sum(out["cpu_s"] for out in outs) / elapsed, 1),
    }


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


class Server:
    """A server process for one tree (this checkout or `--baseline-tree`)."""

    def __init__(self, tree: Path, tmp: Path, name: str, database_url: str | None, args) -> None:
        self.port, self.log = _free_port(), tmp / f"access-{name}.log"
        spec = {
            "data_dir": str(tmp / "var"),
            "database_url": database_url,
            "port": self.port,
            "log": str(self.log),
            "loop": args.uvicorn_loop,
            "http": args.uvicorn_http,
        }
        if "uvicorn[standard]" not in (tree / "pyproject.toml").read_text():
            # A tree from before `uvicorn[standard]`: its install has neither uvloop nor httptools.
            spec |= {"loop": "asyncio", "http": "h11"}
        spec_file = tmp / f"serve-{name}.json"
        spec_file.write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(tree))  # the tree's `digest` wins over the installed one
        command = [sys.executable, str(THIS_FILE), "--serve", str(spec_file)]
        self.console = tmp / f"console-{name}.log"  # uvicorn's console log, as a terminal would take it
        with self.console.open("w") as console:
            self.process = subprocess.Popen(command, cwd=tree, env=env, stdout=console, stderr=console)
        _wait_until_up(self.port, self.process)
        self.serving = self.log.read_text().splitlines()[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def _wait_until_up(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server process exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(_raw("GET", "/healthz", f"127.0.0.1:{port}") + b"")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer /healthz within 30 s")


def _votes_stored(data_dir: Path, database_url: str | None) -> int:
    from sqlalchemy import func, select

    from digest.config import load_settings
    from digest.db import Database
    from digest.models import Feedback

    db = Database(
        load_settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET), migrate=False
    )
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(Feedback)) or 0
    db.dispose()
    return count


def _clear_votes(data_dir: Path, database_url: str | None) -> None:
    """Back to the seeded state, so a baseline and this tree vote on the same data."""
    from sqlalchemy import delete

    from digest.config import load_settings
    from digest.db import Database
    from digest.models import Feedback, SubscriberModel

    db = Database(
        load_settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET), migrate=False
    )
    with db.session() as session:
        session.execute(delete(Feedback))
        session.execute(delete(SubscriberModel))
    db.dispose()


def _pg_database(admin_url: str, action: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if action == "create":
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="per phase (default 3000)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in all (default 8)")
    parser.add_argument("--load-processes", type=int, default=1, help="load processes (default 1)")
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument(
        "--postgres", nargs="?", const=PG_ADMIN_URL, metavar="ADMIN_URL", help="run on a fresh PG database"
    )
    parser.add_argument("--baseline-tree", type=Path, help="another checkout to compare against")
    parser.add_argument("--rounds", type=int, default=1, help="alternations with --baseline-tree")
    parser.add_argument(
        "--uvicorn-loop", default="auto", help="uvicorn loop: auto (default), asyncio, uvloop"
    )
    parser.add_argument("--uvicorn-http", default="auto", help="uvicorn http: auto (default), h11, httptools")
    internal = {"help": argparse.SUPPRESS}
    parser.add_argument("--serve", metavar="SPEC", **internal)
    parser.add_argument("--load", metavar="SPEC", **internal)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(Path(args.serve).read_text()))
    elif args.load:
        load(args.load)
    else:
        report(args)


def _phases(tmp: Path, tree: Path, name: str, database_url: str | None, paths: list[str], args) -> dict:
    _clear_votes(tmp / "var", database_url)
    server = Server(tree, tmp, name, database_url, args)
    try:
        _run_load(tmp, server, "GET", ["/healthz"], 300, args)  # warm-up
        phases = {
            "healthz": _run_load(tmp, server, "GET", ["/healthz"], args.requests, args),
            "feedback page": _run_load(tmp, server, "GET", paths, args.requests, args),
        }
        stored_after_gets = _votes_stored(tmp / "var", database_url)
        phases["vote"] = _run_load(tmp, server, "POST", paths, args.requests, args)
    finally:
        server.stop()
    stored = _votes_stored(tmp / "var", database_url)
    logged = server.log.read_text()
    errors = [line for line in server.console.read_text().splitlines() if "Error" in line]
    vote = phases["vote"]
    checks = {
        "server": server.serving,
        "votes_after_gets": stored_after_gets,
        "votes_stored": stored,
        "vote_ok": vote["ok"],
        "stored_equals_ok": stored == vote["ok"],
        "goal_rps_500": vote["requests_per_s"] >= 500,
        "goal_p99_50ms": vote["p99_ms"] <= 50,
        "tokens_in_access_log": sum(1 for path in paths if path.rsplit("/", 1)[1] in logged),
        "redacted_log_lines": logged.count("/feedback/<token>"),
        "server_errors": sorted(set(errors))[:5],
    }
    return {"phases": phases, "checks": checks}


def report(args: argparse.Namespace) -> None:
    runs: dict[str, list[dict]] = {"this tree": []}
    if args.baseline_tree:
        runs = {"baseline": [], "this tree": []}
    trees = {"baseline": args.baseline_tree, "this tree": PROJECT}
    pg_name = f"bench_feedback_{uuid.uuid4().hex[:10]}"
    database_url = _pg_database(args.postgres, "create", pg_name) if args.postgres else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    try:
        subscriber_ids, paper_ids = _seed(tmp / "var", database_url, args.subscribers, args.papers)
        paths = _vote_paths(subscriber_ids, paper_ids, args.requests)
        for round_ in range(args.rounds if args.baseline_tree else 1):
            for name in runs:
                run = _phases(
                    tmp, trees[name], f"{name.replace(' ', '-')}-{round_}", database_url, paths, args
                )
                runs[name].append(run)
                _print_run(f"{name} (round {round_ + 1})", run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.postgres:
            _pg_database(args.postgres, "drop", pg_name)
    if args.baseline_tree:
        _print_ratios(runs)
    _save(args, runs)


def _print_run(title: str, run: dict) -> None:
    print(f"\n{title}: {run['checks']['server']}")
    print(
        f"{'phase':<15}{'requests':>9}{'ok':>7}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'srv cpu%':>9}{'cli cpu%':>9}{'srv ms/req':>11}"
    )
    for name, phase in run["phases"].items():
        print(
            f"{name:<15}{phase['requests']:>9}{phase['ok']:>7}{phase['requests_per_s']:>9}"
            f"{phase['p50_ms']:>9}{phase['p90_ms']:>9}{phase['p99_ms']:>9}{phase['max_ms']:>9}"
            f"{phase['server_cpu_pct']:>9}{phase['client_cpu_pct']:>9}{phase['server_cpu_ms_per_request']:>11}"
        )
    print(json.dumps({k: v for k, v in run["checks"].items() if k != "server"}))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _print_ratios(runs: dict[str, list[dict]]) -> None:
    print("\nafter / before (median over rounds; req/s higher is better, latency lower is better)")
    for phase in runs["this tree"][0]["phases"]:
        cells = []
        for key in ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request"):
            before = _median([r["phases"][phase][key] for r in runs["baseline"]])
            after = _median([r["phases"][phase][key] for r in runs["this tree"]])
            cells.append(f"{key} {before} -> {after} (x{after / before:.2f})")
        print(f"{phase:<15}" + "; ".join(cells))


def _save(args: argparse.Namespace, runs: dict[str, list[dict]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    name = "bench_feedback_pg.json" if args.postgres else "bench_feedback.json"
    (RESULTS / name).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
