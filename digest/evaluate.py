"""``digest eval rank`` and ``digest eval replay``: the production model measured on offline data.

The contract is ``../shared/eval/README.md``. Both protocols run the production classes in memory:
``Corpus`` for the TF-IDF space (the service reads the same rows from the database), ``Profile.rate`` for
every 👍/👎 (the same call ``record_feedback`` makes after storing a click; the model is brought up to date
by ``Profile.parts`` before the next scoring, as ``record_feedback`` does at once), ``Weights`` as a
digest reads them, and a day's ``Window`` with ``score_block`` / ``pick_block`` for scoring and picking,
with the default ``DIGEST_MIN_SCORE`` (0: no floor), exactly as the daily run calls them. ``relevant`` is
read only to compute metrics, and in the replay to play the user's ratings of papers that were shown.

``--library-size N`` starts each replay user from a library instead of keywords: N of their relevant papers
dated in the first week (``LIBRARY_DAYS`` days), chosen by a hash of user and paper id (deterministic, and
not biased to any day). They reach the model as an import would (``digest.subscribers.library``): the
papers already stored when the replay starts (dated the first day) as 👍, the others as liked texts (title
and abstract). A paper of the library is the user's already: it is never shown, and it counts neither as a
hit nor among the day's relevant papers (a day left with none is skipped, like a day that had none). So
the figures compare with those of another start on the same papers only: ``start`` ``keywords`` keeps the
keyword start with the library's papers set aside, ``both`` gives the model the keywords and the library.

With the ``semantic`` extra every paper is embedded once, as the service's embed step does after ingest (in
the replay, a day's papers get their embeddings the day they arrive); the embeddings of a file's papers are
kept in a cache file (``DIGEST_EVAL_CACHE``, by default ``~/.cache/digest``) so a second run does not
embed them again. Without the extra both protocols measure the TF-IDF model alone.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from digest.rank import encoder
from digest.rank.corpus import Corpus, paper_text
from digest.rank.model import LikedText, Profile
from digest.rank.scoring import Request, pick_block, score_block
from digest.rank.weights import Weights
from digest.rank.window import Window, corpus_window

RECALL_CUTS = (20, 50, 100)
LIBRARY_DAYS = 7  # a replay user's library is drawn from the papers of this many first days
STARTS = ("library", "keywords", "both")  # what a replay user's model starts from, given a library
BATCH = 1024  # cases scored at once: bounds the scores held (28 MB at 3,396 papers)


class EvalInputError(ValueError):
    """An evaluation file is unreadable or a row lacks a field; the message names file, line and field."""


# --- reading and writing -------------------------------------------------------------------------------
def _open_text(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def read_jsonl(path: Path, required: dict[str, type]) -> list[dict[str, Any]]:
    """Rows of a (gzipped) JSON Lines file, each checked for the ``required`` fields and their types."""
    rows: list[dict[str, Any]] = []
    try:
        with _open_text(path, "r") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    rows.append(_checked_row(path, number, line, required))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path}: cannot read ({exc})") from None
    return rows


def _checked_row(path: Path, number: int, line: str, required: dict[str, type]) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise EvalInputError(f"{path}:{number}: expected a JSON object")
    for name, kind in required.items():
        if not isinstance(row.get(name), kind):
            raise EvalInputError(f"{path}:{number}: field {name!r} missing or not {kind.__name__}")
    return row


@contextmanager
def _writer(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_text(path, "w") as handle:
        yield handle


def _write(handle: IO[str], row: dict[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")


# --- eval rank ------------------------------------------------------------------------------------------
def eval_rank(papers_path: Path, cases_path: Path, out: Path, k: int = 100) -> dict[str, float]:
    """Rank every candidate paper for every case; write the top ``k``; return mean recall@20/50/100."""
    papers = read_jsonl(papers_path, {"id": str, "title": str})
    cases = read_jsonl(cases_path, {"user": str, "keywords": list, "liked": list, "disliked": list})
    # The candidates are the new papers of a digest: first seen a day after the rest (the background).
    corpus = Corpus(background_age=1)
    candidate_ids = [p["id"] for p in papers if p.get("split") == "candidate"]
    fresh = set(candidate_ids)
    corpus.extend(
        [p["id"] for p in papers], [_text(p) for p in papers], [float(p["id"] in fresh) for p in papers]
    )
    vectors = embeddings([_text(p) for p in papers])
    if vectors is not None:
        corpus.embed([p["id"] for p in papers], vectors)
    window = corpus_window(corpus, candidate_ids)
    recalls: dict[int, list[float]] = {cut: [] for cut in RECALL_CUTS}
    with _writer(out) as handle:
        for start in range(0, len(cases), BATCH):
            batch = cases[start : start + BATCH]
            scores = score_block(window, [_weights(case_profile(c), corpus) for c in batch])
            for case, row in zip(batch, scores, strict=True):
                ranking = [candidate_ids[i] for i in _top_indices(row, k)]
                _write(handle, {"user": case["user"], "ranking": ranking})
                for cut in RECALL_CUTS:
                    recalls[cut].append(_recall(ranking[:cut], case.get("relevant", []), cut))
    return {f"recall@{cut}": _mean(values) for cut, values in recalls.items()} | {"users": len(cases)}


def case_profile(case: dict[str, Any]) -> Profile:
    """The model production would hold after the user typed ``keywords`` and clicked every 👍/👎."""
    profile = Profile(case["keywords"])
    for paper_id in case["liked"]:
        profile.rate(paper_id, 1)
    for paper_id in case["disliked"]:
        profile.rate(paper_id, -1)
    return profile


def _weights(profile: Profile, corpus: Corpus) -> Weights:
    """The weights a digest would read for this model (derived now, as the daily run finds them)."""
    return Weights.of(profile.parts(corpus), profile.keywords)


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    if k < scores.size:
        part = np.argpartition(-scores, k)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


def _recall(ranking: list[str], relevant: list[str], cut: int) -> float:
    if not relevant:
        return 0.0
    return len(set(ranking) & set(relevant)) / min(len(relevant), cut)


# --- eval replay ----------------------------------------------------------------------------------------
@dataclass
class ReplayUser:
    name: str
    profile: Profile
    relevant: set[str]
    shown: set[str] = field(default_factory=set)
    library: set[str] = field(default_factory=set)  # the user's own papers: never shown, never counted
    day_scores: list[tuple[int, float]] = field(default_factory=list)  # (day index, hits / possible)


def eval_replay(
    papers_path: Path,
    users_path: Path,
    out: Path,
    k: int = 10,
    library_size: int = 0,
    start: str = "library",
) -> dict[str, float]:
    """Thirty days of digests: pick ``k`` of each day's papers, learn from the simulated ratings; each user
    starts from their keywords, or with a library of ``library_size`` papers from ``start`` (``STARTS``)."""
    if start not in STARTS:
        raise EvalInputError(f"start: {start!r} is not one of {', '.join(STARTS)}")
    papers = read_jsonl(papers_path, {"id": str, "title": str, "date": str})
    users = read_jsonl(users_path, {"user": str, "keywords": list, "relevant": list})
    days = sorted({p["date"] for p in papers})
    players = [_player(u, papers, days, library_size, start) for u in users]
    corpus = Corpus(background_age=1)  # each day's papers are the candidates; earlier days the background
    vectors = embeddings([_text(p) for p in papers])
    row = {p["id"]: i for i, p in enumerate(papers)}
    with _writer(out) as handle:
        for index, day in enumerate(days):
            todays = [p for p in papers if p["date"] == day]
            corpus.extend([p["id"] for p in todays], [_text(p) for p in todays], float(index))
            if vectors is not None:  # embedded the day they arrive, as after the service's ingest
                corpus.embed([p["id"] for p in todays], vectors[[row[p["id"]] for p in todays]])
            window = corpus_window(corpus, [p["id"] for p in todays])
            for player in players:
                shown = _replay_day(corpus, window, player, k, index)
                _write(handle, {"user": player.name, "date": day, "shown": shown})
    metrics = _replay_metrics(players, len(days), k) | {"users": len(players), "days": len(days)}
    if library_size:
        library = sum(len(p.library) for p in players)
        metrics |= {"library_size": library_size, "library_papers": library, "start": start}
    return metrics


def _player(
    user: dict[str, Any], papers: list[dict[str, Any]], days: list[str], size: int, start: str
) -> ReplayUser:
    relevant = set(user["relevant"])
    if not size:
        return ReplayUser(user["user"], Profile(user["keywords"]), relevant)
    chosen = replay_library(user, papers, days, size)
    profile = Profile(user["keywords"]) if start == "keywords" else library_profile(chosen, days[0])
    if start == "both":
        profile.set_keywords(user["keywords"])
    return ReplayUser(user["user"], profile, relevant, library={p["id"] for p in chosen})


def replay_library(
    user: dict[str, Any], papers: list[dict[str, Any]], days: list[str], size: int
) -> list[dict[str, Any]]:
    """A replay user's library: ``size`` of their relevant papers of the first ``LIBRARY_DAYS`` days, in
    the order of a hash of user and paper id (the same every run, and not biased to any day)."""
    first_week, relevant = set(days[:LIBRARY_DAYS]), set(user["relevant"])
    mine = [p for p in papers if p["id"] in relevant and p["date"] in first_week]
    return sorted(mine, key=lambda p: hashlib.sha256(f"{user['user']}/{p['id']}".encode()).digest())[:size]


def library_profile(library: list[dict[str, Any]], first_day: str) -> Profile:
    """The model an import of ``library`` gives on the first day: the papers stored by then (dated that day)
    rated 👍, the others liked texts; no keywords."""
    profile = Profile()
    stored = [p["id"] for p in library if p["date"] == first_day]
    for paper_id in stored:
        profile.rate(paper_id, 1)
    texts = [LikedText(p["title"], p.get("abstract")) for p in library if p["date"] != first_day]
    profile.set_library(stored, texts)
    return profile


def _replay_day(corpus: Corpus, window: Window, player: ReplayUser, k: int, index: int) -> list[str]:
    allowed = np.array([p not in player.shown and p not in player.library for p in window.ids])
    request = Request(_weights(player.profile, corpus), allowed, k)
    shown = [str(window.ids[i]) for i, _ in pick_block(window, [request], floor=0.0)[0].picks]
    for paper_id in shown:  # the simulated user rates every shown paper, as a real click would
        player.profile.rate(paper_id, 1 if paper_id in player.relevant else -1)
    player.shown.update(shown)
    possible = min(k, sum(p in player.relevant and p not in player.library for p in window.ids))
    if possible:
        player.day_scores.append((index, sum(p in player.relevant for p in shown) / possible))
    return shown


def _replay_metrics(players: list[ReplayUser], n_days: int, k: int) -> dict[str, float]:
    def averaged(keep) -> float:  # type: ignore[no-untyped-def]
        per_user = [[s for day, s in p.day_scores if keep(day)] for p in players]
        return _mean([_mean(scores) for scores in per_user if scores])

    return {
        f"hit@{k}": averaged(lambda day: True),
        f"hit@{k}_first5": averaged(lambda day: day < 5),
        f"hit@{k}_last10": averaged(lambda day: day >= n_days - 10),
    }


# --- embeddings ---------------------------------------------------------------------------------------
def embeddings(texts: list[str]) -> np.ndarray | None:
    """The texts' embeddings (None without the ``semantic`` extra), from the cache file when it has them."""
    model = encoder.encoder()
    if model is None:
        return None
    digest = hashlib.sha256(json.dumps([encoder.MODEL_ID, encoder.MAX_TOKENS, texts]).encode()).hexdigest()
    path = _cache_dir() / f"embeddings-{digest[:32]}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape == (len(texts), encoder.DIMENSION):
            return cached.astype(np.float32)
    vectors = model.encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.astype(np.float16))  # as the service stores them
    return vectors.astype(np.float16).astype(np.float32)


def _cache_dir() -> Path:
    configured = os.environ.get("DIGEST_EVAL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "digest"


def _text(paper: dict[str, Any]) -> str:
    return paper_text(paper["title"], paper.get("abstract"))


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0
