"""A subscriber's own pages: preferences, pause/resume, delete my data, unsubscribe and RFC 8058 one-click."""

from __future__ import annotations

import datetime as dt
import html

import pytest
import time_machine
from fastapi.testclient import TestClient
from library_support import add_topic_papers, speech_library
from sqlalchemy import func, select
from web_support import add_paper, add_subscriber, client_for, csrf_token, links, path_of, snapshot

from digest.models import Delivery, DeliveryItem, Feedback, Subscriber, SubscriberModel
from digest.rank import load_profile, record_feedback
from digest.signing import Signer
from digest.web.app import create_app


@pytest.fixture
def client(settings, db):
    return client_for(settings, db)


@pytest.fixture
def sid(settings, db) -> int:
    return add_subscriber(db, settings, keywords=["diffusion", "robotics"], excluded_keywords=["medical"])


def stored(db, sid: int) -> Subscriber | None:
    with db.session() as session:
        return session.get(Subscriber, sid)


def prefs_form(page: str, **changes: object) -> dict[str, object]:
    form: dict[str, object] = {
        "csrf_token": csrf_token(page),
        "keywords": "diffusion, robotics",
        "excluded_keywords": "medical",
        "send_time": "08:00",
        "timezone": "UTC",
        "digest_size": "10",
        "weekdays": list("0123456"),
        "cadence": "daily",
    }
    return form | changes


def test_preferences_page_shows_current_choices_and_changes_nothing(client, settings, db, sid) -> None:
    before = snapshot(db)
    page = client.get(path_of(links(settings).preferences(sid)))
    assert page.status_code == 200
    assert 'value="diffusion, robotics"' in page.text and 'value="medical"' in page.text
    assert '<option value="UTC" selected>' in page.text and 'id="pause"' in page.text
    assert snapshot(db) == before


def test_saving_preferences_updates_every_field(client, settings, db, sid) -> None:
    url = path_of(links(settings).preferences(sid))
    form = prefs_form(
        client.get(url).text,
        keywords="graph neural networks",
        excluded_keywords="",
        send_time="18:45",
        timezone="America/New_York",
        digest_size="3",
        weekdays=["0", "2", "4"],
        cadence="weekly",
    )
    answer = client.post(url, data=form, follow_redirects=True)
    assert answer.status_code == 200 and "saved" in answer.text
    subscriber = stored(db, sid)
    assert subscriber.keywords == ["graph neural networks"] and subscriber.excluded_keywords == []
    assert subscriber.send_time == "18:45" and subscriber.timezone == "America/New_York"
    assert subscriber.digest_size == 3
    assert (subscriber.weekdays, subscriber.cadence) == ("024", "weekly")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"keywords": ""}, "keywords"),
        ({"send_time": "24:00"}, "send_time"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"digest_size": "51"}, "digest_size"),
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": ["7"]}, "weekdays"),
        ({"cadence": "hourly"}, "cadence"),
    ],
)
def test_bad_preference_is_shown_next_to_its_field(client, settings, db, sid, changes, field) -> None:
    url = path_of(links(settings).preferences(sid))
    before = snapshot(db)
    answer = client.post(url, data=prefs_form(client.get(url).text, **changes))
    assert answer.status_code == 422 and f'id="{field}-error"' in answer.text
    assert snapshot(db) == before


def test_preferences_post_needs_the_csrf_token(client, settings, db, sid) -> None:
    url = path_of(links(settings).preferences(sid))
    form = prefs_form(client.get(url).text, keywords="changed")
    form.pop("csrf_token")
    assert client.post(url, data=form).status_code == 403
    assert stored(db, sid).keywords == ["diffusion", "robotics"]


def test_pause_and_resume(client, settings, db, sid) -> None:
    url = path_of(links(settings).preferences(sid))
    token = csrf_token(client.get(url).text)
    paused = client.post(url + "/pause", data={"csrf_token": token}, follow_redirects=True)
    assert "Paused" in paused.text and stored(db, sid).status == "paused"
    assert stored(db, sid).next_send_at is None
    resumed = client.post(url + "/resume", data={"csrf_token": token}, follow_redirects=True)
    assert "Resumed" in resumed.text and stored(db, sid).status == "active"
    assert stored(db, sid).next_send_at is not None


def test_delete_asks_first_then_erases_subscriber_votes_ledger_and_model(client, settings, db, sid) -> None:
    paper = add_paper(db)
    other = add_subscriber(db, settings, email="other@example.org")
    with db.session() as session:
        for who in (sid, other):
            record_feedback(session, session.get(Subscriber, who), paper, 1, "web")
            delivery = Delivery(
                subscriber_id=who, digest_date=dt.date(2025, 1, 2), channel="email", status="sent"
            )
            session.add(delivery)
            session.flush()
            session.add(DeliveryItem(delivery_id=delivery.id, subscriber_id=who, paper_id=paper, position=0))
    url = path_of(links(settings).preferences(sid)) + "/delete"
    before = snapshot(db)
    page = client.get(url)
    assert page.status_code == 200 and "Delete everything" in page.text
    assert snapshot(db) == before
    done = client.post(url, data={"csrf_token": csrf_token(page.text)}, follow_redirects=True)
    assert done.status_code == 200 and "deleted" in done.text
    with db.session() as session:
        for table in (Subscriber, Feedback, SubscriberModel, Delivery, DeliveryItem):
            column = table.id if table is Subscriber else table.subscriber_id
            assert session.scalar(select(func.count()).where(column == sid)) == 0
            assert session.scalar(select(func.count()).where(column == other)) == 1
    assert client.get(path_of(links(settings).preferences(sid))).status_code == 404


def test_unsubscribe_get_asks_and_post_unsubscribes(client, settings, db, sid) -> None:
    url = path_of(links(settings).unsubscribe(sid))
    before = snapshot(db)
    page = client.get(url)
    assert page.status_code == 200 and 'id="unsubscribe"' in page.text
    assert snapshot(db) == before
    done = client.post(url, data={"csrf_token": csrf_token(page.text)}, follow_redirects=True)
    assert done.status_code == 200 and "You're unsubscribed" in html.unescape(done.text)
    assert stored(db, sid).status == "unsubscribed" and stored(db, sid).next_send_at is None
    assert "already unsubscribed" in client.get(url).text


def test_unsubscribe_post_from_a_browser_needs_csrf(client, settings, db, sid) -> None:
    url = path_of(links(settings).unsubscribe(sid))
    client.get(url)
    assert client.post(url, data={}).status_code == 403
    assert stored(db, sid).status == "active"


def test_rfc8058_one_click_post_works_without_cookies_csrf_or_redirects(settings, db, sid) -> None:
    # A mail provider's request: no cookie jar, no earlier GET, and redirects would not be followed.
    client = TestClient(create_app(settings, db), follow_redirects=False, cookies=None)
    url = path_of(links(settings).unsubscribe(sid))
    answer = client.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert stored(db, sid).status == "unsubscribed"
    again = client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200


def test_one_click_with_a_tampered_token_is_refused(settings, db, sid) -> None:
    client = client_for(settings, db)
    url = path_of(links(settings).unsubscribe(sid))
    answer = client.post(url[:-4] + "AAAA", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 400
    assert stored(db, sid).status == "active"


def test_old_unsubscribe_links_work_but_old_preference_links_expire(client, settings, db, sid) -> None:
    signer = Signer(settings.secret, settings.token_max_age_days)
    with time_machine.travel("2020-01-01 00:00:00+00:00"):
        old_unsubscribe, old_preferences = signer.dumps("unsubscribe", sid), signer.dumps("preferences", sid)
    assert client.get(f"/preferences/{old_preferences}").status_code == 400
    assert "expired" in client.get(f"/preferences/{old_preferences}").text
    one_click = {"List-Unsubscribe": "One-Click"}
    assert client.post(f"/unsubscribe/{old_unsubscribe}", data=one_click).status_code == 200
    assert stored(db, sid).status == "unsubscribed"


def test_wrong_action_and_unknown_subscriber_tokens(client, settings, db, sid) -> None:
    unsubscribe_token = path_of(links(settings).unsubscribe(sid)).rsplit("/", 1)[1]
    assert client.get(f"/preferences/{unsubscribe_token}").status_code == 400
    assert client.get(path_of(links(settings).unsubscribe(4242))).status_code == 404
    assert (
        client.post(
            path_of(links(settings).unsubscribe(4242)), data={"List-Unsubscribe": "One-Click"}
        ).status_code
        == 404
    )


def test_saving_redirects_to_the_page_and_reloading_it_saves_nothing_again(client, settings, db, sid) -> None:
    url = path_of(links(settings).preferences(sid))
    answer = client.post(url, data=prefs_form(client.get(url).text, keywords="graphs"))
    assert answer.status_code == 303 and answer.headers["location"] == f"{url}?saved=preferences"
    before = snapshot(db)
    for _ in range(2):
        assert "Your preferences are saved." in client.get(answer.headers["location"]).text
    assert snapshot(db) == before


def test_every_bad_preference_is_shown_at_once(client, settings, db, sid) -> None:
    url = path_of(links(settings).preferences(sid))
    bad = {
        "keywords": "",
        "send_time": "24:00",
        "timezone": "Nowhere/Land",
        "weekdays": [],
        "cadence": "hourly",
    }
    before = snapshot(db)
    answer = client.post(url, data=prefs_form(client.get(url).text, **bad))
    assert answer.status_code == 422
    for field in bad:
        assert f'id="{field}-error"' in answer.text, field
    assert snapshot(db) == before


def test_pause_resume_delete_and_unsubscribe_answer_with_redirects(client, settings, db, sid) -> None:
    url = path_of(links(settings).preferences(sid))
    token = csrf_token(client.get(url).text)
    assert (
        client.post(url + "/pause", data={"csrf_token": token}).headers["location"] == f"{url}?saved=paused"
    )
    again = client.post(url + "/pause", data={"csrf_token": token})
    assert again.headers["location"] == f"{url}?saved=unchanged"
    assert "Nothing changed: this subscription is paused." in client.get(again.headers["location"]).text
    unsubscribe = path_of(links(settings).unsubscribe(sid))
    gone = client.post(unsubscribe, data={"csrf_token": token})
    assert gone.status_code == 303 and gone.headers["location"] == f"{unsubscribe}?done=1"
    deleted = client.post(url + "/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/deleted"
    assert "Your data is deleted" in client.get("/deleted").text


# --- the library and the archive from the preferences page -----------------------------------------------


def test_preferences_link_the_archive_ratings_and_feed_and_offer_a_library_upload(client, settings, db, sid):
    url = path_of(links(settings).preferences(sid))  # one token: a second one made a second later differs
    page = client.get(url).text
    assert (
        "/archive/" in page and "/ratings" in page and 'id="feed-url" value="http://digest.test/feed/' in page
    )
    assert f'action="/preferences/{url.rsplit("/", 1)[1]}/library"' in page
    assert "No library yet" in page


def test_a_library_uploaded_from_the_preferences_is_imported_and_counted(client, settings, db, sid):
    ids = add_topic_papers(db, per_topic=4)
    url = path_of(links(settings).preferences(sid))
    token = csrf_token(client.get(url).text)
    answer = client.post(
        url + "/library",
        data={"csrf_token": token},
        files={"library": ("zotero.bib", speech_library(matched=2, texts=3).encode())},
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"{url}?saved=library&aside=0"
    shown = html.unescape(client.get(answer.headers["location"]).text)
    assert "Your library is imported" in shown and "2 papers of your library are among ours" in shown
    assert "3 others shape your picks" in shown
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 2
        assert load_profile(session, session.get(Subscriber, sid)).library == ids["speech"][:2]
    ids_only = client.post(
        url + "/library",
        data={"csrf_token": token},
        files={"library": ("ids.txt", b"2501.10000\n2412.99999\n")},
    )
    assert ids_only.headers["location"].endswith("aside=1")
    assert "1 entry (ids of papers we do not have" in html.unescape(
        client.get(ids_only.headers["location"]).text
    )


def test_a_bad_upload_or_none_stores_nothing_and_says_why(client, settings, db, sid):
    url = path_of(links(settings).preferences(sid))
    token = csrf_token(client.get(url).text)
    before = snapshot(db)
    bad = client.post(
        url + "/library", data={"csrf_token": token}, files={"library": ("x.txt", b"not an id\n")}
    )
    assert (
        bad.status_code == 422 and "line 1: &#39;not an id&#39; is neither an arXiv id nor a DOI" in bad.text
    )
    none = client.post(url + "/library", data={"csrf_token": token})
    assert none.status_code == 422 and "choose a file first" in none.text
    no_csrf = client.post(url + "/library", files={"library": ("x.txt", b"2501.10000\n")})
    assert no_csrf.status_code == 403
    assert snapshot(db) == before


def test_with_a_library_the_keywords_may_be_emptied(client, settings, db, sid):
    add_topic_papers(db, per_topic=4)
    url = path_of(links(settings).preferences(sid))
    page = client.get(url).text
    refused = client.post(url, data=prefs_form(page, keywords=""))
    assert refused.status_code == 422 and "give at least one keyword" in refused.text
    client.post(
        url + "/library", data={"csrf_token": csrf_token(page)}, files={"library": ("l.txt", b"2501.10000\n")}
    )
    saved = client.post(url, data=prefs_form(client.get(url).text, keywords=""))
    assert saved.status_code == 303 and stored(db, sid).keywords == []
