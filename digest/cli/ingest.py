"""``digest ingest`` and ``digest papers list|show``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from digest.cli.context import Commands, Context, emit_json, pass_context
from digest.ingest.papers import find_paper, list_papers, paper_details, paper_summary
from digest.ingest.service import ingest_paths


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object (last line).")
@pass_context
def ingest_command(app: Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Ingest digest files and folders (walked for *.txt page dumps, *.json Hugging Face API responses and
    *.xml/*.rss/*.atom arXiv feeds and API responses; the format is read from the content).

    Known papers are deduplicated; a file seen before changes nothing; a bad file is recorded as
    rejected with the reason and the others go on. Exit status 1 when any file was rejected.
    """
    report = ingest_paths(app.db, list(paths), progress=sys.stderr.isatty())
    for error in report.errors:
        click.echo(f"rejected {error['file']}: {error['reason']}", err=True)
    emit_json(report.as_dict()) if as_json else click.echo(report.summary())
    if report.files_rejected:
        raise SystemExit(1)


@click.group(cls=Commands)
def papers() -> None:
    """Inspect stored papers."""


@papers.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most N papers.")
@click.option("--search", metavar="TEXT", help="Only papers whose title, abstract or arXiv id contains TEXT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def papers_list(app: Context, limit: int, search: str | None, as_json: bool) -> None:
    """List papers, most recently ingested first."""
    with app.db.session() as session:
        rows = [paper_summary(paper) for paper in list_papers(session, limit=limit, search=search)]
    if as_json:
        emit_json({"count": len(rows), "papers": rows})
        return
    for row in rows:
        click.echo(f"{row['id']:>7}  {row['arxiv_id'] or '-':<12}  {row['title']}")


@papers.command("show")
@click.argument("reference", metavar="ID|ARXIV_ID")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def papers_show(app: Context, reference: str, as_json: bool) -> None:
    """Show one paper (by database id or arXiv id) and the digest files that listed it."""
    with app.db.session() as session:
        paper = find_paper(session, reference)
        if paper is None:
            raise click.ClickException(f"no paper with id or arXiv id {reference!r}")
        details = paper_details(paper)
    if as_json:
        emit_json(details)
        return
    for name in ("id", "arxiv_id", "title", "authors", "published_at", "upvotes", "url", "first_seen_at"):
        value = details[name]
        click.echo(f"{name:<14}{', '.join(value) if isinstance(value, list) else value}")
    for appearance in details["appearances"]:
        click.echo(f"{'listed in':<14}{appearance['file']} ({appearance['digest_date'] or 'no date'})")
    click.echo(f"\n{details['abstract'] or '(no abstract)'}")
