"""Ingest the 284 archived daily-papers API files into a fresh SQLite database (goal: at most 10 s).

    python -m benchmarks.bench_ingest [--data ../shared/data/hf_daily] [--repeat 3]

Phases, each timed over every repeat (a fresh database each time):
* parse only   — read, decode and parse every file, no database (the baseline);
* ingest       — ``ingest_paths`` into an empty migrated SQLite file: dedupe, writes, one commit per file;
* re-ingest    — the same folder again: every file is already seen (hash lookups only).
Wall time is the goal; CPU time (this process) is shown beside it because on a shared machine the wall
time also measures the neighbours (the load average is printed and saved too).
Prints a table and writes ``benchmarks/results/bench_ingest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digest.config import load_settings
from digest.db import Database
from digest.ingest.decode import decode
from digest.ingest.hf_json import parse_json
from digest.ingest.service import collect, ingest_paths, name_date

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("DIGEST_SHARED_DIR", ROOT.parent / "shared")) / "data" / "hf_daily"
RESULTS = ROOT / "benchmarks" / "results"
GOAL_SECONDS = 10.0


def parse_only(files: list[Path]) -> int:
    return sum(
        len(parse_json(decode(path.read_bytes()), name_date=name_date(path.name)).entries) for path in files
    )


def ingest_twice(data: Path) -> tuple[tuple[float, float], tuple[float, float], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        settings = load_settings(
            data_dir=Path(folder), database_url=f"sqlite:///{folder}/bench.sqlite3", secret_key="bench-" * 4
        )
        db = Database(settings, migrate=True)
        first, report = timed(lambda: ingest_paths(db, [data]))
        again, _ = timed(lambda: ingest_paths(db, [data]))
        db.dispose()
    return first, again, report.as_dict()


def timed(action: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """((wall seconds, CPU seconds), result)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = action()
    return (time.perf_counter() - start, time.process_time() - cpu), value


def run(data: Path, repeat: int) -> dict[str, Any]:
    files, _ = collect([data])
    phases: dict[str, list[tuple[float, float]]] = {"parse only": [], "ingest": [], "re-ingest": []}
    report: dict[str, Any] = {}
    for _ in range(repeat):
        seconds, entries = timed(lambda: parse_only(files))
        phases["parse only"].append(seconds)
        first, again, report = ingest_twice(data)
        phases["ingest"].append(first)
        phases["re-ingest"].append(again)
    return {"files": len(files), "entries": entries, "phases": phases, "report": report}


def table(result: dict[str, Any]) -> str:
    files = result["files"]
    rows = [f"{'phase':<12}{'best s':>9}{'median s':>10}{'cpu s':>8}{'ms/file':>9}"]
    medians = {}
    for phase, runs in result["phases"].items():
        walls = [wall for wall, _ in runs]
        medians[phase] = statistics.median(walls)
        cpu = statistics.median(cpu for _, cpu in runs)
        per_file = 1000 * medians[phase] / files
        rows.append(f"{phase:<12}{min(walls):>9.2f}{medians[phase]:>10.2f}{cpu:>8.2f}{per_file:>9.1f}")
    ingest, baseline = medians["ingest"], medians["parse only"]
    verdict = "met" if ingest <= GOAL_SECONDS else "MISSED"
    rows.append(
        f"ingest of {files} files / {result['entries']} entries: median {ingest:.2f} s "
        f"(goal <= {GOAL_SECONDS:.0f} s: {verdict})"
    )
    rows.append(
        f"database work over the parse-only baseline: {ingest - baseline:.2f} s; load {os.getloadavg()}"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of API JSON files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase (best and median shown)")
    args = parser.parse_args()
    result = run(args.data, args.repeat)
    print(table(result))
    counts = {k: result["report"][k] for k in ("files", "files_ingested", "files_rejected", "papers_new")}
    print("report:", json.dumps(counts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    result |= {
        "benchmark": "bench_ingest",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "system": platform.platform(),
        },
        "goal_seconds": GOAL_SECONDS,
        "report": counts,
    }
    (RESULTS / "bench_ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {RESULTS / 'bench_ingest.json'}")


if __name__ == "__main__":
    main()
