"""The feedback use-cases: a subscriber's 👍/👎 stored and their model brought up to date at once; the same
for a library they import (its stored papers 👍, its other entries liked texts)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from digest.models import Feedback, FeedbackSource, Paper, Subscriber, SubscriberModel
from digest.rank.cache import profile_from, save_profile_to
from digest.rank.library import library_for
from digest.rank.model import LikedText
from digest.rank.weights import Weights


def record_feedback(
    session: Session, subscriber: Subscriber, paper_id: int, value: int, source: str, *, update: bool = True
) -> Feedback:
    """Store one 👍 (+1) / 👎 (-1) event and update the subscriber's model in the same transaction.

    With ``update`` (the default) the model is also brought up to date under the current corpus before
    returning and its weights stored, so the next digest scores with them at once: the click's row is
    appended to the profile's rated rows and the classifier refitted (``Profile.parts``), not re-derived
    from scratch. ``update=False`` only stores the event and the ratings; the weights are then derived
    where they are next used (``digest.rank.cache.weights_for``).
    """
    if value not in (1, -1):
        raise ValueError(f"value: must be +1 or -1, got {value!r}")
    if session.get(Paper, paper_id) is None:
        raise LookupError(f"paper_id: no paper with id {paper_id}")
    stored = session.get(SubscriberModel, subscriber.id)  # looked up once, for reading and for saving
    profile = profile_from(session, subscriber, stored).copy()
    feedback = Feedback(subscriber_id=subscriber.id, paper_id=paper_id, value=value, source=source)
    session.add(feedback)
    profile.rate(paper_id, value)
    weights = None
    if update:
        view = library_for(session)
        weights = (Weights.of(profile.parts(view), profile.keywords), len(view))
    save_profile_to(session, subscriber, profile, stored, weights)
    session.flush()
    return feedback


def record_library(
    session: Session, subscriber: Subscriber, paper_ids: Sequence[int], texts: Sequence[LikedText]
) -> list[int]:
    """Import a library: each stored paper of it not rated yet becomes a 👍 (a ``library`` feedback event;
    a paper already rated keeps its rating), its other entries the model's liked texts (replacing those of
    an earlier library); the model is derived at once, so the next digest ranks by it. Returns the ids of
    the papers newly rated."""
    stored = session.get(SubscriberModel, subscriber.id)
    profile = profile_from(session, subscriber, stored).copy()
    rated = [paper for paper in dict.fromkeys(paper_ids) if paper not in profile.labels]
    for paper in rated:
        vote = Feedback(subscriber_id=subscriber.id, paper_id=paper, value=1, source=FeedbackSource.LIBRARY)
        session.add(vote)
        profile.rate(paper, 1)
    profile.set_library([*profile.library, *paper_ids], texts)
    view = library_for(session)
    weights = (Weights.of(profile.parts(view), profile.keywords), len(view))
    save_profile_to(session, subscriber, profile, stored, weights)
    session.flush()
    return rated
