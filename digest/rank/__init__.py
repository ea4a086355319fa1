"""Ranking: the corpus representation, the subscriber model, picking a digest, learning from feedback.

Public API (the contract with the other rooms):
``pick_digest(session, settings, subscriber, *, now=None, k=None) -> list[Pick]`` and
``record_feedback(session, subscriber, paper_id, value, source) -> Feedback``.
"""

from digest.rank.corpus import Corpus
from digest.rank.model import Profile
from digest.rank.pick import Pick, pick_digest
from digest.rank.store import corpus_for, load_profile, record_feedback

__all__ = ["Corpus", "Pick", "Profile", "corpus_for", "load_profile", "pick_digest", "record_feedback"]
