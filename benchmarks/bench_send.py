"""Render and send 2,000 digests to a local SMTP server over one reused connection (goal: ≥ 300 messages/s).

    python -m benchmarks.bench_send [--messages 2000] [--picks 10] [--service 200]
                                    [--baseline-tree DIR [--rounds 3]]

The SMTP server is aiosmtpd's ``Sink`` (accepts everything, keeps nothing) on 127.0.0.1, started as a
**separate process** (``python -m aiosmtpd``): its work is not ours to time, and in-process it would take
the sender's GIL and be counted as ours. On a machine with few cores it still competes for CPU, so every
phase reports both sides: our process's CPU per message and the server's (read from /proc on Linux).
With one connection client and server take turns: msg/s ≈ 1000 / (our ms + server ms + waits).

Phases:
* render only            — template context (signed links), Jinja text + HTML (CSS inlined at template
  load), MIME build;
* send only              — ``SmtpTransport.send`` of pre-rendered messages on one connection (the
  transport's and the server's share, without rendering);
* render + send, reused  — render, then ``SmtpTransport.send`` on ONE connection (the goal);
* render + send, new connection per message (the baseline the reuse is compared with);
* service                — ``send_many`` for ``--service`` real subscribers: SQLite, ``pick_digest``,
  render, SMTP, and the ledger's claim/record transactions (what a real dispatch costs per subscriber).
Then µs per call of each library call beside the hand-made shortcut kept in its place (the stdlib's message
building and generator, css-inline per render, ``textwrap.shorten``): the figures those shortcuts cite.
Prints the tables and writes ``benchmarks/results/bench_send.json``. The machine may be shared: compare
figures from the same run, or the CPU columns, rather than wall-clock rates from different runs.
``--baseline-tree DIR`` runs the same phases (this script's code) against another checkout, e.g.
``git worktree add /tmp/base HEAD``, alternating with this tree for ``--rounds``, each in a child process
with its own server, and prints the medians and this-tree/baseline ratios instead (nothing is saved).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from digest.config import Settings, load_settings
from digest.db import Database
from digest.deliver.base import Outgoing
from digest.deliver.mime import MAIL_POLICY, WIRE_POLICY, email_message, unsubscribe_headers, wire_bytes
from digest.deliver.smtp import SmtpTransport
from digest.dispatch import send_many
from digest.models import Paper
from digest.rank import Pick
from digest.render import (
    EXCERPT_CHARS,
    TEMPLATES_DIR,
    WHY_CHARS,
    EmailContent,
    digest_context,
    inline_css,
    make_message,
    preinline,
    shorten,
)
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


RENDER = "render only"
SEND = "send only (pre-rendered), one connection"
REUSED = "render + send, one reused connection"
FRESH = "render + send, new connection each"
SERVICE = "service: DB + rank + render + SMTP + ledger"


@dataclasses.dataclass
class Sink:
    port: int
    pid: int

    def cpu_seconds(self) -> float | None:
        """The server process's CPU time so far (user + system), or None where /proc is missing."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def smtp_sink() -> Iterator[Sink]:
    """aiosmtpd in its own process (a real server's work is not ours to time), accepting everything."""
    port = free_port()
    command = [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink"]
    command += ["-l", f"127.0.0.1:{port}"]
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
        yield Sink(port, server.pid)
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


def rate(count: int, action: Callable[[int], None], sink: Sink | None = None) -> dict[str, float]:
    server = sink.cpu_seconds() if sink else None
    started, cpu = time.perf_counter(), time.process_time()
    for number in range(count):
        action(number)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    after = sink.cpu_seconds() if sink else None
    server_seconds = after - server if server is not None and after is not None else None
    return measured(count, seconds, cpu_seconds, server_seconds)


def measured(
    count: int, seconds: float, cpu_seconds: float, server_seconds: float | None = None
) -> dict[str, float]:
    # Wall-clock rate, and CPU per message of this process and of the SMTP server (steadier on a shared,
    # busy machine than the wall clock).
    row = {
        "messages": count,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1),
        "cpu_ms_per_message": round(1000 * cpu_seconds / max(count, 1), 3),
    }
    if server_seconds is not None:
        row["server_cpu_ms_per_message"] = round(1000 * server_seconds / max(count, 1), 3)
    return row


def bench_transport(
    settings: Settings, links: Any, picks: list[Pick], count: int, reuse: bool, sink: Sink
) -> dict[str, float]:
    transport = SmtpTransport(settings)

    def send(number: int) -> None:
        transport.send(render_one(settings, links, picks, number))
        if not reuse:
            transport.close()

    result = rate(count, send, sink)
    transport.close()
    return result


def bench_send_only(
    settings: Settings, links: Any, picks: list[Pick], count: int, sink: Sink
) -> dict[str, float]:
    messages = [render_one(settings, links, picks, number) for number in range(count)]
    transport = SmtpTransport(settings)
    transport.send(messages[0])  # connect outside the timing, like the reused phase after its first message
    result = rate(count - 1, lambda number: transport.send(messages[number + 1]), sink)
    transport.close()
    return result


def service_phase(settings: Settings, subscribers: int, sink: Sink) -> dict[str, float]:
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
    server, started, cpu = sink.cpu_seconds(), time.perf_counter(), time.process_time()
    sent = send_many(db, settings, ids, digest_date=DAY, now=now).counts()["sent"]
    seconds, cpu_seconds, after = time.perf_counter() - started, time.process_time() - cpu, sink.cpu_seconds()
    result = measured(
        sent, seconds, cpu_seconds, after - server if server is not None and after is not None else None
    )
    db.dispose()
    return result


def library_calls(picks: list[Pick]) -> dict[str, float]:
    """µs per call of each library call a hand-made shortcut stands in for, and of the shortcut."""
    with tempfile.TemporaryDirectory(prefix="bench-send-") as folder:
        settings = load_settings(data_dir=Path(folder), secret_key="bench-" * 4, mail_from="d@example.org")
    links = links_for(settings)
    context = digest_context(types.SimpleNamespace(id=1, keywords=["diffusion"]), picks, links, DAY)
    content = make_message("digest", context)
    message = email_message(settings, "reader@example.org", content)
    template = (TEMPLATES_DIR / "email/digest/body.html").read_text().removesuffix("\n")
    why, headers = picks[0].why, unsubscribe_headers(context["unsubscribe_url"])
    calls: dict[str, Callable[[], object]] = {
        "render one digest (make_message)": lambda: make_message("digest", context),
        "stdlib build: parsed headers, set_content()": lambda: stdlib_message(settings, content, headers),
        "email_message (raw headers, binascii QP)": lambda: email_message(settings, "r@x", content, headers),
        "css-inline per render (the rendered digest)": lambda: inline_css(content.html),
        "css-inline at load (once a template, process)": lambda: preinline(template),
        "stdlib generator: as_bytes(WIRE_POLICY)": lambda: message.as_bytes(policy=WIRE_POLICY),
        "wire_bytes (messages email_message builds)": lambda: wire_bytes(message),
        "textwrap.shorten, a why that fits": lambda: textwrap.shorten(why, WHY_CHARS, placeholder="…"),
        "shorten, a why that fits (uncached)": lambda: shorten.__wrapped__(why, WHY_CHARS),
        "textwrap.shorten, an abstract cut": lambda: textwrap.shorten(
            ABSTRACT, EXCERPT_CHARS, placeholder="…"
        ),
    }
    return {name: per_call_us(call) for name, call in calls.items()}


def stdlib_message(settings: Settings, content: EmailContent, headers: dict[str, str]) -> EmailMessage:
    """What email_message builds, the stdlib way: every header parsed, parts from the content manager."""
    message = EmailMessage(policy=MAIL_POLICY)
    message["Subject"], message["From"], message["To"] = content.subject, settings.mail_from, "r@x"
    message["Date"], message["Message-ID"] = format_datetime(dt.datetime.now(dt.UTC)), make_msgid()
    for name, value in headers.items():
        message[name] = value
    message.set_content(content.text, cte="quoted-printable")
    message.add_alternative(content.html, subtype="html", cte="quoted-printable")
    return message


def per_call_us(call: Callable[[], object]) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return round(1e6 * min(timer.repeat(repeat=3, number=number)) / number, 2)


def run_phases(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    with smtp_sink() as sink, tempfile.TemporaryDirectory(prefix="bench-send-") as folder:
        settings = load_settings(
            data_dir=Path(folder),
            secret_key="bench-" * 4,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_security="none",
            mail_from="digest@example.org",
        )
        links, picks = links_for(settings), fake_picks(args.picks)
        for number in range(20):  # warm up: templates compiled (and their CSS inlined), imports done
            render_one(settings, links, picks, number)
        phases = {
            RENDER: rate(args.messages, lambda n: render_one(settings, links, picks, n)),
            SEND: bench_send_only(settings, links, picks, max(args.messages // 4, 2), sink),
            REUSED: bench_transport(settings, links, picks, args.messages, True, sink),
            FRESH: bench_transport(settings, links, picks, args.messages // 4, False, sink),
        }
        if args.service:
            phases[SERVICE] = service_phase(settings, args.service, sink)
    return phases


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The phases in a child process whose ``digest`` is imported from ``tree`` (this script's code)."""
    command = [sys.executable, __file__, "--child", "--messages", str(args.messages)]
    command += ["--picks", str(args.picks), "--service", str(args.service)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--picks", type=int, default=10)
    parser.add_argument("--service", type=int, default=200, help="subscribers for the full-service phase")
    parser.add_argument("--baseline-tree", type=Path, help="another checkout to compare against")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --baseline-tree")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_phases(args)))
    elif args.baseline_tree:
        compare(args)
    else:
        report(run_phases(args), library_calls(fake_picks(args.picks)), args)


def compare(args: argparse.Namespace) -> None:
    """Alternate the baseline tree and this one, ``--rounds`` times; print medians and after/before."""
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"baseline": [], "this tree": []}
    for number in range(args.rounds):
        for name, tree in (("baseline", args.baseline_tree.resolve()), ("this tree", ROOT)):
            runs[name].append(run_tree(tree, args))
            print(f"round {number + 1}: {name} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    columns = (
        ("per_second", "msg/s"),
        ("cpu_ms_per_message", "cpu ms"),
        ("server_cpu_ms_per_message", "srv ms"),
    )
    print(
        f"{'phase (medians)':<46}"
        + "".join(f"{f'{label} before/after':>22}{'ratio':>8}" for _, label in columns)
    )
    for phase in runs["this tree"][0]:
        cells = []
        for key, _ in columns:
            before = statistics.median(r[phase].get(key, math.nan) for r in runs["baseline"])
            after = statistics.median(r[phase].get(key, math.nan) for r in runs["this tree"])
            if math.isnan(before) or math.isnan(after) or not before:
                cells.append(f"{'-':>22}{'-':>8}")
            else:
                cells.append(f"{f'{before:.2f} / {after:.2f}':>22}{after / before:>7.2f}x")
        print(f"{phase:<46}" + "".join(cells))
    print(f"(medians of {args.rounds} alternating rounds; ratio = this tree / baseline)")


def report(phases: dict[str, dict[str, float]], calls: dict[str, float], args: argparse.Namespace) -> None:
    reused, fresh = phases[REUSED]["per_second"], phases[FRESH]["per_second"]
    print(f"{'phase':<46}{'messages':>10}{'seconds':>10}{'msg/s':>10}{'cpu ms/msg':>12}{'server ms/msg':>15}")
    for name, row in phases.items():
        server = row.get("server_cpu_ms_per_message")
        print(
            f"{name:<46}{row['messages']:>10}{row['seconds']:>10.2f}{row['per_second']:>10.1f}"
            f"{row['cpu_ms_per_message']:>12.2f}{'' if server is None else f'{server:.2f}':>15}"
        )
    verdict = "meets" if reused >= GOAL_PER_SECOND else "MISSES"
    load = os.getloadavg()[0]
    print(
        f"one reused connection vs a new connection per message: {reused / fresh:.2f}x; {reused:.0f} msg/s "
        f"{verdict} the goal of {GOAL_PER_SECOND:.0f}/s (load average {load:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"\n{'library call (and the shortcut kept for it)':<46}{'µs/call':>10}")
    for name, micros in calls.items():
        print(f"{name:<46}{micros:>10.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "bench_send",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(load, 2),
        "picks_per_digest": args.picks,
        "phases": phases,
        "library_calls_us": calls,
        "reuse_speedup": round(reused / fresh, 2),
        "goal_per_second": GOAL_PER_SECOND,
        "meets_goal": reused >= GOAL_PER_SECOND,
    }
    (RESULTS / "bench_send.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
