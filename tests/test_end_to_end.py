"""A subscriber's first three days, with controlled time: inbox → digest by SMTP → 👍/👎 over HTTP →
a better second digest → unsubscribe → silence. Only the edges are local servers (aiosmtpd) and the web
app is driven over HTTP (Starlette's TestClient); everything between is the real code."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import time_machine
from aiosmtpd.controller import Controller
from common import TEST_SECRET
from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.config import Settings, load_settings
from digest.db import Database
from digest.dispatch import Dispatcher
from digest.ingest.inbox import InboxWatcher
from digest.models import Delivery, Subscriber
from digest.signing import Signer
from digest.subscribers import create_subscriber
from digest.web.app import create_app

BASE_URL = "http://digest.test"
DAY1 = dt.datetime(2025, 6, 2, 4, 0)  # Monday 06:00 in Berlin (CEST); the send time is 07:00 local
FEEDBACK_LINK = re.compile(re.escape(BASE_URL) + r"(/feedback/[A-Za-z0-9._\-]+)")
UNSUBSCRIBE_LINK = re.compile(re.escape(BASE_URL) + r"(/unsubscribe/[A-Za-z0-9._\-]+)")
CSRF_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"|value="([^"]+)"\s+name="csrf_token"')

DAY1_PAPERS = {
    "2506.10001": (
        "Pixel diffusion transformers for high resolution image generation",
        "An image diffusion model with pixel transformers renders high resolution images.",
    ),
    "2506.10002": (
        "Diffusion models for expressive speech synthesis",
        "A speech diffusion model turns text into expressive audio waveforms for speech synthesis.",
    ),
    "2506.10003": (
        "Latent diffusion for image inpainting",
        "Latent image diffusion fills masked image regions with pixel-accurate content.",
    ),
    "2506.10004": (
        "Audio diffusion vocoders for speech",
        "A diffusion vocoder generates speech audio waveforms from mel spectrograms.",
    ),
}
DAY2_PAPERS = {
    "2506.20001": (
        "Image diffusion with pixel space upsampling",
        "An image diffusion model upsamples pixel space images to high resolution image outputs.",
    ),
    "2506.20002": (
        "Speech diffusion for expressive audio waveform synthesis",
        "Expressive speech synthesis with a diffusion model over audio waveforms and speech prosody.",
    ),
}
DAY3_PAPERS = {
    "2506.30001": ("Speech diffusion for singing voices", "Diffusion synthesis of singing speech audio.")
}


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler, port = Mailbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def world(data_dir: Path, mailbox: tuple[Mailbox, int]) -> Iterator[tuple[Settings, Database]]:
    settings = load_settings(
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        base_url=BASE_URL,
        smtp_host="127.0.0.1",
        smtp_port=mailbox[1],
        smtp_security="none",
    )
    db = Database(settings, migrate=True)
    yield settings, db
    db.dispose()


def drop_in_inbox(settings: Settings, day: dt.datetime, papers: dict[str, tuple[str, str]]) -> None:
    items = [
        {
            "paper": {
                "id": arxiv_id,
                "title": title,
                "summary": abstract,
                "authors": [{"name": "Ada Lovelace"}],
            },
            "title": title,
            "publishedAt": f"{day:%Y-%m-%d}T00:00:00.000Z",
        }
        for arxiv_id, (title, abstract) in papers.items()
    ]
    settings.inbox.mkdir(parents=True, exist_ok=True)
    partial = settings.inbox / f"{day:%Y-%m-%d}.json.part"
    partial.write_text(json.dumps(items))
    partial.rename(settings.inbox / f"{day:%Y-%m-%d}.json")


def run_jobs(settings: Settings, db: Database, watcher: InboxWatcher) -> None:
    """What the scheduler does each tick: poll the inbox (twice: a new file must hold still), dispatch."""
    watcher.poll()
    watcher.poll()
    Dispatcher(db, settings).run()


def text_body(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def titles_in_order(body: str, papers: dict[str, tuple[str, str]]) -> list[str]:
    found = [(body.find(title), title) for title, _ in papers.values() if title in body]
    return [title for _, title in sorted(found)]


def feedback_links(body: str, settings: Settings) -> dict[tuple[int, str], str]:
    """(paper id, "up"/"down") → the link's path, read from the mail and checked by the signer."""
    signer = Signer(settings.secret, settings.token_max_age_days)
    links = {}
    for path in FEEDBACK_LINK.findall(body):
        token = signer.loads(path.rsplit("/", 1)[1], {"up", "down"})
        links[(token.paper_id, token.action)] = path
    return links


def follow_and_confirm(client: TestClient, path: str) -> None:
    """Open a link (GET changes nothing) and press the page's button (the POST with its CSRF field)."""
    page = client.get(path)
    assert page.status_code == 200
    match = CSRF_FIELD.search(page.text)
    assert match, f"no csrf_token field on {path}"
    response = client.post(path, data={"csrf_token": match.group(1) or match.group(2)})
    assert response.status_code == 200, response.text


def paper_ids(db: Database) -> dict[str, int]:
    from digest.models import Paper

    with db.session() as session:
        return dict(session.execute(select(Paper.arxiv_id, Paper.id)).all())


def test_three_days_of_one_subscriber(world, mailbox):
    settings, db = world
    inbox, _ = mailbox
    watcher = InboxWatcher(db, settings.inbox, settle_seconds=3600)
    client = TestClient(create_app(settings, db), base_url=BASE_URL)

    with time_machine.travel(DAY1, tick=True):
        with db.session() as session:
            subscriber_id = create_subscriber(
                session,
                settings,
                email="ada@example.org",
                keywords=["diffusion"],
                send_time="07:00",
                timezone="Europe/Berlin",
            ).id
        drop_in_inbox(settings, DAY1, DAY1_PAPERS)
        run_jobs(settings, db, watcher)
        assert inbox.messages == []  # 06:00 in Berlin: not yet

    # Day 1, 07:01 Berlin: the first digest arrives by SMTP with every day-1 paper.
    with time_machine.travel(DAY1 + dt.timedelta(hours=1, minutes=1), tick=True):
        run_jobs(settings, db, watcher)
    assert len(inbox.messages) == 1
    day1 = text_body(inbox.messages[0])
    assert inbox.messages[0]["To"] == "ada@example.org"
    assert sorted(titles_in_order(day1, DAY1_PAPERS)) == sorted(t for t, _ in DAY1_PAPERS.values())

    # 👎 the image paper, 👍 the speech paper — by following the mail's own links over HTTP.
    ids = paper_ids(db)  # day 2's papers are looked up again below, once ingested
    with time_machine.travel(DAY1 + dt.timedelta(hours=3), tick=True):
        links = feedback_links(day1, settings)  # signed links expire: read them in the story's time
        follow_and_confirm(client, links[(ids["2506.10001"], "down")])
        follow_and_confirm(client, links[(ids["2506.10002"], "up")])

    # Day 2: new papers; the digest has none of day 1's and ranks speech over image.
    day2 = DAY1 + dt.timedelta(days=1)
    with time_machine.travel(day2, tick=True):
        drop_in_inbox(settings, day2, DAY2_PAPERS)
        run_jobs(settings, db, watcher)
    with time_machine.travel(day2 + dt.timedelta(hours=1, minutes=1), tick=True):
        run_jobs(settings, db, watcher)
    assert len(inbox.messages) == 2
    second = text_body(inbox.messages[1])
    ids = paper_ids(db)
    with time_machine.travel(day2 + dt.timedelta(hours=2), tick=True):
        linked = {paper for paper, _ in feedback_links(second, settings)}
    assert linked == {ids["2506.20001"], ids["2506.20002"]}  # no day-1 paper is offered again
    assert titles_in_order(second, DAY2_PAPERS) == [
        DAY2_PAPERS["2506.20002"][0],  # speech, like the 👍
        DAY2_PAPERS["2506.20001"][0],  # image, like the 👎
    ]

    # Unsubscribe from the second mail's link; day 3 sends nothing.
    (unsubscribe,) = set(UNSUBSCRIBE_LINK.findall(second))
    with time_machine.travel(day2 + dt.timedelta(hours=5), tick=True):
        follow_and_confirm(client, unsubscribe)
    day3 = day2 + dt.timedelta(days=1)
    with time_machine.travel(day3, tick=True):
        drop_in_inbox(settings, day3, DAY3_PAPERS)
        run_jobs(settings, db, watcher)
    with time_machine.travel(day3 + dt.timedelta(hours=1, minutes=1), tick=True):
        run_jobs(settings, db, watcher)
    assert len(inbox.messages) == 2
    with db.session() as session:
        assert session.get(Subscriber, subscriber_id).status == "unsubscribed"
        dates = session.scalars(select(Delivery.digest_date).order_by(Delivery.digest_date)).all()
    assert dates == [DAY1.date(), day2.date()]
