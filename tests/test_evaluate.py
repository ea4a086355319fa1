from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rank_papers import PAPERS

from digest.cli import main
from digest.evaluate import (
    EvalInputError,
    eval_rank,
    eval_replay,
    library_profile,
    read_jsonl,
    replay_library,
)


def _write_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def _read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture
def rank_files(tmp_path: Path) -> tuple[Path, Path]:
    # History: the even papers; candidates: the odd ones. The robot fan liked the locomotion paper,
    # the audio fan liked the speaker paper and disliked a security one.
    papers = [
        {"id": f"p{i}", "title": t, "split": "candidate" if i % 2 else "history"}
        for i, (t, _) in enumerate(PAPERS)
    ]
    cases = [
        {"user": "robots", "keywords": [], "liked": ["p8"], "disliked": [], "relevant": ["p7"]},
        {
            "user": "audio",
            "keywords": ["sound", "audio"],
            "liked": ["p2"],
            "disliked": ["p10"],
            "relevant": ["p1", "p3"],
        },
        {"user": "nobody", "keywords": [], "liked": [], "disliked": [], "relevant": ["p5"]},
    ]
    return _write_gz(tmp_path / "papers.jsonl.gz", papers), _write_gz(tmp_path / "cases.jsonl.gz", cases)


def test_eval_rank_writes_one_ranking_per_case_and_recall(
    rank_files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "rank.jsonl.gz"
    metrics = eval_rank(*rank_files, out, k=3)
    rows = _read(out)
    assert [r["user"] for r in rows] == ["robots", "audio", "nobody"]
    assert all(len(r["ranking"]) == 3 and all(int(p[1:]) % 2 for p in r["ranking"]) for r in rows)
    assert rows[0]["ranking"][0] == "p7"
    assert set(rows[1]["ranking"][:2]) == {"p1", "p3"}
    expected = (1.0 + 1.0 + (1.0 if "p5" in rows[2]["ranking"] else 0.0)) / 3
    assert metrics["recall@20"] == pytest.approx(expected, abs=1e-4)
    assert metrics["users"] == 3


def test_eval_rank_never_ranks_history_papers(rank_files: tuple[Path, Path], tmp_path: Path) -> None:
    eval_rank(*rank_files, tmp_path / "rank.jsonl", k=100)
    for row in _read(tmp_path / "rank.jsonl"):
        assert len(row["ranking"]) == 6 and len(set(row["ranking"])) == 6


@pytest.fixture
def replay_files(tmp_path: Path) -> tuple[Path, Path]:
    days = ["2025-04-02", "2025-04-01", "2025-04-03"]
    papers = [
        {"id": f"a{i}", "title": t, "abstract": a, "date": days[i % 3]} for i, (t, a) in enumerate(PAPERS)
    ]
    users = [
        {"user": "cs.SD", "keywords": ["Sound"], "relevant": ["a0", "a1", "a2", "a3"]},
        {"user": "cs.RO", "keywords": ["Robotics"], "relevant": ["a7", "a8"]},
    ]
    return _write_gz(tmp_path / "papers.jsonl.gz", papers), _write_gz(tmp_path / "users.jsonl.gz", users)


@pytest.mark.usefixtures("without_semantic")
def test_eval_replay_shows_each_days_papers_once_in_date_order(
    replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "replay.jsonl"
    metrics = eval_replay(*replay_files, out, k=2)
    rows = _read(out)
    assert [(r["user"], r["date"]) for r in rows[:2]] == [("cs.SD", "2025-04-01"), ("cs.RO", "2025-04-01")]
    assert [r["date"] for r in rows[::2]] == ["2025-04-01", "2025-04-02", "2025-04-03"]
    by_date = {p["id"]: p["date"] for p in _read(replay_files[0])}
    assert all(by_date[p] == r["date"] and len(r["shown"]) <= 2 for r in rows for p in r["shown"])
    sound_days = {r["date"]: r["shown"] for r in rows if r["user"] == "cs.SD"}
    assert sound_days["2025-04-01"] == []  # nothing that day shares a term with "Sound": nothing shown
    assert set(sound_days["2025-04-02"]) == {"a0", "a3"}
    assert metrics["days"] == 3 and metrics["users"] == 2
    assert set(metrics) >= {"hit@2", "hit@2_first5", "hit@2_last10"}
    assert 0 < metrics["hit@2"] <= 1


def test_eval_replay_with_the_semantic_part_shows_a_paper_close_in_meaning_without_a_shared_word(
    replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    eval_replay(*replay_files, tmp_path / "replay.jsonl", k=2)
    sound_days = {r["date"]: r["shown"] for r in _read(tmp_path / "replay.jsonl") if r["user"] == "cs.SD"}
    assert sound_days["2025-04-01"] == ["a1"]  # "Music source separation from raw audio": no word of "Sound"


def test_eval_embeds_each_file_once_and_reads_the_cache_after(
    replay_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.rank import encoder

    first = eval_replay(*replay_files, tmp_path / "first.jsonl", k=2)
    monkeypatch.setattr(encoder.Encoder, "encode", lambda self, texts: pytest.fail("embedded again"))
    assert eval_replay(*replay_files, tmp_path / "second.jsonl", k=2) == first


def test_eval_commands_print_metrics_as_the_last_json_line(
    rank_files: tuple[Path, Path], replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    rank = runner.invoke(
        main,
        [
            "eval",
            "rank",
            "--papers",
            str(rank_files[0]),
            "--cases",
            str(rank_files[1]),
            "--out",
            str(tmp_path / "r.jsonl"),
            "--k",
            "5",
        ],
    )
    replay = runner.invoke(
        main,
        [
            "eval",
            "replay",
            "--papers",
            str(replay_files[0]),
            "--users",
            str(replay_files[1]),
            "--out",
            str(tmp_path / "p.jsonl"),
        ],
    )
    assert rank.exit_code == 0 and replay.exit_code == 0, rank.output + replay.output
    assert "recall@100" in json.loads(rank.output.strip().splitlines()[-1])
    assert "hit@10_first5" in json.loads(replay.output.strip().splitlines()[-1])


def test_a_bad_row_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"user": "u1", "keywords": [], "liked": [], "disliked": []}\n\n{"user": "u2", "liked": []}\n'
    )
    with pytest.raises(EvalInputError, match=r"cases.jsonl:3: field 'keywords'"):
        read_jsonl(path, {"user": str, "keywords": list, "liked": list})
    result = CliRunner().invoke(
        main,
        ["eval", "rank", "--papers", str(path), "--cases", str(path), "--out", str(tmp_path / "o.jsonl")],
    )
    assert result.exit_code != 0 and "field 'id'" in result.output


def test_a_file_that_is_not_json_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "papers.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "x", "title": "ok"}\nnot json\n'))
    with pytest.raises(EvalInputError, match=r"papers.jsonl.gz:2: not JSON"):
        read_jsonl(path, {"id": str})


# --- a library instead of keywords (--library-size)


def _libraries(replay_files: tuple[Path, Path], size: int) -> dict[str, set[str]]:
    papers, users = _read(replay_files[0]), _read(replay_files[1])
    days = sorted({p["date"] for p in papers})
    return {u["user"]: {p["id"] for p in replay_library(u, papers, days, size)} for u in users}


def test_a_library_start_never_shows_the_librarys_own_papers_and_is_deterministic(
    replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    first = eval_replay(*replay_files, tmp_path / "a.jsonl", k=2, library_size=2)
    again = eval_replay(*replay_files, tmp_path / "b.jsonl", k=2, library_size=2)
    assert first == again and _read(tmp_path / "a.jsonl") == _read(tmp_path / "b.jsonl")
    assert (first["library_size"], first["library_papers"], first["start"]) == (2, 4, "library")
    libraries = _libraries(replay_files, 2)
    relevant = {u["user"]: set(u["relevant"]) for u in _read(replay_files[1])}
    assert all(len(libraries[user]) == 2 and libraries[user] <= relevant[user] for user in libraries)
    for row in _read(tmp_path / "a.jsonl"):
        assert not set(row["shown"]) & libraries[row["user"]]


def test_a_library_reaches_the_model_as_an_import_would(replay_files: tuple[Path, Path]) -> None:
    papers = _read(replay_files[0])
    library = [p for p in papers if p["id"] in ("a1", "a0")]  # a1 is dated the first day, a0 the second
    profile = library_profile(library, "2025-04-01")
    assert profile.keywords == [] and profile.labels == {"a1": 1} and profile.library == ["a1"]
    assert [text.title for text in profile.texts] == [PAPERS[0][0]]


def test_a_user_whose_library_holds_all_their_relevant_papers_has_no_day_counted(
    replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    papers, users = replay_files
    both = eval_replay(papers, users, tmp_path / "both.jsonl", k=2, library_size=2, start="keywords")
    assert _libraries(replay_files, 2)["cs.RO"] == {"a7", "a8"}  # all of cs.RO's relevant papers
    sound_only = _write_gz(tmp_path / "sound.jsonl.gz", [u for u in _read(users) if u["user"] == "cs.SD"])
    alone = eval_replay(papers, sound_only, tmp_path / "alone.jsonl", k=2, library_size=2, start="keywords")
    assert {k: v for k, v in both.items() if k.startswith("hit")} == {
        k: v for k, v in alone.items() if k.startswith("hit")
    }  # cs.RO has no day left to count: the average is cs.SD's alone, not pulled down by zeros


def test_the_start_may_be_keywords_or_both_for_a_comparison_on_the_same_papers(
    replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(EvalInputError, match="start: 'nothing'"):
        eval_replay(*replay_files, tmp_path / "x.jsonl", library_size=2, start="nothing")
    result = CliRunner().invoke(
        main,
        ["eval", "replay", "--papers", str(replay_files[0]), "--users", str(replay_files[1]), "--out",
         str(tmp_path / "c.jsonl"), "--library-size", "1", "--start", "both"],
    )  # fmt: skip
    assert result.exit_code == 0 and json.loads(result.output.strip().splitlines()[-1])["start"] == "both"
    plain = eval_replay(*replay_files, tmp_path / "p.jsonl")
    assert "library_size" not in plain and "start" not in plain  # without a library: the output of before
