"""The 👍/👎 pages: a GET shows, only the page's POST votes, and every bad link is refused clearly."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from sqlalchemy import func, select
from web_support import add_paper, add_subscriber, client_for, csrf_token, links, path_of, snapshot

from digest.models import Feedback, Subscriber, SubscriberModel
from digest.rank import load_profile
from digest.signing import FEEDBACK_ACTIONS, Signer


@pytest.fixture
def client(settings, db):
    return client_for(settings, db)


@pytest.fixture
def ids(settings, db):
    return add_subscriber(db, settings), add_paper(db)


def votes(db) -> list[tuple[int, int, int, str]]:
    with db.session() as session:
        query = select(Feedback.subscriber_id, Feedback.paper_id, Feedback.value, Feedback.source)
        return [tuple(row) for row in session.execute(query.order_by(Feedback.id))]


def test_get_on_feedback_link_shows_the_paper_and_changes_nothing(client, settings, db, ids) -> None:
    before = snapshot(db)
    page = client.get(path_of(links(settings).feedback(*ids, "up")))
    assert page.status_code == 200
    assert "Paper 1: diffusion models for &lt;b&gt;robots&lt;/b&gt;" in page.text  # escaped, not markup
    assert "Ada Lovelace, Alan Turing" in page.text and "Abstract of paper 1." in page.text
    assert "You have not rated this paper yet" in page.text
    assert 'method="post"' in page.text and "<script" not in page.text
    assert snapshot(db) == before


def test_post_from_the_feedback_page_adds_one_vote_and_updates_the_model(client, settings, db, ids) -> None:
    url = path_of(links(settings).feedback(*ids, "up"))
    token = csrf_token(client.get(url).text)
    answer = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert answer.status_code == 200
    assert "your vote is recorded" in answer.text and "Your vote: <strong>👍" in answer.text
    assert votes(db) == [(ids[0], ids[1], 1, "web")]
    with db.session() as session:
        assert session.get(SubscriberModel, ids[0]) is not None


def test_subscriber_can_change_the_vote_and_the_page_shows_the_latest(client, settings, db, ids) -> None:
    up, down = (path_of(links(settings).feedback(*ids, v)) for v in ("up", "down"))
    token = csrf_token(client.get(up).text)
    client.post(up, data={"csrf_token": token})
    changed = client.post(down, data={"csrf_token": token}, follow_redirects=True)
    assert "Your vote: <strong>👎" in changed.text
    assert [v[2] for v in votes(db)] == [1, -1]
    assert "Your vote: <strong>👎" in client.get(up).text


def test_feedback_page_buttons_post_to_the_up_and_down_links_of_this_paper(client, settings, db, ids) -> None:
    page = client.get(path_of(links(settings).feedback(*ids, "down"))).text
    actions = re.findall(r'<form method="post" action="/feedback/([^"]+)"', page)
    signer = Signer(settings.secret, settings.token_max_age_days)
    loaded = [signer.loads(action, FEEDBACK_ACTIONS) for action in actions]
    tokens = sorted((t.action, t.subscriber_id, t.paper_id) for t in loaded)
    assert tokens == [("down", *ids), ("up", *ids)]


def test_vote_without_csrf_token_is_refused_and_stores_nothing(client, settings, db, ids) -> None:
    url = path_of(links(settings).feedback(*ids, "up"))
    client.get(url)  # has the cookie, but posts no token (a forged cross-site form)
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf_token": "forged.value"}).status_code == 403
    assert votes(db) == []


def test_vote_with_another_browsers_token_is_refused(settings, db, ids) -> None:
    url = path_of(links(settings).feedback(*ids, "up"))
    alice, mallory = client_for(settings, db), client_for(settings, db)
    mallorys_token = csrf_token(mallory.get(url).text)
    alice.get(url)
    assert alice.post(url, data={"csrf_token": mallorys_token}).status_code == 403
    assert votes(db) == []


def test_tampered_token_is_refused_with_a_clear_page(client, settings, db, ids) -> None:
    url = path_of(links(settings).feedback(*ids, "up"))
    tampered = url[:-3] + ("xyz" if not url.endswith("xyz") else "abc")
    for answer in (client.get(tampered), client.post(tampered, data={"csrf_token": "x"})):
        assert answer.status_code == 400
        assert "changed or cut short" in answer.text and "Traceback" not in answer.text
    assert votes(db) == []


def test_expired_token_is_refused(client, settings, db, ids) -> None:
    signer = Signer(settings.secret, settings.token_max_age_days)
    with time_machine.travel("2020-01-01 00:00:00+00:00"):
        old = signer.dumps("up", *ids)
    answer = client.get(f"/feedback/{old}")
    assert answer.status_code == 400 and "expired" in answer.text
    assert client.post(f"/feedback/{old}", data={}).status_code == 400
    assert votes(db) == []


def test_wrong_action_token_is_refused(client, settings, db, ids) -> None:
    preferences_token = path_of(links(settings).preferences(ids[0])).rsplit("/", 1)[1]
    answer = client.post(f"/feedback/{preferences_token}", data={})
    assert answer.status_code == 400 and "preferences" in answer.text
    assert votes(db) == []


def test_unknown_paper_or_subscriber_is_404(client, settings, db, ids) -> None:
    assert client.get(path_of(links(settings).feedback(ids[0], 9999, "up"))).status_code == 404
    assert client.get(path_of(links(settings).feedback(9999, ids[1], "up"))).status_code == 404
    url = path_of(links(settings).feedback(ids[0], 9999, "up"))
    token = csrf_token(client.get("/").text)
    assert client.post(url, data={"csrf_token": token}).status_code == 404
    assert votes(db) == []


def test_each_post_records_one_vote(client, settings, db, ids) -> None:
    url = path_of(links(settings).feedback(*ids, "down"))
    token = csrf_token(client.get(url).text)
    for _ in range(3):
        client.post(url, data={"csrf_token": token})
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 3


def test_paper_page_shows_the_abstract_and_404s_unknown_ids(client, db) -> None:
    paper_id = add_paper(db, 7, abstract="A long abstract about robots.")
    page = client.get(f"/papers/{paper_id}")
    assert page.status_code == 200 and "A long abstract about robots." in page.text
    assert "https://huggingface.co/papers/2501.00007" in page.text
    assert client.get("/papers/424242").status_code == 404
    assert client.get("/papers/not-a-number").status_code == 422
    assert client.get(f"/papers/{2**70}").status_code == 422


def _model_labels(db, subscriber_id: int) -> dict[int, int]:
    with db.session() as session:
        profile = load_profile(session, session.get(Subscriber, subscriber_id))
        return dict(profile.labels)


def _concurrent_votes(settings, database, subscriber_id: int, paper_ids: list[int]) -> list[int]:
    """One browser per paper, all voting at once (each client runs its own event loop thread)."""
    barrier = threading.Barrier(len(paper_ids))

    def vote(paper_id: int) -> int:
        client = client_for(settings, database)
        url = path_of(links(settings).feedback(subscriber_id, paper_id, "up"))
        token = csrf_token(client.get(url).text)
        barrier.wait()
        return client.post(url, data={"csrf_token": token}, follow_redirects=True).status_code

    with ThreadPoolExecutor(len(paper_ids)) as pool:
        return list(pool.map(vote, paper_ids))


def test_concurrent_votes_are_all_stored_and_all_reach_the_model(settings, db) -> None:
    sid = add_subscriber(db, settings)
    papers = [add_paper(db, n) for n in range(1, 9)]
    assert _concurrent_votes(settings, db, sid, papers) == [200] * len(papers)
    assert sorted(v[1] for v in votes(db)) == papers
    assert _model_labels(db, sid) == {paper: 1 for paper in papers}  # no update lost to a race


@pytest.mark.postgres
def test_concurrent_votes_on_postgres_lock_the_subscriber_and_lose_nothing(pg_db) -> None:
    settings = pg_db.settings
    sid = add_subscriber(pg_db, settings)
    papers = [add_paper(pg_db, n) for n in range(1, 9)]
    assert _concurrent_votes(settings, pg_db, sid, papers) == [200] * len(papers)
    assert sorted(v[1] for v in votes(pg_db)) == papers
    assert _model_labels(pg_db, sid) == {paper: 1 for paper in papers}


def test_vote_waits_for_another_process_holding_the_sqlite_write_lock(client, settings, db, ids) -> None:
    url = path_of(links(settings).feedback(*ids, "up"))
    token = csrf_token(client.get(url).text)
    other = sqlite3.connect(
        str(settings.data_dir / "digest.sqlite3"), isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")  # e.g. `digest ingest` in the middle of a file
    releaser = threading.Timer(0.3, other.execute, ["COMMIT"])
    releaser.start()
    started = time.monotonic()
    answer = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    releaser.join()
    other.close()
    assert answer.status_code == 200 and time.monotonic() - started >= 0.25
    assert votes(db) == [(ids[0], ids[1], 1, "web")]


def test_pages_answer_while_a_vote_waits_for_the_sqlite_write_lock(settings, db, ids) -> None:
    voter, reader = client_for(settings, db), client_for(settings, db)
    url = path_of(links(settings).feedback(*ids, "up"))
    token = csrf_token(voter.get(url).text)
    other = sqlite3.connect(
        str(settings.data_dir / "digest.sqlite3"), isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(voter.post, url, data={"csrf_token": token}, follow_redirects=True)
        time.sleep(0.2)
        assert reader.get(url).status_code == 200 and not pending.done()
        other.execute("COMMIT")
        assert pending.result(timeout=30).status_code == 200
    other.close()
    assert len(votes(db)) == 1
