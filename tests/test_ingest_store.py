"""Writing a file in chunks: the same result as one transaction, the file ingested only once all of it is
in, an interrupted ingest finished when the file is offered again, per-chunk work inside each chunk."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from ingest_support import api_entry, paper_rows
from sqlalchemy import select

from digest.config import load_settings
from digest.db import Database
from digest.ingest import store
from digest.ingest.service import ingest_bytes
from digest.models import Appearance, DigestFile, Paper

# Repeats across chunks, a title-only listing that a later chunk gives an arXiv id and an abstract, and
# one title shared by two arXiv ids in different chunks: the cases where chunks must act as one file.
ENTRIES = [
    {"paper": {"title": "Sparse attention for long contexts"}},
    api_entry("2501.00002", "Diffusion models for speech"),
    api_entry("2501.00003", "Shared title"),
    api_entry("2501.00004", "Robot grasping from touch"),
    api_entry("2501.00002", "Diffusion models for speech"),
    api_entry("2501.00005", "Sparse attention for long contexts", "Now with an abstract of its own, long."),
    api_entry("2501.00006", "Shared title"),
    {"paper": {"title": "Robot grasping from touch"}},
    api_entry("2501.00007", "A last paper"),
]
DATA = json.dumps(ENTRIES).encode()


def appearances(db: Database) -> list[tuple[str, int]]:
    with db.session() as session:
        rows = session.execute(
            select(Paper.key, Appearance.position).join(Appearance).order_by(Appearance.position)
        )
        return [tuple(row) for row in rows]


def fresh_db(tmp_path, name: str) -> Database:
    return Database(load_settings(data_dir=tmp_path / name, secret_key="x" * 20), migrate=True)


def test_chunks_of_three_store_exactly_what_one_transaction_stores(tmp_path, monkeypatch):
    whole = fresh_db(tmp_path, "whole")
    (one,) = ingest_bytes(whole, "2025-01-01.json", DATA).results
    monkeypatch.setattr(store, "CHUNK_ENTRIES", 3)
    chunked = fresh_db(tmp_path, "chunked")
    (three,) = ingest_bytes(chunked, "2025-01-01.json", DATA).results
    assert (three.status, three.papers_new, three.papers_duplicate, three.papers_enriched) == (
        one.status,
        one.papers_new,
        one.papers_duplicate,
        one.papers_enriched,
    )
    assert sorted(paper_rows(chunked).values()) == sorted(paper_rows(whole).values())
    assert appearances(chunked) == appearances(whole)


def test_an_interrupted_ingest_is_not_ingested_and_finishes_once_when_offered_again(db, monkeypatch):
    monkeypatch.setattr(store, "CHUNK_ENTRIES", 3)
    chunks = []

    def fail_on_the_second_chunk(session, chunk):
        chunks.append(chunk)
        assert session.get(DigestFile, chunk.digest_file_id).status == "ingesting"  # inside the transaction
        if len(chunks) == 2:
            raise OSError("disk full")

    with pytest.raises(OSError):
        ingest_bytes(db, "2025-01-01.json", DATA, on_chunk=fail_on_the_second_chunk)
    with db.session() as session:
        row = session.scalars(select(DigestFile)).one()
        assert (row.status, row.papers_total) == ("ingesting", 3)  # the first chunk only, as committed
        assert len(session.scalars(select(Paper)).all()) == len(chunks[0].new)
    (finished,) = ingest_bytes(db, "2025-01-01.json", DATA).results
    assert finished.status == "ingested" and finished.papers_total == len(ENTRIES)
    with db.session() as session:
        row = session.scalars(select(DigestFile)).one()
        assert (row.status, row.papers_total, row.claimed_by) == ("ingested", len(ENTRIES), None)
    positions = [position for _, position in appearances(db)]
    assert positions == list(range(1, len(positions) + 1))  # every paper listed once, in order
    assert ingest_bytes(db, "again.json", DATA).results[0].status == "already_seen"


def test_a_file_another_live_process_is_writing_is_left_to_it(db):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        with db.session() as session:
            session.add(
                DigestFile(
                    name="x.json",
                    content_hash=_hash(DATA),
                    status="ingesting",
                    size=len(DATA),
                    claimed_by=f"{socket.gethostname()}:{other.pid}:-",
                )  # fmt: skip
            )
        (result,) = ingest_bytes(db, "2025-01-01.json", DATA).results
        other.kill()
    assert result.status == "already_seen" and f":{other.pid}:" in result.reason


def _hash(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
