"""A second evaluation split made from the dev files alone, to judge every setting chosen on them twice.

* CiteULike: another cold split of the same library data. A fifth of the papers users already had (chosen by
  a hash of the id, never by who had them) become the new papers; each user keeps the rest of their library
  as 👍 and must find the papers taken out of it. Only ``liked`` is read, never ``relevant``.
* Replay: the same eight categories reached through other keyword phrasings (a table below, written the way a
  subscriber might type them), and every two-category union with both official names as keywords. The
  categories' papers come from the eight users' ``relevant`` lists, as the brief for this split allows.

    python -m benchmarks.second_split [--shared ../shared] [--out benchmarks/results/second_split]

writes ``citeulike_cold/{papers,cases}.jsonl.gz`` and ``arxiv_replay/users.jsonl.gz`` under ``--out``
(the replay papers are the shared file's), then prints the two ``digest eval`` command lines.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

HELD_SHARE = 5  # one paper in HELD_SHARE of the users' libraries becomes a new paper
OTHER_PHRASINGS = {
    "cs.RO": "autonomous robots",
    "cs.GR": "3D rendering and geometry",
    "cs.HC": "user interfaces and user studies",
    "cs.IR": "search engines and recommender systems",
    "cs.CR": "computer security and privacy",
    "cs.SD": "audio and speech",
    "cs.SE": "software development and testing",
    "cs.MA": "multi-agent coordination",
}


def read(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def held(paper_id: str) -> bool:
    """Whether a library paper becomes a new paper: a fixed hash of its id, nothing about its users."""
    return int(hashlib.sha256(paper_id.encode()).hexdigest(), 16) % HELD_SHARE == 0


def citeulike(papers: list[dict[str, Any]], cases: list[dict[str, Any]]) -> tuple[list, list]:
    """Papers (the held library papers are the candidates, every other paper is history) and cases."""
    had = {paper for case in cases for paper in case["liked"]}
    new = {paper for paper in had if held(paper)}
    out_papers = [p | {"split": "candidate" if p["id"] in new else "history"} for p in papers]
    out_cases = []
    for case in cases:
        kept = [p for p in case["liked"] if p not in new]
        taken = [p for p in case["liked"] if p in new]
        if kept and taken:
            out_cases.append(
                {"user": case["user"], "keywords": [], "liked": kept, "disliked": [], "relevant": taken}
            )
    return out_papers, out_cases


def replay(users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each category under another phrasing, and every union of two categories."""
    out = [
        {"user": f"{u['user']}~", "keywords": [OTHER_PHRASINGS[u["user"]]], "relevant": u["relevant"]}
        for u in users
    ]
    for a, b in itertools.combinations(users, 2):
        relevant = sorted(set(a["relevant"]) | set(b["relevant"]))
        out.append(
            {
                "user": f"{a['user']}+{b['user']}",
                "keywords": a["keywords"] + b["keywords"],
                "relevant": relevant,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/second_split"))
    args = parser.parse_args()
    source = args.shared / "eval"
    papers, cases = citeulike(
        read(source / "citeulike_cold/papers.jsonl.gz"), read(source / "citeulike_cold/cases.jsonl.gz")
    )
    write(args.out / "citeulike_cold/papers.jsonl.gz", papers)
    write(args.out / "citeulike_cold/cases.jsonl.gz", cases)
    write(args.out / "arxiv_replay/users.jsonl.gz", replay(read(source / "arxiv_replay/users.jsonl.gz")))
    candidates = sum(p["split"] == "candidate" for p in papers)
    print(f"citeulike: {len(cases)} users, {candidates} new papers; replay: {8 + 28} users")
    print(
        f"digest eval rank --papers {args.out}/citeulike_cold/papers.jsonl.gz "
        f"--cases {args.out}/citeulike_cold/cases.jsonl.gz --out rank2.jsonl"
    )
    print(
        f"digest eval replay --papers {source}/arxiv_replay/papers.jsonl.gz "
        f"--users {args.out}/arxiv_replay/users.jsonl.gz --out replay2.jsonl"
    )


if __name__ == "__main__":
    main()
