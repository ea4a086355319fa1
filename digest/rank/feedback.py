"""The feedback use-case: a subscriber's 👍/👎 stored and their model brought up to date at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest.models import Feedback, Paper, Subscriber, SubscriberModel
from digest.rank.cache import cached_corpus, corpus_for, profile_from, save_profile_to


def record_feedback(
    session: Session, subscriber: Subscriber, paper_id: int, value: int, source: str, *, update: bool = True
) -> Feedback:
    """Store one 👍 (+1) / 👎 (-1) event and update the subscriber's model in the same transaction.

    With ``update`` (the default) the model is also brought up to date under the current corpus before
    returning, so the next digest scores with it at once: the click's row is appended to the profile's
    rated rows and the classifier refitted (``Profile.parts``), not re-derived from scratch.
    ``update=False`` only stores the event and the ratings; the model is then updated when first used.
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
    if update:
        # The process' corpus will do if it holds the paper: a newer one is noticed (and the model derived
        # again) by the next ``pick_digest``, and this saves the papers-table query on every click.
        corpus = cached_corpus(session)
        profile.parts(corpus if corpus is not None and paper_id in corpus.index else corpus_for(session))
    save_profile_to(session, subscriber, profile, stored)
    session.flush()
    return feedback
