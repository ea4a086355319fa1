"""``digest init``, ``db upgrade``, ``stats``, ``serve`` and ``worker``: setting up and running it."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from digest.cli.context import Commands, Context, emit_json, pass_context
from digest.config import prepare_folders
from digest.db import Database, upgrade
from digest.models import Delivery, DigestFile, Feedback, Paper, Subscriber


@click.command()
@pass_context
def init(app: Context) -> None:
    """Create the data dir, inbox, outbox and database (safe to run again)."""
    settings = app.settings
    prepare_folders(settings)
    database = Database(settings, migrate=False)
    try:
        upgrade(database.engine)
    finally:
        database.dispose()
    _ = settings.secret if settings.is_embedded else None
    click.echo(f"data dir: {settings.data_dir.resolve()}")
    click.echo(f"database: {database.url}")
    click.echo(f"inbox:    {settings.inbox.resolve()}")
    click.echo(f"outbox:   {settings.outbox.resolve()}")


@click.group(cls=Commands)
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
@pass_context
def db_upgrade(app: Context, revision: str) -> None:
    """Apply the Alembic migrations (works on SQLite and PostgreSQL)."""
    database = Database(app.settings, migrate=False)
    try:
        upgrade(database.engine, revision)
    finally:
        database.dispose()
    click.echo(f"database {database.url} upgraded to {revision}")


@click.command()
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


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default: DIGEST_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: DIGEST_PORT, 8000).")
@click.option("--no-scheduler", is_flag=True, help="Web app only: no inbox, dispatch or HF jobs.")
@pass_context
def serve(app: Context, host: str | None, port: int | None, no_scheduler: bool) -> None:
    """Run the web app and the scheduler (inbox, dispatch, maintenance) until SIGTERM/Ctrl+C."""
    # The web app and the ranker load only for `serve`, not for every command's --help.
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


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True, help="Processes.")
@pass_context
def worker(app: Context, concurrency: int) -> None:
    """Send the digests `digest serve` queues on DIGEST_CELERY_BROKER_URL (a Celery worker)."""
    settings = app.settings
    if not settings.celery_broker_url:
        raise click.ClickException("DIGEST_CELERY_BROKER_URL is not set: `digest serve` sends digests itself")
    try:
        from digest.workers import run_worker  # Celery is an optional extra
    except ImportError:
        raise click.ClickException("Celery is not installed: pip install -e '.[workers]'") from None
    run_worker(settings, concurrency)
