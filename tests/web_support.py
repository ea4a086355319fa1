"""Helpers shared by the web app tests: data set-up through the real modules, CSRF scraping, DB snapshots."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.config import Settings
from digest.db import Database
from digest.models import Base, Paper
from digest.signing import Links, links_for
from digest.subscribers import create_subscriber
from digest.web.app import create_app

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def client_for(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, db), follow_redirects=False)


def links(settings: Settings) -> Links:
    return links_for(settings)


def path_of(url: str) -> str:
    """The path of one of our absolute links (the test client talks to its own host)."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def add_paper(db: Database, n: int = 1, **fields: Any) -> int:
    values = {
        "key": f"arxiv:2501.{n:05d}",
        "arxiv_id": f"2501.{n:05d}",
        "title_key": f"paper {n}",
        "title": f"Paper {n}: diffusion models for <b>robots</b>",
        "abstract": f"Abstract of paper {n}.",
        "authors": ["Ada Lovelace", "Alan Turing"],
    } | fields
    with db.session() as session:
        paper = Paper(**values)
        session.add(paper)
        session.flush()
        return paper.id


def add_subscriber(db: Database, settings: Settings, **fields: Any) -> int:
    values: dict[str, Any] = {"email": "ada@example.org", "keywords": ["diffusion"]} | fields
    with db.session() as session:
        return create_subscriber(session, settings, **values).id


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: a GET must leave this exactly as it was."""
    with db.session() as session:
        return {
            table.name: sorted((tuple(row) for row in session.execute(select(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }


def outbox_messages(settings: Settings) -> list[email.message.EmailMessage]:
    files = sorted(Path(settings.outbox).glob("*.eml"))
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]  # type: ignore[misc]


def link_in(message: email.message.EmailMessage, kind: str) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(rf"https?://\S+/{kind}/\S+", body.get_content())
    assert match, f"no /{kind}/ link in the message"
    return match.group(0)
