from __future__ import annotations

import datetime as dt

from cachetools import LRUCache
from rank_papers import PAPERS

from digest.config import Settings
from digest.db import Database
from digest.models import Feedback, Paper, Subscriber, SubscriberModel
from digest.rank import cache, corpus_for, load_profile, record_feedback
from digest.rank.cache import cached_corpus, save_profile
from digest.rank.model import Profile


def _seed(session) -> tuple[Subscriber, list[int]]:  # type: ignore[no-untyped-def]
    papers = [
        Paper(key=f"title:{i}", title_key=f"t{i}", title=t, abstract=a) for i, (t, a) in enumerate(PAPERS)
    ]
    subscriber = Subscriber(channel="email", email="reader@example.org", keywords=["robot"])
    session.add_all([*papers, subscriber])
    session.flush()
    return subscriber, [p.id for p in papers]


def test_a_model_written_elsewhere_is_not_served_from_the_cache(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[7], 1, "web")
        subscriber_id = subscriber.id
    with db.session() as session:  # another process, or a rolled-back vote: the stored state differs
        stored = session.get(SubscriberModel, subscriber_id)
        stored.state = Profile(["robot"], {ids[9]: -1}).to_state()
    with db.session() as session:
        assert load_profile(session, session.get(Subscriber, subscriber_id)).labels == {ids[9]: -1}


def test_the_model_survives_a_restart(db: Database, settings: Settings) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[7], 1, "web")
        before = load_profile(session, subscriber).score(corpus_for(session), corpus_for(session).matrix)
        subscriber_id = subscriber.id
    db.dispose()
    reopened = Database(settings)
    with reopened.session() as session:
        profile = load_profile(session, session.get(Subscriber, subscriber_id))
        corpus = corpus_for(session)
        assert profile.labels == {ids[7]: 1} and profile.keywords == ["robot"]
        assert (profile.score(corpus, corpus.matrix) == before).all()
    reopened.dispose()


def test_a_missing_model_is_rebuilt_from_the_feedback_history(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        session.add_all(
            [
                Feedback(
                    subscriber_id=subscriber.id, paper_id=ids[1], value=1, created_at=dt.datetime(2025, 1, 1)
                ),
                Feedback(
                    subscriber_id=subscriber.id, paper_id=ids[1], value=-1, created_at=dt.datetime(2025, 1, 2)
                ),
                Feedback(
                    subscriber_id=subscriber.id, paper_id=ids[2], value=1, created_at=dt.datetime(2025, 1, 3)
                ),
            ]
        )
        session.flush()
        assert load_profile(session, subscriber).labels == {ids[1]: -1, ids[2]: 1}


def test_changed_keywords_reach_the_stored_model(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[0], 1, "web")
        subscriber.keywords = ["cryptography"]
        assert load_profile(session, subscriber).keywords == ["cryptography"]


def test_the_corpus_cache_follows_added_and_deleted_papers(db: Database) -> None:
    with db.session() as session:
        _, ids = _seed(session)
        first = corpus_for(session)
        assert len(first) == len(PAPERS) and corpus_for(session) is first
        session.add(Paper(key="title:x", title_key="x", title="A new paper", abstract=None))
        session.flush()
        assert len(corpus_for(session)) == len(PAPERS) + 1
        session.delete(session.get(Paper, ids[0]))
        session.flush()
        rebuilt = corpus_for(session)
        assert len(rebuilt) == len(PAPERS) and ids[0] not in rebuilt.index


def test_the_process_corpus_is_the_one_corpus_for_built(db: Database) -> None:
    with db.session() as session:
        _seed(session)
        built = corpus_for(session)
        assert cached_corpus(session) is built


def test_a_saved_profile_is_served_from_the_cache_until_its_state_changes(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        profile = Profile(["robot"], {ids[7]: 1})
        save_profile(session, subscriber, profile)
        assert load_profile(session, subscriber) is profile
        session.get(SubscriberModel, subscriber.id).state = Profile(["robot"], {ids[8]: 1}).to_state()
        assert load_profile(session, subscriber).labels == {ids[8]: 1}


def test_the_profile_cache_keeps_the_latest_profiles_only(db: Database, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cache, "_PROFILES", LRUCache(maxsize=2))
    with db.session() as session:
        subscriber, ids = _seed(session)
        others = [Subscriber(channel="email", email=f"{n}@example.org", keywords=["robot"]) for n in "ab"]
        session.add_all(others)
        session.flush()
        first = Profile(["robot"], {ids[7]: 1})
        save_profile(session, subscriber, first)
        for other in others:
            save_profile(session, other, Profile(["robot"]))
        assert load_profile(session, subscriber) is not first  # pushed out by the two later ones
        assert load_profile(session, subscriber).labels == {ids[7]: 1}
