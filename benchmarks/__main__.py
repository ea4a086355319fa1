"""Run every benchmark in turn with its defaults: ``python -m benchmarks [name ...]``.

Each one runs in its own process so that one benchmark's caches and memory do not colour the next;
each prints its own table (figures are ratios against a baseline measured in the same run).
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "bench_ingest",
    "bench_rank",
    "bench_rank_pieces",
    "bench_send",
    "bench_feedback",
    "bench_dispatch",
    "bench_import",
    "bench_write_lock",
)


def main(argv: list[str]) -> int:
    chosen = [name if name.startswith("bench_") else f"bench_{name}" for name in argv] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
