"""Import subscribers from CSV (`digest subscribers import`) into a fresh SQLite database, or PostgreSQL.

    python -m benchmarks.bench_import [--rows 1000 100000] [--baseline-rows 2000] [--postgres URL]

Phases, each on a fresh migrated database:
* dry run     — every row checked (the same checks as `digest subscribe`), nothing stored;
* import      — checked, then one bulk INSERT;
* one by one  — the baseline: ``create_subscriber`` per row, an ORM round trip each (``--baseline-rows``),
  shown per row so the two compare in the same run.
Prints a table and writes ``benchmarks/results/bench_import.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from digest.config import load_settings
from digest.db import Database
from digest.subscribers import create_subscriber, import_csv

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Europe/Berlin")
HEADER = "email,keywords,exclude,time,timezone,size,weekdays,cadence\n"


def rows_csv(count: int) -> str:
    lines = [
        f'reader{n}@lab{n % 97}.example.org,"topic {n % 13}, diffusion, retrieval",surveys,'
        f"{6 + n % 4:02d}:{n % 60:02d},{ZONES[n % len(ZONES)]},{5 + n % 10},01234,daily\n"
        for n in range(count)
    ]
    return HEADER + "".join(lines)


def fresh(url: str | None, folder: Path) -> Database:
    """A migrated, empty database: a new SQLite file, or the benchmark's PostgreSQL database emptied."""
    settings = load_settings(data_dir=folder, database_url=url, secret_key="bench-secret-key-0123456789")
    db = Database(settings, migrate=True)
    if url is not None:
        with db.engine.begin() as connection:
            connection.execute(text("TRUNCATE subscribers RESTART IDENTITY CASCADE"))
    return db


def timed_import(url: str | None, count: int, *, dry_run: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        db = fresh(url, Path(folder))
        data = rows_csv(count)
        started = time.perf_counter()
        with db.session() as session:
            report = import_csv(session, db.settings, io.StringIO(data), dry_run=dry_run)
        elapsed = time.perf_counter() - started
        assert not report.errors and report.rows == count, report.errors[:3]
        db.dispose()
    return elapsed


def timed_one_by_one(url: str | None, count: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        db = fresh(url, Path(folder))
        started = time.perf_counter()
        with db.session() as session:
            for n in range(count):
                create_subscriber(session, db.settings, email=f"r{n}@example.org", keywords="diffusion")
        elapsed = time.perf_counter() - started
        db.dispose()
    return elapsed


def postgres_database(admin_url: str) -> tuple[str, Any]:
    name = f"bench_import_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return admin_url.rsplit("/", 1)[0] + f"/{name}", lambda: _drop(admin, name)


def _drop(admin: Any, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run(url: str | None, rows: list[int], baseline_rows: int) -> list[dict[str, Any]]:
    results = []
    for count in rows:
        for phase, dry in (("dry run", True), ("import", False)):
            seconds = timed_import(url, count, dry_run=dry)
            results.append(
                {"phase": phase, "rows": count, "seconds": seconds, "us_per_row": seconds / count * 1e6}
            )
    seconds = timed_one_by_one(url, baseline_rows)
    results.append(
        {
            "phase": "one by one",
            "rows": baseline_rows,
            "seconds": seconds,
            "us_per_row": seconds / baseline_rows * 1e6,
        }
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--baseline-rows", type=int, default=2000)
    parser.add_argument(
        "--postgres", metavar="URL", help="admin URL of a PostgreSQL server (a database is made)"
    )
    args = parser.parse_args()
    url, cleanup = postgres_database(args.postgres) if args.postgres else (None, None)
    try:
        results = run(url, args.rows, args.baseline_rows)
    finally:
        if cleanup is not None:
            cleanup()
    print(f"{'phase':<12}{'rows':>9}{'seconds':>10}{'µs/row':>9}  ({'PostgreSQL' if url else 'SQLite'})")
    for row in results:
        print(f"{row['phase']:<12}{row['rows']:>9}{row['seconds']:>10.2f}{row['us_per_row']:>9.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_import.json").write_text(
        json.dumps({"database": "postgresql" if url else "sqlite", "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
