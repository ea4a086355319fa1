"""``digest subscribe`` and ``digest subscribers list|show|edit|pause|resume|remove|import|export``: the
operator's path (no double opt-in). Every check and query lives in ``digest.subscribers``; a library file
(``--library``) is read by ``digest.references`` and imported by ``digest.subscribers.library``."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from digest.cli.context import Commands, Context, emit_json, pass_context
from digest.deliver.repair import list_deliveries
from digest.models import Subscriber, SubscriberStatus
from digest.references import LibraryError, Reference, read_library
from digest.subscribers import (
    COLUMNS,
    STATUSES,
    WrongStatus,
    create_subscriber,
    delete_subscriber,
    details,
    edit_subscriber,
    export_rows,
    find_subscriber,
    import_csv,
    list_subscribers,
    set_status,
)
from digest.subscribers.library import LibraryReport, has_library, import_library, library_summary

SHOWN_DELIVERIES = 5
SHOWN_IMPORT_ERRORS = 50


def subscription_options(editing: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The flags of `subscribe`, shared by `subscribers edit` (where every flag is optional: unset keeps)."""

    def default(value: Any) -> Any:
        return None if editing else value

    options = [
        click.option("--email", help="Email address to send the digest to."),
        click.option("--slack-webhook", "slack_webhook_url", help="Slack incoming-webhook URL."),
        click.option(
            "--slack-channel", help="Slack channel or member id (C…, G…, D…, U…, W…; needs a bot token)."
        ),
        click.option(
            "--keywords",
            help='Interests, comma-separated: "diffusion, speech synthesis" (optional with --library).',
        ),
        click.option(
            "--exclude",
            "excluded_keywords",
            default=default(""),
            help="Keywords to exclude, comma-separated.",
        ),
        click.option(
            "--time",
            "send_time",
            default=default("08:00"),
            show_default=not editing,
            help="Local send time, HH:MM.",
        ),
        click.option("--timezone", default=default("UTC"), show_default=not editing, help="IANA time zone."),
        click.option("--size", "digest_size", default=None, help="Picks per digest (1-50)."),
        click.option(
            "--weekdays",
            default=default("0123456"),
            show_default=not editing,
            help="Send days, 0=Monday … 6=Sunday.",
        ),
        click.option(
            "--cadence", default=default("daily"), show_default=not editing, help="daily or weekly."
        ),
        click.option(
            "--library",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Papers they already like, as a cold start: BibTeX, CSL JSON or RIS (a Zotero export), "
            "or a list of arXiv ids / DOIs. Stored papers become 👍, the others' titles and abstracts "
            "liked texts; a new library replaces the previous one's texts.",
        ),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.command()
@subscription_options(editing=False)
@pass_context
def subscribe(app: Context, library: Path | None, **fields: Any) -> None:
    """Add an active subscription (no confirmation mail: the operator's path) and print its id.

    With --library the keywords are optional; a bad library file stores nothing (each bad entry named)."""
    references = _read_library(app, library) if library else None
    fields["keywords"] = fields["keywords"] or ""
    with app.db.session() as session:
        subscriber = create_subscriber(session, app.settings, **fields, keywords_required=references is None)
        report = import_library(session, subscriber, references) if references else None
    click.echo(subscriber.id)
    _report_library(report)


def _read_library(app: Context, path: Path) -> list[Reference]:
    """The library file's entries; a ClickException listing every bad entry (nothing is stored)."""
    with path.open("rb") as handle:  # bounded: a bigger file is refused from what was read
        data = handle.read(app.settings.max_library_bytes + 1)
    try:
        return read_library(data, app.settings.max_library_bytes)
    except LibraryError as exc:
        for problem in exc.problems[:SHOWN_IMPORT_ERRORS]:
            click.echo(f"{path}: {problem}", err=True)
        if len(exc.problems) > SHOWN_IMPORT_ERRORS:
            click.echo(f"{path}: … and {len(exc.problems) - SHOWN_IMPORT_ERRORS} more", err=True)
        raise click.ClickException(
            f"--library: {len(exc.problems)} problems in {path}: nothing stored"
        ) from None


def _report_library(report: LibraryReport | None) -> None:
    if report is None:
        return
    for entry in report.left_aside[:SHOWN_IMPORT_ERRORS]:
        click.echo(f"left aside: {entry}", err=True)
    click.echo(report.summary(), err=True)


@click.group(cls=Commands)
def subscribers() -> None:
    """List, inspect, change, pause, remove, import and export subscribers."""


@subscribers.command("list")
@click.option(
    "--status", type=click.Choice([str(s) for s in STATUSES]), help="Only subscribers with this status."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def list_command(app: Context, status: str | None, as_json: bool) -> None:
    """List subscribers, oldest first: id, status, channel, address, keywords, next send."""
    with app.db.session() as session:
        rows = list_subscribers(session, status)
    if as_json:
        emit_json({"count": len(rows), "subscribers": rows})
        return
    for row in rows:
        click.echo(
            f"{row['id']:>7}  {row['status']:<12} {row['channel']:<13} {row['address']:<32} "
            f"next {row['next_send_at'] or '-':<20}  {', '.join(row['keywords'])}"
        )
    click.echo(f"{len(rows)} subscribers")


@subscribers.command("show")
@click.argument("reference", metavar="ID|ADDRESS")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def show(app: Context, reference: str, as_json: bool) -> None:
    """One subscriber: channel, keywords, exclusions, schedule, next send, status, 👍/👎, last deliveries."""
    with app.db.session() as session:
        subscriber = _find(session, reference)
        shown = details(session, subscriber, list_deliveries(session, subscriber.id, limit=SHOWN_DELIVERIES))
        shown["library"] = library_summary(session, subscriber)
    if as_json:
        emit_json(shown)
        return
    schedule = shown["schedule"]
    lines = {
        "id": shown["id"],
        "status": shown["status"] + (f" (last error: {shown['last_error']})" if shown["last_error"] else ""),
        "channel": f"{shown['channel']}: {shown['address']}",
        "keywords": ", ".join(shown["keywords"]),
        "exclude": ", ".join(shown["excluded_keywords"]) or "-",
        "schedule": f"{schedule['cadence']} at {schedule['time']} {schedule['timezone']}, weekdays "
        f"{schedule['weekdays']}, {schedule['size']} papers",
        "next send": shown["next_send_at"] or "-",
        "votes": f"👍 {shown['votes']['up']}  👎 {shown['votes']['down']}",
        "library": f"{shown['library']['papers']} stored papers, {shown['library']['texts']} liked texts",
        "created": shown["created_at"],
    }
    for name, value in lines.items():
        click.echo(f"{name:<11}{value}")
    for row in shown["deliveries"]:
        click.echo(f"{'delivery':<11}{_delivery_line(row)}")


def _delivery_line(row: dict[str, Any]) -> str:
    reason = f" ({row['reason']})" if row["reason"] else ""
    return f"{row['digest_date']} {row['status']}, {row['papers']} papers{reason}"


@subscribers.command("edit")
@click.argument("reference", metavar="ID|ADDRESS")
@subscription_options(editing=True)
@pass_context
def edit(app: Context, reference: str, library: Path | None, **fields: Any) -> None:
    """Change a subscription with the flags of `digest subscribe`, checked the same way; all or nothing.

    --library imports a library (see `subscribe`); a subscriber with one may have no keywords."""
    changes = {name: value for name, value in fields.items() if value is not None}
    if not changes and library is None:
        raise click.UsageError("give at least one flag to change, e.g. --keywords, --time or --library")
    references = _read_library(app, library) if library else None
    with app.db.session() as session:
        subscriber = _find(session, reference)
        if changes:
            optional = references is not None or has_library(session, subscriber)
            edit_subscriber(session, app.settings, subscriber, **changes, keywords_required=not optional)
        report = import_library(session, subscriber, references) if references else None
        click.echo(f"subscriber {subscriber.id} updated")
    _report_library(report)


@subscribers.command("pause")
@click.argument("reference", metavar="ID|ADDRESS")
@pass_context
def pause(app: Context, reference: str) -> None:
    """Stop sending to an active subscriber until `resume`."""
    _set_status(app, reference, SubscriberStatus.PAUSED)


@subscribers.command("resume")
@click.argument("reference", metavar="ID|ADDRESS")
@pass_context
def resume(app: Context, reference: str) -> None:
    """Send again to a paused, unsubscribed, disabled or unconfirmed subscriber (failures start afresh)."""
    _set_status(app, reference, SubscriberStatus.ACTIVE)


def _set_status(app: Context, reference: str, status: SubscriberStatus) -> None:
    try:
        with app.db.session() as session:
            subscriber = set_status(session, _find(session, reference), status)
            click.echo(f"subscriber {subscriber.id} is {subscriber.status}")
    except WrongStatus as exc:
        raise click.ClickException(str(exc)) from None


@subscribers.command("remove")
@click.argument("reference", metavar="ID|ADDRESS")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def remove(app: Context, reference: str, yes: bool) -> None:
    """Erase a subscriber and all that is recorded about them (votes, model, deliveries), as the web does."""
    with app.db.session() as session:
        subscriber = _find(session, reference)
        label = f"subscriber {subscriber.id} ({subscriber.address})"
        if not yes and not _confirmed(f"Erase {label} and all their data?"):
            raise click.ClickException("nothing removed (give --yes to remove without asking)")
        delete_subscriber(session, subscriber)
    click.echo(f"removed {label}")


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        return False  # nobody to ask: a script must say --yes
    return click.confirm(question, default=False)


@subscribers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE.csv")
@click.option("--dry-run", is_flag=True, help="Check every row, store nothing.")
@pass_context
def import_command(app: Context, path: Path, dry_run: bool) -> None:
    """Add active subscriptions from a CSV file whose header names `subscribe` flags (email, keywords, …);
    every row is checked first, and nothing is stored if any row is bad."""
    with path.open(newline="", encoding="utf-8-sig") as lines, app.db.session() as session:
        report = import_csv(session, app.settings, lines, dry_run=dry_run)
    for error in report.errors[:SHOWN_IMPORT_ERRORS]:
        click.echo(f"{path}: {error}", err=True)
    if len(report.errors) > SHOWN_IMPORT_ERRORS:
        click.echo(f"{path}: … and {len(report.errors) - SHOWN_IMPORT_ERRORS} more errors", err=True)
    if report.errors:
        raise click.ClickException(f"{len(report.errors)} errors in {report.rows} rows: nothing imported")
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {report.rows} subscribers")


@subscribers.command("export")
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every subscriber's details.")
@pass_context
def export(app: Context, as_json: bool) -> None:
    """Print every live subscription as CSV that `subscribers import` reads back (webhook URLs included:
    keep the file private)."""
    with app.db.session() as session:
        rows = list(export_rows(session))
    if as_json:
        emit_json({"count": len(rows), "subscribers": rows})
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(COLUMNS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def _find(session: Any, reference: str) -> Subscriber:
    try:
        return find_subscriber(session, reference)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
