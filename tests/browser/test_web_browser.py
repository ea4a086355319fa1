"""The whole subscriber journey in a real browser (Debian's Chromium driven by Playwright) against the app
served by uvicorn: subscribe → confirm from the mailed link → vote from a digest link → change preferences
→ unsubscribe. Screenshots go to test-artifacts/browser/ (look at them when a page changes)."""

from __future__ import annotations

import datetime as dt
import html
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import func, select
from web_support import add_paper, link_in, outbox_messages

from digest.config import Settings, load_settings
from digest.db import Database
from digest.dispatch import send_digest
from digest.models import Feedback, Subscriber
from digest.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """The app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.settings: Settings = load_settings(
            data_dir=data_dir, secret_key="browser-test-secret-key", base_url=self.url
        )
        self.db = Database(self.settings, migrate=True)
        config = uvicorn.Config(
            create_app(self.settings, self.db),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.db.dispose()


@pytest.fixture
def served(data_dir: Path) -> Iterator[Served]:
    app = Served(data_dir)
    yield app
    app.stop()


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", autouse=True)
def _screenshot_folder() -> None:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def count_votes(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Feedback)) or 0


def only_subscriber(db: Database) -> Subscriber:
    with db.session() as session:
        (subscriber,) = session.scalars(select(Subscriber)).all()
        return subscriber


def test_subscribe_confirm_vote_change_preferences_unsubscribe(served: Served, browser) -> None:
    context = browser.new_context(timezone_id="Europe/Berlin", viewport={"width": 1000, "height": 900})
    page = context.new_page()

    # 1. Subscribe: the browser's time zone is preselected; a bad field is shown next to itself.
    page.goto(served.url + "/")
    assert page.locator("#timezone").input_value() == "Europe/Berlin"
    page.fill("#email", "not an address")
    page.fill("#keywords", "diffusion, robot learning")
    page.click("button[type=submit]")
    assert page.locator("#email-error").is_visible()
    shot(page, "01-subscribe-error")
    page.fill("#email", "ada@example.org")
    page.fill("#digest_size", "5")
    page.fill("#send_time", "07:15")
    page.click("button[type=submit]")
    assert "Check your inbox" in page.content()
    shot(page, "02-subscribe-sent")
    assert only_subscriber(served.db).status == "pending"

    # 2. Confirm from the mailed link: the page alone changes nothing, its button confirms.
    (mail,) = outbox_messages(served.settings)
    page.goto(link_in(mail, "confirm"))
    shot(page, "03-confirm")
    assert only_subscriber(served.db).status == "pending"
    page.click("button[type=submit]")
    assert "You're subscribed" in html.unescape(page.content())
    subscriber = only_subscriber(served.db)
    assert subscriber.status == "active"
    assert (subscriber.timezone, subscriber.send_time) == ("Europe/Berlin", "07:15")

    # 3. A real digest mail, then a vote from its 👍 link: loading the page (scripts on) records nothing.
    add_paper(served.db, 1, title="Diffusion policies for robot learning", abstract="We study diffusion.")
    add_paper(served.db, 2, title="Robot learning from video diffusion", abstract="Robots and diffusion.")
    outcome = send_digest(served.db, served.settings, subscriber.id, dt.date.today())
    assert outcome.status == "sent", outcome.reason
    digest = [m for m in outbox_messages(served.settings) if m is not mail and "/feedback/" in str(m)][-1]
    page.goto(link_in(digest, "feedback"))
    page.wait_for_load_state("networkidle")
    assert count_votes(served.db) == 0
    assert "You have not rated this paper yet" in page.content()
    shot(page, "04-feedback")
    page.click("#vote-up")
    assert "your vote is recorded" in page.content()
    assert count_votes(served.db) == 1
    shot(page, "05-feedback-recorded")
    page.click("#vote-down")
    assert "Your vote: <strong>👎" in page.content() and count_votes(served.db) == 2

    # 4. Preferences from the digest's link.
    page.goto(link_in(digest, "preferences"))
    page.fill("#keywords", "graph neural networks")
    page.fill("#send_time", "18:30")
    page.uncheck("input[name=weekdays][value='6']")
    page.click("form[action$='" + page.url.rsplit("/", 1)[1] + "'] button[type=submit]")
    assert "Your preferences are saved." in page.content()
    shot(page, "06-preferences-saved")
    subscriber = only_subscriber(served.db)
    assert (subscriber.keywords, subscriber.send_time, subscriber.weekdays) == (
        ["graph neural networks"],
        "18:30",
        "012345",
    )

    # 5. Unsubscribe from the digest's link: GET asks, the button does it.
    page.goto(link_in(digest, "unsubscribe"))
    assert only_subscriber(served.db).status == "active"
    shot(page, "07-unsubscribe")
    page.click("#unsubscribe")
    assert "unsubscribed" in page.content() and only_subscriber(served.db).status == "unsubscribed"
    shot(page, "08-unsubscribed")

    # A tampered link gets a clear page, not a stack trace.
    answer = page.goto(link_in(digest, "feedback")[:-4] + "AAAA")
    assert answer is not None and answer.status == 400
    shot(page, "09-bad-link")
    context.close()


def test_feedback_page_on_a_phone(served: Served, browser) -> None:
    from web_support import add_subscriber, links

    sid = add_subscriber(served.db, served.settings)
    pid = add_paper(
        served.db,
        3,
        title="A rather long title about efficient attention for long-context "
        "language models on small devices",
        abstract="Attention. " * 60,
    )
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(links(served.settings).feedback(sid, pid, "down"))
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, "the page scrolls sideways on a phone"
    shot(page, "10-feedback-phone")
    page.tap("#vote-down")
    page.wait_for_selector(".notice")
    assert count_votes(served.db) == 1
    context.close()


def test_a_library_sign_up_then_the_archive_my_ratings_and_the_feed(
    served: Served, browser, tmp_path
) -> None:
    """Sign up with a BibTeX library instead of keywords, get a digest ranked by it, open its "view in
    browser" page, vote there, see "my ratings", and read the Atom feed."""
    import io

    import feedparser
    from library_support import add_topic_papers, speech_library

    add_topic_papers(served.db, per_topic=8)
    library = tmp_path / "my-library.bib"
    library.write_text(speech_library(matched=4, texts=6))
    context = browser.new_context(timezone_id="Europe/Berlin", viewport={"width": 1000, "height": 900})
    page = context.new_page()

    page.goto(served.url + "/")
    page.fill("#email", "ada@example.org")
    page.set_input_files("#library", str(library))
    shot(page, "11-subscribe-with-library")
    page.click("form[action='/subscribe'] button[type=submit]")
    assert "Check your inbox" in page.content()
    (mail,) = outbox_messages(served.settings)
    page.goto(link_in(mail, "confirm"))
    page.click("button[type=submit]")
    subscriber = only_subscriber(served.db)
    assert subscriber.status == "active" and subscriber.keywords == []

    outcome = send_digest(served.db, served.settings, subscriber.id, dt.date.today())
    assert outcome.status == "sent", outcome.reason
    (digest,) = [m for m in outbox_messages(served.settings) if "for you" in m["Subject"]]
    page.goto(link_in(digest, "archive"))  # the mail's "View in browser"
    assert "picked for <strong>your library</strong>" in page.content()
    assert page.locator(".why").first.inner_text().endswith("in your library")
    shot(page, "12-archive-digest")
    page.locator("article.listed").first.locator("button", has_text="More like this").click()
    assert "your vote is recorded" in page.content() and count_votes(served.db) == 4 + 1
    shot(page, "13-archive-voted")

    page.click("nav.archive-nav >> text=My ratings")
    assert "👍 Liked (5)" in page.content() and "from your library" in page.content()
    shot(page, "14-my-ratings")
    page.click("nav.archive-nav >> text=Past digests")
    shot(page, "15-archive-index")
    feed_url = page.locator("#feed-url").input_value()

    answer = page.goto(feed_url)
    assert answer is not None and answer.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(io.BytesIO(answer.body()))
    assert not feed.bozo and len(feed.entries) == outcome_count(served, subscriber.id)
    shot(page, "16-feed")

    page.goto(link_in(digest, "preferences"))
    page.locator("#library-section").scroll_into_view_if_needed()
    assert "4 papers of your library are among ours" in page.content()
    shot(page, "17-preferences-library")
    context.close()


def outcome_count(served: Served, subscriber_id: int) -> int:
    from digest.models import DeliveryItem

    with served.db.session() as session:
        return session.scalar(
            select(func.count()).select_from(DeliveryItem).where(DeliveryItem.subscriber_id == subscriber_id)
        )
