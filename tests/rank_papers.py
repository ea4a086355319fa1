"""A small hand-written corpus shared by the rank tests (titles and abstracts on four topics)."""

from __future__ import annotations

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
