from __future__ import annotations

import datetime as dt
import zlib

from cachetools import LRUCache
from rank_papers import PAPERS

from digest.config import Settings
from digest.db import Database
from digest.models import Feedback, Paper, Subscriber, SubscriberModel
from digest.rank import cache, library_for, load_profile, record_feedback
from digest.rank.cache import save_profile, weights_for
from digest.rank.model import Profile
from digest.rank.weights import Weights


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
        before = weights_for(library_for(session), [subscriber])[subscriber.id]
        subscriber_id = subscriber.id
    db.dispose()
    reopened = Database(settings)
    with reopened.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        profile = load_profile(session, subscriber)
        assert profile.labels == {ids[7]: 1} and profile.keywords == ["robot"]
        after = weights_for(library_for(session), [subscriber])[subscriber_id]
        assert (after.columns == before.columns).all() and (after.values == before.values).all()
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


def test_a_digest_reads_the_stored_weights_and_derives_them_again_only_when_stale(
    db: Database, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[7], 1, "web")
        derived: list[int] = []
        original = cache._derive

        def counted(view, subscriber, model):  # type: ignore[no-untyped-def]
            derived.append(subscriber.id)
            return original(view, subscriber, model)

        monkeypatch.setattr(cache, "_derive", counted)
        weights_for(library_for(session), [subscriber])
        assert derived == []  # stored by the vote itself
        record_feedback(session, subscriber, ids[8], -1, "web", update=False)
        weights_for(library_for(session), [subscriber])
        assert len(derived) == 1  # the vote was only stored: derived once, then stored
        weights_for(library_for(session), [subscriber])
        subscriber.keywords = ["cryptography"]
        assert list(weights_for(library_for(session), [subscriber])[subscriber.id].terms) == ["cryptography"]
        assert len(derived) == 2


def test_subscribers_who_rated_nothing_share_one_set_of_weights_per_keyword_list(db: Database) -> None:
    with db.session() as session:
        first, _ = _seed(session)
        same = Subscriber(channel="email", email="same@example.org", keywords=["robot"])
        other = Subscriber(channel="email", email="other@example.org", keywords=["speech"])
        session.add_all([same, other])
        session.flush()
        found = weights_for(library_for(session), [first, same, other])
        assert found[first.id] is found[same.id] and found[other.id] is not found[first.id]


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


def test_weights_stored_without_the_semantic_part_are_derived_again_once_it_is_installed(
    db: Database, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from digest.rank import encoder

    if not encoder.installed():
        return
    with db.session() as session:
        subscriber, ids = _seed(session)
        with monkeypatch.context() as without:
            without.setattr(encoder, "installed", lambda: False)
            without.setitem(encoder._LOADED, "default", None)
            record_feedback(session, subscriber, ids[7], 1, "web")
            assert weights_for(library_for(session), [subscriber])[subscriber.id].model == ""
        cache._PROFILES.clear()  # a restart, with the extra installed
        weights = weights_for(library_for(session), [subscriber])[subscriber.id]
        assert weights.model == encoder.MODEL_ID and weights.semantic.size == encoder.DIMENSION
        stored = session.get(SubscriberModel, subscriber.id)
        assert Weights.from_bytes(bytes(stored.weights)).model == encoder.MODEL_ID  # stored again


def test_weights_stored_by_an_earlier_version_are_derived_again(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[7], 1, "web")
        stored = session.get(SubscriberModel, subscriber.id)
        stored.weights = zlib.compress(len(b'{"format": 1}').to_bytes(4, "little") + b'{"format": 1}')
        assert weights_for(library_for(session), [subscriber])[subscriber.id].liked == (ids[7],)
