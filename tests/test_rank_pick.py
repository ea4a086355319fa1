from __future__ import annotations

import datetime as dt

import pytest
from rank_papers import BORROWING_TITLES, PAPERS, smooth_small_corpora

from digest.config import Settings, load_settings
from digest.db import Database
from digest.models import Delivery, DeliveryItem, Paper, Subscriber
from digest.rank import LikedText, encoder, pick_digest, record_feedback, record_library
from digest.rank.embeddings import embed_pending
from digest.rank.window import build_window

NOW = dt.datetime(2025, 6, 30, 8, 0)


def _add_papers(session, first_seen: dt.datetime = NOW - dt.timedelta(days=1)) -> list[int]:  # type: ignore[no-untyped-def]
    papers = [
        Paper(key=f"title:{i}", title_key=f"t{i}", title=title, abstract=abstract, first_seen_at=first_seen)
        for i, (title, abstract) in enumerate(PAPERS)
    ]
    session.add_all(papers)
    session.flush()
    return [p.id for p in papers]


def _subscriber(session, **fields) -> Subscriber:  # type: ignore[no-untyped-def]
    subscriber = Subscriber(channel="email", email="reader@example.org", **fields)
    session.add(subscriber)
    session.flush()
    return subscriber


def test_keyword_subscriber_gets_their_topic_first_with_a_reason(db: Database, settings: Settings) -> None:
    with db.session() as session:
        ids = _add_papers(session)
        subscriber = _subscriber(session, keywords=["Information Retrieval"], digest_size=3)
        picks = pick_digest(session, settings, subscriber, now=NOW)
    assert {p.paper.id for p in picks} == {ids[4], ids[5], ids[6]}
    assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)
    assert all(p.why for p in picks)
    assert any("Information Retrieval" in p.why for p in picks)


def test_k_overrides_the_digest_size_and_papers_with_no_shared_term_are_never_picked(
    db: Database, settings: Settings
) -> None:
    with db.session() as session:
        _add_papers(session)
        subscriber = _subscriber(session, keywords=["lattice"])
        picks = pick_digest(session, settings, subscriber, now=NOW, k=12)
    assert 1 <= len(picks) < 12
    assert picks[0].paper.title == "Lattice-based post-quantum signatures"
    assert all(p.score > 0 for p in picks)


def test_papers_first_seen_before_the_recency_window_are_not_candidates(
    db: Database, settings: Settings
) -> None:
    with db.session() as session:
        _add_papers(session, first_seen=NOW - dt.timedelta(days=settings.recency_days + 1))
        subscriber = _subscriber(session, keywords=["audio"])
        assert pick_digest(session, settings, subscriber, now=NOW) == []
        later = NOW - dt.timedelta(days=settings.recency_days + 2)
        assert pick_digest(session, settings, subscriber, now=later)


def test_papers_already_sent_or_rated_are_not_picked_again(db: Database, settings: Settings) -> None:
    with db.session() as session:
        ids = _add_papers(session)
        subscriber = _subscriber(session, keywords=["audio", "speech", "sound"])
        delivery = Delivery(
            subscriber_id=subscriber.id, digest_date=NOW.date(), channel="email", status="sent"
        )
        delivery.items.append(DeliveryItem(subscriber_id=subscriber.id, paper_id=ids[0], position=0))
        session.add(delivery)
        record_feedback(session, subscriber, ids[1], 1, "web")
        picked = {p.paper.id for p in pick_digest(session, settings, subscriber, now=NOW, k=12)}
    assert ids[0] not in picked and ids[1] not in picked
    assert ids[2] in picked and ids[3] in picked


def test_excluded_keywords_are_never_shown(db: Database, settings: Settings) -> None:
    with db.session() as session:
        ids = _add_papers(session)
        subscriber = _subscriber(
            session, keywords=["audio", "diffusion"], excluded_keywords=["MUSIC", "text to speech"]
        )
        picked = {p.paper.id for p in pick_digest(session, settings, subscriber, now=NOW, k=12)}
    assert ids[1] not in picked and ids[0] not in picked
    assert ids[2] in picked and ids[11] in picked


def test_min_score_makes_a_weak_day_send_fewer(db: Database, settings: Settings) -> None:
    strict = load_settings(data_dir=settings.data_dir, secret_key=settings.secret_key, min_score=0.2)
    with db.session() as session:
        _add_papers(session)
        subscriber = _subscriber(session, keywords=["robot"])
        loose = pick_digest(session, settings, subscriber, now=NOW, k=12)
        tight = pick_digest(session, strict, subscriber, now=NOW, k=12)
    assert 0 < len(tight) < len(loose)
    assert all(p.score >= 0.2 for p in tight)


def test_near_copies_are_not_picked_together(db: Database, settings: Settings) -> None:
    with db.session() as session:
        ids = _add_papers(session)
        title, abstract = PAPERS[7]
        session.add(
            Paper(
                key="title:copy",
                title_key="copy",
                title=title + " (v2)",
                abstract=abstract,
                first_seen_at=NOW - dt.timedelta(days=1),
            )
        )
        subscriber = _subscriber(session, keywords=["robot locomotion"])
        picks = pick_digest(session, settings, subscriber, now=NOW, k=5)
    titles = [p.paper.title for p in picks]
    assert sum(t.startswith("Legged robot locomotion") for t in titles) == 1
    assert any(p.paper.id == ids[8] for p in picks)


def test_a_like_changes_the_next_pick_and_explains_it(db: Database, settings: Settings) -> None:
    with db.session() as session:
        ids = _add_papers(session)
        subscriber = _subscriber(session, keywords=[])
        assert pick_digest(session, settings, subscriber, now=NOW) == []
        record_feedback(session, subscriber, ids[7], 1, "web")
        picks = pick_digest(session, settings, subscriber, now=NOW, k=1)
    assert picks[0].paper.id == ids[8]
    assert picks[0].why == "similar to “Legged robot locomotion on rough terrain” you liked"


def test_new_papers_arriving_later_are_ranked_too(db: Database, settings: Settings) -> None:
    with db.session() as session:
        _add_papers(session)
        subscriber = _subscriber(session, keywords=["cryptography"])
        pick_digest(session, settings, subscriber, now=NOW)
        session.add(
            Paper(
                key="title:new",
                title_key="new",
                title="Homomorphic encryption for cryptography",
                abstract="Cryptography lets servers compute on encrypted data.",
                first_seen_at=NOW,
            )
        )
        session.flush()
        picks = pick_digest(session, settings, subscriber, now=NOW, k=1)
    assert picks[0].paper.title == "Homomorphic encryption for cryptography"


@pytest.mark.parametrize("digest_size", [2])
def test_the_subscribers_digest_size_is_the_default_k(
    db: Database, settings: Settings, digest_size: int
) -> None:
    with db.session() as session:
        _add_papers(session)
        subscriber = _subscriber(session, keywords=["audio"], digest_size=digest_size)
        assert len(pick_digest(session, settings, subscriber, now=NOW)) == digest_size


def test_a_title_only_paper_is_never_picked_for_a_word_it_borrowed_from_its_neighbours(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    smooth_small_corpora(monkeypatch)
    with db.session() as session:
        session.add_all(
            Paper(key=f"title:{i}", title_key=f"t{i}", title=t, first_seen_at=NOW - dt.timedelta(days=1))
            for i, t in enumerate(BORROWING_TITLES)
        )
        subscriber = _subscriber(session, keywords=["benchmarks"])
        picks = pick_digest(session, settings, subscriber, now=NOW, k=4)
    assert [p.paper.title for p in picks] == [BORROWING_TITLES[0]]


def test_a_library_of_liked_texts_alone_picks_its_topic_and_names_the_text(
    db: Database, settings: Settings
) -> None:
    text = LikedText("Quadruped robots that walk", "A legged robot learns locomotion over rough terrain.")
    with db.session() as session:
        ids = _add_papers(session)
        subscriber = _subscriber(session, keywords=[], digest_size=2)
        record_library(session, subscriber, [], [text])
        picks = pick_digest(session, settings, subscriber, now=NOW)
    assert picks[0].paper.id == ids[7] and {p.paper.id for p in picks} <= {ids[7], ids[8]}
    assert picks[0].why == "similar to “Quadruped robots that walk” in your library"


# --- the semantic part, once the papers are embedded ----------------------------------------------------
needs_model = pytest.mark.skipif(not encoder.installed(), reason="needs the `semantic` extra")


@needs_model
def test_embedded_papers_close_in_meaning_are_picked_and_explained_as_such(
    db: Database, settings: Settings
) -> None:
    with db.session() as session:
        ids = _add_papers(session)
        subscriber = _subscriber(session, keywords=["Sound"])
    embed_pending(db, encoder.encoder())
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber.id)
        picks = pick_digest(session, settings, subscriber, now=NOW, k=4)
    music = next(p for p in picks if p.paper.id == ids[1])  # music source separation: no word of "Sound"
    assert music.why == "close in meaning to your keyword Sound"


@needs_model
def test_after_a_like_the_liked_paper_is_named_when_it_drove_the_pick(
    db: Database, settings: Settings
) -> None:
    with db.session() as session:
        ids = _add_papers(session)
    embed_pending(db, encoder.encoder())
    with db.session() as session:
        subscriber = _subscriber(session, keywords=["Cryptography"])
        record_feedback(session, subscriber, ids[7], 1, "web")
        picks = pick_digest(session, settings, subscriber, now=NOW, k=3)
    grasping = next(p for p in picks if p.paper.id == ids[8])
    assert grasping.why == "similar to “Legged robot locomotion on rough terrain” you liked"


@needs_model
def test_papers_embedded_after_the_window_was_read_join_it(db: Database, settings: Settings) -> None:
    with db.session() as session:
        _add_papers(session)
        first = build_window(session, NOW - dt.timedelta(days=settings.recency_days))
    embed_pending(db, encoder.encoder())
    with db.session() as session:
        again = build_window(session, NOW - dt.timedelta(days=settings.recency_days))
    assert not first.embedded.any() and again.embedded.all()
