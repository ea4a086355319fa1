"""Sign-up with double opt-in: field errors, no address enumeration, rate limit, confirmation by POST only."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from library_support import add_topic_papers, speech_library
from sqlalchemy import select
from web_support import (
    add_subscriber,
    client_for,
    csrf_token,
    link_in,
    links,
    outbox_messages,
    path_of,
    snapshot,
)

from digest.config import load_settings
from digest.db import Database
from digest.models import Feedback, Subscriber
from digest.rank import load_profile

FORM = {
    "channel": "email",
    "email": "grace@example.org",
    "keywords": "diffusion, robotics",
    "excluded_keywords": "medical",
    "send_time": "07:30",
    "timezone": "Europe/Paris",
    "digest_size": "5",
}


@pytest.fixture
def client(settings, db):
    return client_for(settings, db)


def submit(client, **changes: str):
    token = csrf_token(client.get("/subscribe").text)
    return client.post("/subscribe", data=FORM | {"csrf_token": token} | changes, follow_redirects=True)


def subscribers(db) -> list[Subscriber]:
    with db.session() as session:
        return list(session.scalars(select(Subscriber).order_by(Subscriber.id)))


def test_subscribe_page_has_every_field_and_only_the_timezone_script(client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    for name in ("email", "slack", "keywords", "excluded_keywords", "send_time", "timezone", "digest_size"):
        assert f'name="{name}"' in page.text
    assert '<option value="Europe/Paris">' in page.text
    assert '<script src="/static/timezone.js" defer></script>' in page.text
    assert "submit(" not in client.get("/static/timezone.js").text


def test_sign_up_stores_a_pending_subscription_and_mails_a_confirmation_link(client, settings, db) -> None:
    answer = submit(client)
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    (subscriber,) = subscribers(db)
    assert (subscriber.status, subscriber.email, subscriber.keywords) == (
        "pending",
        "grace@example.org",
        ["diffusion", "robotics"],
    )
    assert (subscriber.send_time, subscriber.timezone, subscriber.digest_size) == ("07:30", "Europe/Paris", 5)
    assert subscriber.excluded_keywords == ["medical"] and subscriber.next_send_at is None
    (mail,) = outbox_messages(settings)
    assert mail["To"] == "grace@example.org" and "Confirm" in mail["Subject"]
    assert path_of(link_in(mail, "confirm")).startswith("/confirm/")
    assert mail.get_body(preferencelist=("html",)) is not None


def test_confirm_link_get_changes_nothing_and_post_activates(client, settings, db) -> None:
    submit(client)
    confirm = path_of(link_in(outbox_messages(settings)[0], "confirm"))
    before = snapshot(db)
    page = client.get(confirm)
    assert page.status_code == 200 and "Yes, start my digest" in page.text
    assert snapshot(db) == before
    done = client.post(confirm, data={"csrf_token": csrf_token(page.text)}, follow_redirects=True)
    assert done.status_code == 200 and "You're subscribed" in html.unescape(done.text)
    (subscriber,) = subscribers(db)
    assert subscriber.status == "active" and subscriber.confirmed_at is not None
    assert subscriber.next_send_at is not None
    again = client.post(confirm, data={"csrf_token": csrf_token(page.text)}, follow_redirects=True)
    assert "already confirmed" in again.text


def test_confirm_link_cannot_restart_a_stopped_subscription(client, settings, db) -> None:
    sid = add_subscriber(db, settings, status="unsubscribed")
    url = path_of(links(settings).confirm(sid))
    assert "Nothing to confirm" in client.get(url).text
    client.post(url, data={"csrf_token": csrf_token(client.get("/").text)})
    assert subscribers(db)[0].status == "unsubscribed"


def test_confirm_without_csrf_or_with_bad_token_is_refused(client, settings, db) -> None:
    submit(client)
    confirm = path_of(link_in(outbox_messages(settings)[0], "confirm"))
    assert client.post(confirm, data={}).status_code == 403
    assert client.get(confirm[:-4] + "AAAA").status_code == 400
    assert subscribers(db)[0].status == "pending"


def test_answer_is_the_same_for_a_known_address_which_gets_a_manage_mail(client, settings, db) -> None:
    sid = add_subscriber(db, settings, email="grace@example.org", keywords=["graphs"])
    known = submit(client)
    assert known.status_code == 200
    other = submit(client, email="someone.else@example.org")
    normalise = lambda text: text.replace("grace@example.org", "X").replace("someone.else@example.org", "X")  # noqa: E731
    strip_csrf = lambda text: text.split("<main>")[1]  # noqa: E731
    assert normalise(strip_csrf(known.text)) == normalise(strip_csrf(other.text))
    manage = [m for m in outbox_messages(settings) if m["To"] == "grace@example.org"]
    assert len(manage) == 1 and "/preferences/" in link_in(manage[0], "preferences")
    stored = [s for s in subscribers(db) if s.id == sid][0]
    assert stored.keywords == ["graphs"] and stored.status == "active"  # a stranger changed nothing


def test_known_address_with_bad_fields_gets_the_same_field_error_as_a_new_one(client, settings, db) -> None:
    add_subscriber(db, settings, email="grace@example.org")
    known = submit(client, send_time="25:99")
    new = submit(client, send_time="25:99", email="new@example.org")
    assert known.status_code == new.status_code == 422
    assert 'id="send_time-error"' in known.text and 'id="send_time-error"' in new.text
    assert outbox_messages(settings) == []


def test_pending_address_signing_up_again_gets_a_new_link_and_newest_choices(client, settings, db) -> None:
    submit(client)
    submit(client, keywords="graph neural networks")
    (subscriber,) = subscribers(db)
    assert subscriber.status == "pending" and subscriber.keywords == ["graph neural networks"]
    mails = outbox_messages(settings)
    assert len(mails) == 2 and all("/confirm/" in link_in(m, "confirm") for m in mails)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": ""}, "email"),
        ({"keywords": " , "}, "keywords"),
        ({"send_time": "7pm"}, "send_time"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"digest_size": "0"}, "digest_size"),
        ({"digest_size": "ten"}, "digest_size"),
        ({"channel": "slack", "slack": "#general"}, "slack"),
        ({"channel": "slack", "slack": "https://evil.example/hook"}, "slack"),
        ({"channel": "pigeon"}, "channel"),
        ({"keywords": "nul\x00byte"}, "keywords"),
    ],
)
def test_bad_field_is_shown_next_to_it_and_nothing_is_stored(client, settings, db, changes, field) -> None:
    answer = submit(client, **changes)
    assert answer.status_code == 422
    assert f'id="{field}-error"' in answer.text
    assert subscribers(db) == [] and outbox_messages(settings) == []
    if field in ("email", "keywords", "send_time", "digest_size", "slack") and "\x00" not in str(changes):
        assert 'aria-invalid="true"' in answer.text
        assert f'value="{changes.get(field, changes.get("email"))}"' in answer.text  # the input is kept


def test_submissions_are_rate_limited_per_client_address(data_dir: Path) -> None:
    settings = load_settings(data_dir=data_dir, secret_key="x" * 20, subscribe_rate_limit=2)
    db = Database(settings, migrate=True)
    client = client_for(settings, db)
    answers = [submit(client, email=f"u{i}@example.org").status_code for i in range(3)]
    assert answers == [200, 200, 429]
    limited = submit(client, email="u9@example.org")
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert len(subscribers(db)) == 2
    db.dispose()


def test_sign_up_without_csrf_token_is_refused(client, db) -> None:
    client.get("/")
    assert client.post("/subscribe", data=FORM).status_code == 403
    assert subscribers(db) == []


def test_slack_channel_sign_up_posts_the_confirmation_to_that_channel(client, settings, db) -> None:
    answer = submit(client, channel="slack", slack="C0123ABCD", email="")
    assert answer.status_code == 200 and "Slack" in answer.text
    (subscriber,) = subscribers(db)
    stored = (subscriber.channel, subscriber.slack_channel, subscriber.status)
    assert stored == ("slack_bot", "C0123ABCD", "pending")
    (posted,) = [json.loads(p.read_text()) for p in Path(settings.outbox).glob("*.json")]
    assert posted["channel"] == "C0123ABCD"
    button = posted["blocks"][1]["elements"][0]
    assert path_of(button["url"]).startswith("/confirm/")


def test_a_sign_up_answers_with_a_redirect_so_reloading_the_result_sends_nothing(
    client, settings, db
) -> None:
    token = csrf_token(client.get("/subscribe").text)
    answer = client.post("/subscribe", data=FORM | {"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/subscribe/sent?to=email"
    for _ in range(2):  # the result page, reloaded
        assert "Check your inbox" in client.get(answer.headers["location"]).text
    assert len(subscribers(db)) == 1 and len(outbox_messages(settings)) == 1


def test_confirming_redirects_to_a_page_that_says_so(client, settings, db) -> None:
    submit(client)
    confirm = path_of(link_in(outbox_messages(settings)[0], "confirm"))
    answer = client.post(confirm, data={"csrf_token": csrf_token(client.get(confirm).text)})
    assert answer.status_code == 303 and answer.headers["location"] == f"{confirm}?done=1"
    assert "You're subscribed" in html.unescape(client.get(answer.headers["location"]).text)


def test_every_bad_field_is_shown_at_once_and_highlighted(client, db) -> None:
    answer = submit(
        client, email="nope", keywords=" , ", send_time="25:99", timezone="Mars/Olympus", digest_size="0"
    )
    assert answer.status_code == 422
    for field in ("email", "keywords", "send_time", "timezone", "digest_size"):
        assert f'id="{field}-error"' in answer.text, field
        assert f'aria-invalid="true" aria-describedby="{field}-error"' in answer.text, field
    assert subscribers(db) == []


# --- a library at sign-up ------------------------------------------------------------------------------


def submit_with_library(client, data: bytes, name: str = "library.bib", **changes: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client.get("/subscribe").text)
    files = {"library": (name, data, "application/octet-stream")}
    return client.post(
        "/subscribe", data=FORM | {"csrf_token": token} | changes, files=files, follow_redirects=True
    )


def test_the_sign_up_form_takes_a_library_file(client) -> None:
    page = client.get("/subscribe").text
    assert 'enctype="multipart/form-data"' in page and 'type="file" name="library"' in page
    assert "BibTeX" in page and "5.24 MB" in page


def test_a_sign_up_with_a_library_and_no_keywords_shapes_the_pending_model(client, settings, db) -> None:
    ids = add_topic_papers(db, per_topic=4)
    answer = submit_with_library(client, speech_library(matched=2, texts=3).encode(), keywords="")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    (subscriber,) = subscribers(db)
    assert (subscriber.status, subscriber.keywords) == ("pending", [])
    with db.session() as session:
        votes = session.execute(select(Feedback.paper_id, Feedback.source)).all()
        assert sorted(votes) == [(ids["speech"][0], "library"), (ids["speech"][1], "library")]
        assert len(load_profile(session, subscriber).texts) == 3
    (mail,) = outbox_messages(settings)
    assert "Confirm" in mail["Subject"]  # still double opt-in: nothing is sent before the click


def test_a_bad_library_is_named_next_to_its_field_and_nothing_is_stored(client, db) -> None:
    before = snapshot(db)
    answer = submit_with_library(
        client, b"@misc{a, year = {2020}}\n@article{b, title = {Fine}}\n", keywords=""
    )
    assert answer.status_code == 422
    text = html.unescape(answer.text)
    assert 'id="library-error"' in text and "entry 'a' (line 1): no title, arXiv id or DOI" in text
    assert "choose it again" in text and "give at least one keyword" not in text
    assert snapshot(db) == before


def test_a_library_over_the_size_limit_is_refused(settings, db) -> None:
    small = settings.model_copy(update={"max_library_bytes": 100})
    client = client_for(small, db)
    answer = submit_with_library(client, b"1706.03762\n" * 20, keywords="")
    assert answer.status_code == 422 and "too big (the limit is 100 bytes)" in html.unescape(answer.text)
    assert subscribers(db) == []


def test_a_request_body_far_over_the_limit_is_refused_before_it_is_read(settings, db) -> None:
    small = settings.model_copy(update={"max_library_bytes": 100})
    client = client_for(small, db)
    token = csrf_token(client.get("/subscribe").text)
    huge = b"x" * (2 * 1024 * 1024)
    answer = client.post(
        "/subscribe", data=FORM | {"csrf_token": token}, files={"library": ("big.bib", huge)}
    )
    assert answer.status_code == 413 and "Too large" in answer.text
    assert subscribers(db) == []


def test_a_live_address_signing_up_again_with_a_library_changes_nothing(client, settings, db) -> None:
    add_topic_papers(db, per_topic=4)
    sid = add_subscriber(db, settings, email="grace@example.org")
    before = snapshot(db)
    answer = submit_with_library(client, speech_library(matched=2, texts=1).encode())
    assert "Check your inbox" in answer.text and snapshot(db) == before
    with db.session() as session:
        assert session.get(Subscriber, sid).keywords == ["diffusion"]
