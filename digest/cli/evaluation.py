"""``digest eval rank|replay``: the production model measured on offline files (../shared/eval/README.md)."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.context import Commands, emit_json


@click.group("eval", cls=Commands)
def eval_group() -> None:
    """Measure the production ranking model on offline evaluation files."""


def _run_eval(run, *args) -> None:  # type: ignore[no-untyped-def]
    from digest.evaluate import EvalInputError  # numpy/scipy load only when evaluating

    try:
        metrics = run(*args)
    except EvalInputError as exc:
        raise click.ClickException(str(exc)) from None
    emit_json(metrics)


@eval_group.command("rank")
@click.option("--papers", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--cases", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSONL (.gz ok).")
@click.option("--k", type=click.IntRange(min=1), default=100, show_default=True)
def eval_rank_command(papers: Path, cases: Path, out: Path, k: int) -> None:
    """Rank every candidate paper per case; print recall@20/50/100 as the last line."""
    from digest.evaluate import eval_rank  # numpy/scipy load only when evaluating

    _run_eval(eval_rank, papers, cases, out, k)


@eval_group.command("replay")
@click.option("--papers", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--users", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSONL (.gz ok).")
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--library-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Start each user from N of their relevant papers of the first week (a library) instead of "
    "keywords; those papers are never shown nor counted.",
)
@click.option(
    "--start",
    type=click.Choice(["library", "keywords", "both"]),
    default="library",
    show_default=True,
    help="With --library-size: the model starts from the library, the keywords (the library's papers "
    "still set aside, for a comparison on the same papers), or both.",
)
def eval_replay_command(papers: Path, users: Path, out: Path, k: int, library_size: int, start: str) -> None:
    """Replay daily digests with simulated 👍/👎; print hit@k (overall, first 5, last 10 days) last."""
    from digest.evaluate import eval_replay  # numpy/scipy load only when evaluating

    _run_eval(eval_replay, papers, users, out, k, library_size, start)
