"""A subscriber's archive: each delivered digest's page ("view in browser"), "my ratings" and the Atom feed;
GETs only show, votes come back to the page, and no link shows another subscriber's data."""

from __future__ import annotations

import datetime as dt
import html
import io

import feedparser
import pytest
import time_machine
from library_support import add_topic_papers, speech_library
from sqlalchemy import select
from web_support import (
    add_paper,
    add_subscriber,
    client_for,
    csrf_token,
    link_in,
    links,
    outbox_messages,
    path_of,
    snapshot,
)

from digest.dispatch import send_digest
from digest.models import Feedback
from digest.rank import record_feedback
from digest.references import read_library
from digest.signing import Signer
from digest.subscribers.library import import_library

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
DAY = NOW.date()
LABEL = f"{DAY:%A} {DAY.day} {DAY:%B %Y}"
DIFFUSION = ["alpha", "beta", "gamma"]


@pytest.fixture
def client(settings, db):
    return client_for(settings, db)


@pytest.fixture
def two(settings, db) -> dict[str, object]:
    """Two subscribers on topics that share no word, each sent a digest of their own papers today."""
    diffusion = [
        add_paper(
            db, n, title=f"Diffusion models generate images, variant {name}", abstract=f"Denoising {name}."
        )
        for n, name in enumerate(DIFFUSION, start=1)
    ]
    lattice = [
        add_paper(
            db, n, title=f"Lattice signatures resist quantum adversaries, scheme {name}", abstract="Keys."
        )
        for n, name in ((4, "one"), (5, "two"))
    ]
    ada = add_subscriber(db, settings, email="ada@example.org", keywords=["diffusion"])
    bo = add_subscriber(db, settings, email="bo@example.org", keywords=["lattice signatures"])
    for sid in (ada, bo):
        assert send_digest(db, settings, sid, DAY, now=NOW).status == "sent"
    return {"ada": ada, "bo": bo, "diffusion": diffusion, "lattice": lattice}


def test_the_digest_mail_links_its_page_and_the_page_lists_its_picks_with_vote_buttons(
    client, settings, db, two
):
    mail = [m for m in outbox_messages(settings) if m["To"] == "ada@example.org"][-1]
    url = link_in(mail, "archive")
    assert url.endswith(f"/{DAY.isoformat()}")
    before = snapshot(db)
    page = client.get(path_of(url))
    assert page.status_code == 200 and snapshot(db) == before
    text = html.unescape(page.text)
    assert f"{LABEL} · 3 papers picked for <strong>diffusion</strong>" in text
    for name in DIFFUSION:
        assert f"Diffusion models generate images, variant {name}" in text
    assert text.count("Not rated") == 3 and text.count('name="back"') == 6
    assert "Why this pick:" in text and "Lattice" not in text


def test_a_vote_from_the_archive_page_is_recorded_and_comes_back_to_it(client, settings, db, two):
    url = path_of(links(settings).archive(two["ada"], DAY))
    page = client.get(url).text
    form = page.split(f'id="paper-{two["diffusion"][1]}"', 1)[1]
    action = form.split('action="', 1)[1].split('"', 1)[0]  # its 👍 form
    answer = client.post(action, data={"csrf_token": csrf_token(page), "back": url})
    assert (
        answer.status_code == 303
        and answer.headers["location"] == f"{url}?voted=up#paper-{two['diffusion'][1]}"
    )
    shown = client.get(answer.headers["location"].split("#")[0]).text
    assert "your vote is recorded" in shown and "Your vote: <strong>👍</strong>" in shown
    with db.session() as session:
        assert session.execute(select(Feedback.subscriber_id, Feedback.paper_id, Feedback.value)).all() == [
            (two["ada"], two["diffusion"][1], 1)
        ]


def test_a_vote_never_redirects_off_the_archive(client, settings, db, two):
    action = path_of(links(settings).feedback(two["ada"], two["diffusion"][0], "down"))
    token = csrf_token(client.get(action).text)
    for back in ("https://evil.example/", "//evil.example/archive/x", "/archive/x/../../preferences/y"):
        answer = client.post(action, data={"csrf_token": token, "back": back})
        assert answer.headers["location"].startswith("/feedback/")


def test_my_ratings_lists_likes_and_dislikes_and_a_vote_changes_there(client, settings, db, two):
    with db.session() as session:
        from digest.models import Subscriber

        ada = session.get(Subscriber, two["ada"])
        record_feedback(session, ada, two["diffusion"][0], 1, "web")
        record_feedback(session, ada, two["diffusion"][2], -1, "slack")
    url = path_of(links(settings).ratings(two["ada"]))
    page = client.get(url)
    text = html.unescape(page.text)
    liked, disliked = text.split("👎 Disliked", 1)
    assert "👍 Liked (1)" in liked and "variant alpha" in liked and "variant gamma" not in liked
    assert "(1)" in disliked and "variant gamma" in disliked
    down = liked.split('id="paper-', 1)[1].split('action="', 2)[2].split('"', 1)[0]  # the liked one's 👎
    answer = client.post(down, data={"csrf_token": csrf_token(page.text), "back": url}, follow_redirects=True)
    assert "👍 Liked (0)" in html.unescape(answer.text) and "👎 Disliked (2)" in html.unescape(answer.text)


def test_no_page_shows_another_subscribers_digest_votes_or_feed(client, settings, db, two):
    with db.session() as session:
        from digest.models import Subscriber

        record_feedback(session, session.get(Subscriber, two["bo"]), two["lattice"][0], -1, "web")
    made = links(settings)
    ada_pages = [
        made.archive(two["ada"]),
        made.archive(two["ada"], DAY),
        made.ratings(two["ada"]),
        made.feed(two["ada"]),
    ]
    for url in ada_pages:
        text = html.unescape(client.get(path_of(url)).text)
        assert "bo@example.org" not in text and "Lattice" not in text, url
    bo_day = client.get(path_of(made.archive(two["bo"], DAY)))
    assert "Lattice signatures" in html.unescape(bo_day.text) and "Diffusion" not in bo_day.text
    # Only our key signs a link to Bo's pages; a token for Bo signed with any other key is refused.
    forged = Signer("a-key-someone-else-has-32-chars!").dumps("archive", two["bo"])
    assert client.get(f"/archive/{forged}").status_code == 400


def test_the_archive_lists_past_digests_and_a_day_without_one_is_not_found(client, settings, db, two):
    index = client.get(path_of(links(settings).archive(two["ada"])))
    assert f"{DAY:%A} {DAY.day} {DAY:%B %Y}" in index.text and "3 papers" in index.text
    assert 'href="/archive/' in index.text and "/feed/" in index.text
    missing = client.get(path_of(links(settings).archive(two["ada"], DAY - dt.timedelta(days=1))))
    assert missing.status_code == 404 and "No such digest of that day" in html.unescape(missing.text)


def test_the_feed_is_valid_atom_with_one_entry_per_pick(client, settings, db, two):
    answer = client.get(path_of(links(settings).feed(two["ada"])))
    assert (
        answer.status_code == 200 and answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    )
    feed = feedparser.parse(io.BytesIO(answer.content))
    assert not feed.bozo and feed.version == "atom10"
    assert [entry.title for entry in feed.entries] == [
        f"Diffusion models generate images, variant {name}" for name in DIFFUSION
    ]
    entry = feed.entries[0]
    assert entry.id == links(settings).paper(two["diffusion"][0]) and entry.link.startswith(
        "https://huggingface.co/papers/"
    )
    assert entry.published_parsed[:5] == NOW.timetuple()[:5] and [a.name for a in entry.authors] == [
        "Ada Lovelace",
        "Alan Turing",
    ]
    assert "Why this pick:" in entry.content[0].value and "/feedback/" in entry.content[0].value
    assert feed.feed.links[0].rel == "self" and "/feed/" in feed.feed.links[0].href


def test_an_empty_feed_is_valid_too_and_feed_links_never_expire(settings, db):
    sid = add_subscriber(db, settings)
    url = links(settings).feed(sid)
    with time_machine.travel(dt.datetime.now() + dt.timedelta(days=400)):
        answer = client_for(settings, db).get(path_of(url))
    feed = feedparser.parse(io.BytesIO(answer.content))
    assert answer.status_code == 200 and not feed.bozo and feed.entries == []


def test_an_archive_link_expires_like_a_digests_links_and_other_tokens_are_refused(client, settings, db, two):
    url = path_of(links(settings).archive(two["ada"], DAY))
    with time_machine.travel(dt.datetime.now() + dt.timedelta(days=settings.token_max_age_days + 1)):
        assert client.get(url).status_code == 400
    preferences_token = links(settings).preferences(two["ada"]).rsplit("/", 1)[1]
    assert client.get(f"/archive/{preferences_token}").status_code == 400
    assert client.get(f"/feed/{preferences_token}").status_code == 400
    other_key = Signer("another-secret-key-of-32-chars!!").dumps("feed", two["ada"])
    assert client.get(f"/feed/{other_key}").status_code == 400


@pytest.mark.postgres
def test_the_archive_ratings_feed_and_a_library_work_on_postgresql(pg_db) -> None:
    settings = pg_db.settings.model_copy(update={"base_url": "http://digest.test"})
    add_topic_papers(pg_db, per_topic=6)
    sid = add_subscriber(pg_db, settings, keywords=["speech synthesis"])
    with pg_db.session() as session:
        from digest.models import Subscriber

        import_library(
            session, session.get(Subscriber, sid), read_library(speech_library(3, 2).encode(), 10**6)
        )
    assert send_digest(pg_db, settings, sid, DAY, now=NOW).status == "sent"
    client = client_for(settings, pg_db)
    made = links(settings)
    index = client.get(path_of(made.archive(sid)))
    day = client.get(path_of(made.archive(sid, DAY)))
    ratings = html.unescape(client.get(path_of(made.ratings(sid))).text)
    feed = feedparser.parse(io.BytesIO(client.get(path_of(made.feed(sid))).content))
    assert index.status_code == day.status_code == 200 and "in your library" in html.unescape(day.text)
    assert "👍 Liked (3)" in ratings and "from your library" in ratings
    assert not feed.bozo and len(feed.entries) >= 3
