from __future__ import annotations

import pytest
from rank_papers import PAPERS
from sqlalchemy import select

from digest.db import Database
from digest.models import Feedback, Paper, Subscriber, SubscriberModel
from digest.rank import library_for, load_profile, record_feedback, record_library
from digest.rank.model import LikedText, Profile
from digest.rank.weights import Weights


def _seed(session) -> tuple[Subscriber, list[int]]:  # type: ignore[no-untyped-def]
    papers = [
        Paper(key=f"title:{i}", title_key=f"t{i}", title=t, abstract=a) for i, (t, a) in enumerate(PAPERS)
    ]
    subscriber = Subscriber(channel="email", email="reader@example.org", keywords=["robot"])
    session.add_all([*papers, subscriber])
    session.flush()
    return subscriber, [p.id for p in papers]


def test_feedback_is_stored_and_the_model_updated_at_once(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        feedback = record_feedback(session, subscriber, ids[9], -1, "web")
        assert (feedback.value, feedback.source, feedback.paper_id) == (-1, "web", ids[9])
        stored = session.get(SubscriberModel, subscriber.id)
        assert Profile.from_state(stored.state).labels == {ids[9]: -1}
        record_feedback(session, subscriber, ids[9], 1, "slack")
        assert session.get(SubscriberModel, subscriber.id).version == 2
    with db.session() as session:
        rows = session.scalars(select(Feedback).order_by(Feedback.id)).all()
        assert [(r.value, r.source) for r in rows] == [(-1, "web"), (1, "slack")]


def test_feedback_leaves_the_model_ready_to_score(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[7], 1, "web")
        corpus = library_for(session)
        profile = load_profile(session, subscriber)
        assert profile._parts is not None and profile._rated is not None  # derived by the click itself
        assert not profile._rated.stale(corpus) and not profile._changed
        parts = profile.parts(corpus)
        assert list(parts.liked_ids) == [ids[7]]
        stored = session.get(SubscriberModel, subscriber.id)
        assert stored.weights_version == stored.version  # the weights a digest reads, stored with the vote
        assert Weights.from_bytes(stored.weights).liked == (ids[7],)
        record_feedback(session, subscriber, ids[8], 1, "web", update=False)
        stored = load_profile(session, subscriber)
        assert stored.labels == {ids[7]: 1, ids[8]: 1} and stored._changed == [ids[8]]
        model = session.get(SubscriberModel, subscriber.id)
        assert model.weights_version != model.version  # stale: the next digest derives them again


def test_bad_feedback_is_refused_and_nothing_is_stored(db: Database) -> None:
    with db.session() as session:
        subscriber, ids = _seed(session)
        with pytest.raises(ValueError, match="value"):
            record_feedback(session, subscriber, ids[0], 0, "web")
        with pytest.raises(LookupError, match="paper_id"):
            record_feedback(session, subscriber, 10_000, 1, "web")
        assert session.scalars(select(Feedback)).all() == []
        assert session.get(SubscriberModel, subscriber.id) is None


def test_a_library_rates_its_unrated_papers_up_keeps_its_texts_and_stores_ready_weights(db: Database) -> None:
    text = LikedText("Quadruped robots that walk", "A legged robot learns locomotion.")
    with db.session() as session:
        subscriber, ids = _seed(session)
        record_feedback(session, subscriber, ids[8], -1, "web")
        rated = record_library(session, subscriber, [ids[7], ids[8], ids[7]], [text])
        assert rated == [ids[7]]  # the 👎 on ids[8] is the subscriber's word: it stays
        stored = session.get(SubscriberModel, subscriber.id)
        profile = Profile.from_state(stored.state)
        assert profile.labels == {ids[8]: -1, ids[7]: 1} and profile.texts == [text]
        assert profile.library == [ids[7], ids[8]]
        weights = Weights.from_bytes(stored.weights)
        assert stored.weights_version == stored.version and weights.liked == ("library:0", ids[7])
        sources = session.execute(select(Feedback.paper_id, Feedback.source).order_by(Feedback.id)).all()
        assert sources == [(ids[8], "web"), (ids[7], "library")]
