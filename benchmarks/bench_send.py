"""Render and send 2,000 digests to a local SMTP server over one reused connection (goal: ≥ 300 messages/s).

    python -m benchmarks.bench_send [--messages 2000] [--picks 10] [--service 200]

Phases (aiosmtpd on 127.0.0.1 in this process, accepting every message):
* render only            — template context (signed links), Jinja text + HTML, css-inline, MIME build;
* render + send, reused  — the same, then ``SmtpTransport.send`` on ONE connection (the goal);
* render + send, new connection per message (the baseline the reuse is compared with);
* service                — ``send_many`` for ``--service`` real subscribers: SQLite, ``pick_digest``,
  render, SMTP, and the ledger's claim/record transactions (what a real dispatch costs per subscriber).
Prints a table and writes ``benchmarks/results/bench_send.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digest.config import Settings, load_settings
from digest.db import Database
from digest.deliver.base import Outgoing
from digest.deliver.compose import email_message, unsubscribe_headers
from digest.deliver.service import send_many
from digest.deliver.smtp import SmtpTransport
from digest.models import Paper
from digest.rank import Pick
from digest.render import digest_context, make_message
from digest.signing import links_for
from digest.subscribers import create_subscriber

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GOAL_PER_SECOND = 300.0
DAY = dt.date(2025, 6, 30)
ABSTRACT = (
    "We study how diffusion models can be distilled into fast samplers for speech and image generation. "
    "Our method keeps sample quality while cutting network evaluations by an order of magnitude. "
) * 6


REUSED = "render + send, one reused connection"
FRESH = "render + send, new connection each"


@contextmanager
def smtp_sink() -> Iterator[int]:
    """aiosmtpd in its own process (a real server's work is not ours to time), accepting everything."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        f"127.0.0.1:{port}",
        "-c",
        "aiosmtpd.handlers.Sink",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_picks(count: int) -> list[Pick]:
    return [
        Pick(
            Paper(
                id=i + 1,
                arxiv_id=f"2506.{i:05d}",
                title=f"Paper {i}: distilling diffusion for fast sampling",
                authors=["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
                abstract=ABSTRACT,
            ),
            0.9 - i / 100,
            "matches your keywords 'diffusion' and 'distillation'",
        )
        for i in range(count)
    ]


def render_one(settings: Settings, links: Any, picks: list[Pick], number: int) -> Outgoing:
    subscriber = types.SimpleNamespace(id=number, keywords=["diffusion", "distillation"])
    context = digest_context(subscriber, picks, links, DAY)
    content = make_message("digest", context)
    to = f"reader{number}@example.org"
    mail = email_message(settings, to, content, unsubscribe_headers(context["unsubscribe_url"]))
    return Outgoing("email", to, email=mail)


def rate(count: int, action: Callable[[int], None]) -> dict[str, float]:
    started, cpu = time.perf_counter(), time.process_time()
    for number in range(count):
        action(number)
    return measured(count, time.perf_counter() - started, time.process_time() - cpu)


def measured(count: int, seconds: float, cpu_seconds: float) -> dict[str, float]:
    # Wall-clock rate, and this process's CPU per message (steadier on a shared, busy machine).
    return {
        "messages": count,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1),
        "cpu_ms_per_message": round(1000 * cpu_seconds / max(count, 1), 3),
    }


def bench_transport(
    settings: Settings, links: Any, picks: list[Pick], count: int, reuse: bool
) -> dict[str, float]:
    transport = SmtpTransport(settings)

    def send(number: int) -> None:
        transport.send(render_one(settings, links, picks, number))
        if not reuse:
            transport.close()

    result = rate(count, send)
    transport.close()
    return result


def service_phase(settings: Settings, subscribers: int) -> dict[str, float]:
    db = Database(settings, migrate=True)
    now = dt.datetime(2025, 6, 30, 6, 0)
    with db.session() as session:
        for i in range(60):
            session.add(
                Paper(
                    key=f"arxiv:2506.{i:05d}",
                    arxiv_id=f"2506.{i:05d}",
                    title_key=f"p{i}",
                    title=f"Paper {i} on diffusion distillation and retrieval {i % 7}",
                    abstract=ABSTRACT,
                    authors=["Ada Lovelace"],
                    first_seen_at=now,
                )
            )
        ids = [
            create_subscriber(
                session, settings, email=f"s{n}@example.org", keywords="diffusion, retrieval"
            ).id
            for n in range(subscribers)
        ]
    started, cpu = time.perf_counter(), time.process_time()
    sent = send_many(db, settings, ids, digest_date=DAY, now=now).counts()["sent"]
    result = measured(sent, time.perf_counter() - started, time.process_time() - cpu)
    db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--picks", type=int, default=10)
    parser.add_argument("--service", type=int, default=200, help="subscribers for the full-service phase")
    args = parser.parse_args()
    with smtp_sink() as port, tempfile.TemporaryDirectory(prefix="bench-send-") as folder:
        settings = load_settings(
            data_dir=Path(folder),
            secret_key="bench-" * 4,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            mail_from="digest@example.org",
        )
        links, picks = links_for(settings), fake_picks(args.picks)
        phases = {
            "render only": rate(args.messages, lambda n: render_one(settings, links, picks, n)),
            REUSED: bench_transport(settings, links, picks, args.messages, True),
            FRESH: bench_transport(settings, links, picks, args.messages // 4, False),
            "service: DB + rank + render + SMTP + ledger": service_phase(settings, args.service),
        }
    report(phases, args)


def report(phases: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    reused, fresh = phases[REUSED]["per_second"], phases[FRESH]["per_second"]
    print(f"{'phase':<46}{'messages':>10}{'seconds':>10}{'msg/s':>10}{'cpu ms/msg':>12}")
    for name, row in phases.items():
        print(
            f"{name:<46}{row['messages']:>10}{row['seconds']:>10.2f}{row['per_second']:>10.1f}"
            f"{row['cpu_ms_per_message']:>12.2f}"
        )
    verdict = "meets" if reused >= GOAL_PER_SECOND else "MISSES"
    load = os.getloadavg()[0]
    print(
        f"one reused connection vs a new connection per message: {reused / fresh:.2f}x; {reused:.0f} msg/s "
        f"{verdict} the goal of {GOAL_PER_SECOND:.0f}/s (load average {load:.1f} on {os.cpu_count()} CPUs)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "bench_send",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(load, 2),
        "picks_per_digest": args.picks,
        "phases": phases,
        "reuse_speedup": round(reused / fresh, 2),
        "goal_per_second": GOAL_PER_SECOND,
        "meets_goal": reused >= GOAL_PER_SECOND,
    }
    (RESULTS / "bench_send.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
