"""Fault suite, SQLite: votes while another process ingests a big file. No ingest holds the write lock for
more than a chunk, and every vote answers 2xx within 1 s (the maximum-size file is in
``python -m benchmarks.bench_write_lock``: 1.4 M entries, 49 MB)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

from sqlalchemy import func, select
from web_support import add_paper, add_subscriber, client_for, csrf_token, links, path_of

from digest.models import DigestFile, Feedback

ENTRIES = 120_000


class LockProbe(threading.Thread):
    """Tries to take the write lock every 2 ms without waiting; the longest run of failures is the
    longest time another writer held it."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path, self.longest, self.stop = path, 0.0, threading.Event()

    def run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        since: float | None = None
        while not self.stop.is_set():
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
                self.longest = max(self.longest, time.perf_counter() - since) if since else self.longest
                since = None
            except sqlite3.OperationalError:
                since = since or time.perf_counter()
            time.sleep(0.002)
        connection.close()


def test_votes_during_a_big_ingest_elsewhere_answer_2xx_and_the_lock_is_held_under_a_second(
    settings, db, tmp_path
):
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"title": f"Small entry {n:08d}"} for n in range(ENTRIES)]))
    sid, pid = add_subscriber(db, settings), add_paper(db)
    client = client_for(settings, db)
    vote = path_of(links(settings).feedback(sid, pid, "up"))
    form = {"csrf_token": csrf_token(client.get(vote).text)}
    env = {**os.environ, "DIGEST_DATA_DIR": str(settings.data_dir), "DIGEST_SECRET_KEY": settings.secret}
    probe = LockProbe(str(settings.data_dir / "digest.sqlite3"))
    ingest = subprocess.Popen([sys.executable, "-m", "digest", "ingest", str(big)], env=env)
    probe.start()
    answers = []
    while ingest.poll() is None:
        started = time.perf_counter()
        status = client.post(
            vote, data=form, follow_redirects=True
        ).status_code  # the 303 and the result page it leads to
        answers.append((status, time.perf_counter() - started))
        time.sleep(0.05)
    probe.stop.set()
    probe.join()
    with db.session() as session:
        (file,) = session.scalars(select(DigestFile)).all()
        stored = session.scalar(select(func.count()).select_from(Feedback))
    assert ingest.returncode == 0 and (file.status, file.papers_new) == ("ingested", ENTRIES)
    assert len(answers) > 20 and {status for status, _ in answers} == {200} and stored == len(answers)
    # The bug was votes hanging 90 s or failing "database is locked"; a vote's time also holds the machine's
    # load (1.3 s seen with benchmarks running), so the bound on the lock itself is the probe's.
    assert max(seconds for _, seconds in answers) < 5.0, sorted(s for _, s in answers)[-5:]
    assert probe.longest < 1.0
