"""Shared by the library tests: stored papers on four topics, and a BibTeX library of speech papers."""

from __future__ import annotations

import itertools

from digest.db import Database
from digest.models import Paper

TOPICS = {
    "speech": (
        "speech synthesis",
        "text to speech",
        "vocoder",
        "prosody",
        "speaker voices",
        "audio waveforms",
    ),
    "robots": (
        "legged robots",
        "robot grasping",
        "locomotion policies",
        "manipulation",
        "robot arms",
        "terrain",
    ),
    "search": (
        "dense retrieval",
        "query expansion",
        "rerankers",
        "passage search",
        "web search",
        "relevance",
    ),
    "crypto": (
        "lattice signatures",
        "side-channel attacks",
        "encryption keys",
        "zero knowledge",
        "hash",
        "protocols",
    ),
}


GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
)
NAMES = (
    "tau upsilon phi chi psi omega aurora borealis cedar dune ember fjord glacier harbor island jade".split()
)


def topic_paper(topic: str, n: int) -> tuple[str, str]:
    """A title and an abstract on ``topic``; each ``n`` (up to 300) has its own three phrases of the topic
    and its own two method names, so no two papers are near-copies."""
    first, second, third = list(itertools.combinations(TOPICS[topic], 3))[n % 20]
    shift = 5 * list(TOPICS).index(topic)  # no two topics' papers share a method name
    name = f"{GREEK[(n + shift) % len(GREEK)]} {NAMES[(n // len(GREEK) + shift) % len(NAMES)]}"
    title = f"{first.capitalize()} and {second}: the {name} method"
    text = (
        f"We study {first} together with {second}. The {name} method for {third} improves on prior {first} "
        f"work, and experiments on {second} benchmarks show that {third} matters for {first}."
    )
    return title, text


def add_topic_papers(db: Database, per_topic: int = 10) -> dict[str, list[int]]:
    """``per_topic`` stored papers on each topic (arXiv ids 2501.<topic><n>), by topic."""
    ids: dict[str, list[int]] = {}
    with db.session() as session:
        for t, topic in enumerate(TOPICS):
            for n in range(per_topic):
                title, text = topic_paper(topic, n)
                arxiv = f"2501.{t + 1}{n:04d}"
                paper = Paper(
                    key=f"arxiv:{arxiv}", arxiv_id=arxiv, title_key=f"{topic}{n}", title=title, abstract=text
                )
                if n == 1:
                    paper.doi = f"10.1000/{topic}.{n}"
                session.add(paper)
                session.flush()
                ids.setdefault(topic, []).append(paper.id)
    return ids


def speech_library(matched: int = 8, texts: int = 12) -> str:
    """A BibTeX library of ``matched`` stored speech papers (by arXiv id, one by DOI) and ``texts`` speech
    papers that are not stored (title and abstract)."""
    entries = []
    for n in range(matched):
        if n == 1:
            fields = f"title = {{Some other title}},\n  doi = {{10.1000/speech.{n}}}"
            entries.append(f"@inproceedings{{stored{n},\n  {fields}\n}}")
        else:
            fields = f"title = {{A title}},\n  eprint = {{2501.1{n:04d}}},\n  archivePrefix = {{arXiv}}"
            entries.append(f"@article{{stored{n},\n  {fields}\n}}")
    for n in range(texts):
        title, text = topic_paper("speech", 100 + n)
        entries.append(f"@article{{own{n},\n  title = {{{title}}},\n  abstract = {{{text}}}\n}}")
    return "\n\n".join(entries) + "\n"
