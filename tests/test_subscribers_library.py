"""A library imported as a subscriber's cold start: matched papers 👍, the others liked texts."""

from __future__ import annotations

from library_support import add_topic_papers, speech_library, topic_paper
from sqlalchemy import select

from digest.db import Database
from digest.models import Feedback, SubscriberModel
from digest.rank import load_profile, record_feedback
from digest.rank.model import LikedText, Profile
from digest.rank.weights import Weights
from digest.references import Reference, read_library
from digest.subscribers import create_subscriber
from digest.subscribers.library import has_library, import_library, library_summary, match_papers


def references(text: str) -> list[Reference]:
    return read_library(text.encode(), 10**6)


def test_entries_match_stored_papers_by_arxiv_id_doi_or_title(db: Database) -> None:
    ids = add_topic_papers(db, per_topic=4)
    with db.session() as session:
        found = match_papers(
            session,
            [
                Reference("line 1", None, arxiv_id="2501.20002"),
                Reference("line 2", "Wrong title", doi="10.1000/crypto.1"),
                Reference("line 3", "LEGGED ROBOTS and locomotion policies: study 0"),  # not the stored key
                Reference("line 4", "Nothing like it", arxiv_id="2412.99999"),
            ],
        )
    assert found == {0: ids["robots"][2], 1: ids["crypto"][1]}


def test_an_import_rates_the_stored_papers_up_and_keeps_the_others_as_liked_texts(
    db: Database, settings
) -> None:
    ids = add_topic_papers(db)
    library = references(speech_library(matched=8, texts=12) + "\n@misc{bare, doi = {10.9999/not.stored}}\n")
    with db.session() as session:
        subscriber = create_subscriber(session, settings, email="ada@example.org", keywords_required=False)
        report = import_library(session, subscriber, library)
        assert (report.entries, report.matched, report.rated, report.texts) == (21, 8, 8, 12)
        assert report.left_aside == [
            "entry 'bare' (line 108): DOI 10.9999/not.stored is not among the stored papers"
        ]
        votes = session.execute(select(Feedback.paper_id, Feedback.value, Feedback.source)).all()
        assert sorted(votes) == [(pid, 1, "library") for pid in ids["speech"][:8]]
        stored = Profile.from_state(session.get(SubscriberModel, subscriber.id).state)
        assert len(stored.texts) == 12 and stored.texts[0].title == topic_paper("speech", 100)[0]
        assert stored.library == ids["speech"][:8]
        weights = Weights.from_bytes(session.get(SubscriberModel, subscriber.id).weights)
        assert weights.liked[:12] == tuple(f"library:{n}" for n in range(12))  # derived at once, texts first
        assert library_summary(session, subscriber) == {"papers": 8, "texts": 12} and has_library(
            session, subscriber
        )


def test_a_paper_already_rated_keeps_its_rating_and_a_new_library_replaces_the_texts(
    db: Database, settings
) -> None:
    ids = add_topic_papers(db, per_topic=4)
    with db.session() as session:
        subscriber = create_subscriber(session, settings, email="ada@example.org", keywords="speech")
        record_feedback(session, subscriber, ids["speech"][0], -1, "web")
        import_library(session, subscriber, references(speech_library(matched=2, texts=3)))
        second = import_library(session, subscriber, references(speech_library(matched=0, texts=1)))
        assert second.texts == 1
        profile = load_profile(session, subscriber)
        assert profile.labels == {ids["speech"][0]: -1, ids["speech"][1]: 1}  # the 👎 stays a 👎
        assert profile.texts == [LikedText(topic_paper("speech", 100)[0], profile.texts[0].abstract)]
        sources = session.scalars(select(Feedback.source).order_by(Feedback.id)).all()
        assert sources == ["web", "library"]


def test_a_subscriber_without_a_library_has_none(db: Database, settings) -> None:
    with db.session() as session:
        subscriber = create_subscriber(session, settings, email="ada@example.org", keywords="speech")
        assert library_summary(session, subscriber) == {"papers": 0, "texts": 0}
        assert not has_library(session, subscriber)
