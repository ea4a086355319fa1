"""A small hand-written corpus shared by the rank tests (titles and abstracts on four topics)."""

from __future__ import annotations

import pytest

from digest.rank import corpus as corpus_module
from digest.rank import expansion

PAPERS = [
    (
        "Neural speech synthesis with diffusion",
        "We present a diffusion model for text to speech synthesis that produces natural audio waveforms.",
    ),
    (
        "Music source separation from raw audio",
        "A network separates vocals, drums and bass from raw audio recordings of music.",
    ),
    (
        "Speaker verification under noisy audio",
        "Speaker embeddings for verification remain robust when the audio is recorded in noisy rooms.",
    ),
    (
        "Sound event detection with weak labels",
        "We detect sound events in audio clips using weakly labelled training data.",
    ),
    (
        "Dense passage retrieval for open-domain questions",
        "Dense retrieval encodes queries and passages so search over a corpus returns relevant passages.",
    ),
    (
        "Learning to rank documents with transformers",
        "A transformer reranker improves information retrieval of documents for web search queries.",
    ),
    (
        "Query expansion for information retrieval",
        "Pseudo relevance feedback expands the query with terms from top ranked documents in retrieval.",
    ),
    (
        "Legged robot locomotion on rough terrain",
        "A quadruped robot learns locomotion policies that walk over rough terrain.",
    ),
    (
        "Robot grasping from point clouds",
        "A robot arm grasps unknown objects using point cloud observations and a learned grasp planner.",
    ),
    (
        "Lattice-based post-quantum signatures",
        "We propose a lattice signature scheme secure against quantum adversaries for cryptography.",
    ),
    (
        "Side-channel attacks on encryption hardware",
        "Power analysis recovers encryption keys from hardware devices in this security study.",
    ),
    (
        "Image generation with latent diffusion",
        "Latent diffusion models generate high resolution images from text prompts.",
    ),
]

# Titles without abstracts. In a corpus of titles the second borrows "benchmarks" from the first, its
# nearest paper, though its own title does not have the word (``smooth_small_corpora``).
BORROWING_TITLES = [
    "Molecular graphs and property prediction benchmarks",
    "Graph neural networks for molecular property prediction",
    "Robot manipulation from human videos",
    "Grasping unknown objects with robots",
]


def smooth_small_corpora(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short papers borrow from their neighbours even in a corpus of a few papers (by default no feature
    is rare enough below 600), and a keyword is not expanded through the corpus: the keyword alone is
    what pulls papers up."""
    monkeypatch.setattr(corpus_module, "NEIGHBOUR_MAX_SHARE", 1.0)
    monkeypatch.setattr(corpus_module, "NEIGHBOUR_MAX_DF", 3)
    monkeypatch.setattr(expansion, "EXPANSION_DOCS", 0)
