"""The ``digest`` command: thin wrappers over the rooms (ingest, rank, deliver, schedule, web)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

from digest import __version__
from digest.config import ConfigError, Settings, load_settings
from digest.db import Database, upgrade
from digest.models import Delivery, DigestFile, Feedback, Paper, Subscriber


class Context:
    """Settings and database, opened on first use so `--help` needs neither."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                raise click.ClickException(f"configuration error: {exc}") from None
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings)
        return self._db


pass_context = click.make_pass_decorator(Context, ensure=True)


def emit_json(payload: dict[str, Any]) -> None:
    """Machine-readable output: one JSON object, always the last line."""
    click.echo(json.dumps(payload, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def main(ctx: click.Context) -> None:
    """digest: turn daily paper digests into a personal daily email or Slack message."""
    ctx.ensure_object(Context)


@main.command()
@pass_context
def init(app: Context) -> None:
    """Create the data dir, inbox, outbox and database (safe to run again)."""
    settings = app.settings
    for folder in (settings.data_dir, settings.inbox, settings.outbox):
        folder.mkdir(parents=True, exist_ok=True)
    upgrade(app.db.engine)
    _ = settings.secret if settings.is_embedded else None
    click.echo(f"data dir: {settings.data_dir.resolve()}")
    click.echo(f"database: {app.db.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"inbox:    {settings.inbox.resolve()}")
    click.echo(f"outbox:   {settings.outbox.resolve()}")


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
@pass_context
def db_upgrade(app: Context, revision: str) -> None:
    """Apply the Alembic migrations (works on SQLite and PostgreSQL)."""
    database = Database(app.settings, migrate=False)
    upgrade(database.engine, revision)
    click.echo(f"database upgraded to {revision}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def stats(app: Context, as_json: bool) -> None:
    """Counts of papers, digest files, subscribers, feedback and deliveries."""
    tables = {
        "papers": Paper,
        "digest_files": DigestFile,
        "subscribers": Subscriber,
        "feedback": Feedback,
        "deliveries": Delivery,
    }
    with app.db.session() as session:
        counts = {name: session.scalar(select(func.count()).select_from(t)) for name, t in tables.items()}
    if as_json:
        emit_json(counts)
        return
    for name, count in counts.items():
        click.echo(f"{name:<14}{count:>10}")


# --- commands of the other rooms register below ----------------------------------------------------


# --- schedule: `digest serve` ----------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default: DIGEST_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: DIGEST_PORT, 8000).")
@click.option("--no-scheduler", is_flag=True, help="Web app only: no inbox, dispatch or HF jobs.")
@pass_context
def serve(app: Context, host: str | None, port: int | None, no_scheduler: bool) -> None:
    """Run the web app and the scheduler (inbox, dispatch, maintenance) until SIGTERM/Ctrl+C."""
    from digest.serve import serve as run_service
    from digest.serve import with_listen_address

    host, port = host or app.settings.host, port or app.settings.port
    settings = with_listen_address(app.settings, host, port)
    code = run_service(
        settings,
        host=host,
        port=port,
        scheduler=settings.scheduler and not no_scheduler,
        echo=click.echo,
    )
    raise SystemExit(code)


@main.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True, help="Processes.")
@pass_context
def worker(app: Context, concurrency: int) -> None:
    """Send the digests `digest serve` queues on DIGEST_CELERY_BROKER_URL (a Celery worker)."""
    settings = app.settings
    if not settings.celery_broker_url:
        raise click.ClickException("DIGEST_CELERY_BROKER_URL is not set: `digest serve` sends digests itself")
    try:
        from digest.workers import run_worker
    except ImportError:
        raise click.ClickException("Celery is not installed: pip install -e '.[workers]'") from None
    run_worker(settings, concurrency)


# --- rank: `digest eval rank|replay` (contract: ../shared/eval/README.md) --------------------------


@main.group("eval")
def eval_group() -> None:
    """Measure the production ranking model on offline evaluation files."""


def _run_eval(run, *args) -> None:  # type: ignore[no-untyped-def]
    from digest.evaluate import EvalInputError

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
    from digest.evaluate import eval_rank

    _run_eval(eval_rank, papers, cases, out, k)


@eval_group.command("replay")
@click.option("--papers", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--users", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSONL (.gz ok).")
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True)
def eval_replay_command(papers: Path, users: Path, out: Path, k: int) -> None:
    """Replay daily digests with simulated 👍/👎; print hit@k (overall, first 5, last 10 days) last."""
    from digest.evaluate import eval_replay

    _run_eval(eval_replay, papers, users, out, k)


# --- ingest and papers (digest/ingest/) ------------------------------------------------------------


@main.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object (last line).")
@pass_context
def ingest_command(app: Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Ingest digest files and folders (walked for *.txt page dumps and *.json API responses).

    Known papers are deduplicated; a file seen before changes nothing; a bad file is recorded as
    rejected with the reason and the others go on. Exit status 1 when any file was rejected.
    """
    import sys

    from digest.ingest.service import ingest_paths

    report = ingest_paths(app.db, list(paths), progress=sys.stderr.isatty())
    for error in report.errors:
        click.echo(f"rejected {error['file']}: {error['reason']}", err=True)
    emit_json(report.as_dict()) if as_json else click.echo(report.summary())
    if report.files_rejected:
        raise SystemExit(1)


@main.group()
def papers() -> None:
    """Inspect stored papers."""


@papers.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most N papers.")
@click.option("--search", metavar="TEXT", help="Only papers whose title, abstract or arXiv id contains TEXT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def papers_list(app: Context, limit: int, search: str | None, as_json: bool) -> None:
    """List papers, most recently ingested first."""
    from digest.ingest.papers import list_papers, paper_summary

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
    from digest.ingest.papers import find_paper, paper_details

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


# --- deliver: `digest subscribe`, `digest send`, `digest preview` -----------------------------------------


@main.command()
@click.option("--email", help="Email address to send the digest to.")
@click.option("--slack-webhook", "slack_webhook_url", help="Slack incoming-webhook URL.")
@click.option("--slack-channel", help="Slack channel or member id (C…, G…, D…, U…, W…; needs a bot token).")
@click.option("--keywords", required=True, help='Interests, comma-separated: "diffusion, speech synthesis".')
@click.option("--exclude", "excluded_keywords", default="", help="Keywords to exclude, comma-separated.")
@click.option("--time", "send_time", default="08:00", show_default=True, help="Local send time, HH:MM.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone, e.g. Europe/Paris.")
@click.option("--size", "digest_size", type=int, default=None, help="Picks per digest (1-50).")
@click.option("--weekdays", default="0123456", show_default=True, help="Send days, 0=Monday … 6=Sunday.")
@click.option("--cadence", type=click.Choice(["daily", "weekly"]), default="daily", show_default=True)
@pass_context
def subscribe(app: Context, **fields: Any) -> None:
    """Add an active subscription and print its id."""
    from digest.subscribers import InvalidSubscription, create_subscriber

    try:
        with app.db.session() as session:
            subscriber = create_subscriber(session, app.settings, **fields)
    except InvalidSubscription as exc:
        raise click.ClickException(f"invalid {exc.field}: {exc.message}") from None
    click.echo(subscriber.id)


def _parse_date(value: str | None) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date as YYYY-MM-DD", param_hint="--date") from None


@main.command()
@click.option("--subscriber", "reference", help="One subscriber: id, email address or Slack channel id.")
@click.option("--date", "day", help="Digest date YYYY-MM-DD (default: each subscriber's local today).")
@click.option("--dry-run", is_flag=True, help="Pick and render, send and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Last line: JSON counts and per-subscriber outcomes.")
@pass_context
def send(app: Context, reference: str | None, day: str | None, dry_run: bool, as_json: bool) -> None:
    """Send today's digest now to every active subscriber (or one); never twice for the same day."""
    from digest.deliver.service import find_subscriber_ids, send_many

    digest_date = _parse_date(day)
    with app.db.session() as session:
        ids = find_subscriber_ids(session, reference)
    if reference is not None and not ids:
        raise click.ClickException(f"no subscriber matches {reference!r}")
    report = send_many(app.db, app.settings, ids, digest_date=digest_date, dry_run=dry_run)
    for outcome in report.outcomes:
        detail = f" ({outcome.reason})" if outcome.reason else ""
        click.echo(
            f"subscriber {outcome.subscriber_id} {outcome.digest_date}: {outcome.status}"
            f" [{len(outcome.paper_ids)} papers]{detail}"
        )
    counts = report.counts()
    if as_json:
        emit_json({**counts, "outcomes": [outcome.as_dict() for outcome in report.outcomes]})
    else:
        click.echo(", ".join(f"{status} {number}" for status, number in counts.items()))
    if counts["failed"]:
        raise SystemExit(1)


@main.group()
def deliveries() -> None:
    """Inspect and repair the delivery ledger."""


@deliveries.command("stuck")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON object (last line).")
@pass_context
def deliveries_stuck(app: Context, as_json: bool) -> None:
    """List deliveries left 'sending' by a process that stopped mid-send (never resent by themselves)."""
    from digest.deliver.ledger import stuck_claims

    with app.db.session() as session:
        rows = [
            {
                "id": row.id,
                "subscriber": row.subscriber_id,
                "digest_date": str(row.digest_date),
                "channel": row.channel,
                "claimed_at": f"{row.created_at:%Y-%m-%d %H:%M} UTC",
            }
            for row in stuck_claims(session)
        ]
    for row in rows:
        click.echo(
            f"delivery {row['id']}: subscriber {row['subscriber']} {row['digest_date']} "
            f"({row['channel']}), claimed {row['claimed_at']}"
        )
    if as_json:
        emit_json({"stuck": rows})
    elif not rows:
        click.echo("no stuck deliveries")


@deliveries.command("release")
@click.argument("delivery_id", type=int)
@pass_context
def deliveries_release(app: Context, delivery_id: int) -> None:
    """Forget a stuck claim you know was lost, so `digest send --date …` sends that digest again."""
    from digest.deliver.ledger import NotStuck, release_claim

    try:
        with app.db.session() as session:
            row = release_claim(session, delivery_id)
            click.echo(f"released delivery {delivery_id}: subscriber {row.subscriber_id} {row.digest_date}")
    except NotStuck as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--subscriber", "reference", required=True, help="Subscriber id, email or Slack channel id.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--date", "day", help="Digest date YYYY-MM-DD (default: the subscriber's local today).")
@pass_context
def preview(app: Context, reference: str, out: Path, day: str | None) -> None:
    """Write a subscriber's digest as HTML, text, .eml and Slack JSON; records and sends nothing."""
    from digest.deliver.service import find_subscriber_ids, preview_digest, write_preview

    with app.db.session() as session:
        ids = find_subscriber_ids(session, reference)
    if len(ids) != 1:
        raise click.ClickException(f"{reference!r} matches {len(ids)} subscribers; give an id")
    rendered = preview_digest(app.db, app.settings, ids[0], _parse_date(day))
    for path in write_preview(rendered, out):
        click.echo(path)
    click.echo(f"{len(rendered.paper_ids)} picks")
