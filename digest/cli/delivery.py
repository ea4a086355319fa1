"""``digest send``, ``digest preview`` and ``digest deliveries list|stuck|release|settle|unlock``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.context import Commands, Context, emit_json, parse_date, pass_context
from digest.deliver.base import OutcomeUnknown
from digest.deliver.ledger import NotStuck
from digest.deliver.repair import (
    Stuck,
    break_lease,
    list_deliveries,
    orphaned_leases,
    release_claim,
    settle_claim,
    stuck_states,
)
from digest.deliver.transports import Transports, delivers_for_real
from digest.errors import DigestError
from digest.models import Channel, Subscriber, utcnow
from digest.subscribers import find_subscriber, find_subscriber_ids, subscriber_channels

if TYPE_CHECKING:  # the dispatch room loads numpy/scipy: only for the commands that rank
    from digest.dispatch import BatchReport

NO_BASE_URL = (
    "DIGEST_BASE_URL is not set, so the digest's links would point at {url}, an address only this machine "
    "can open; set it to the public address of `digest serve` (e.g. https://digest.example.org)"
)


def check_links(app: Context, ids: list[int], *, dry_run: bool) -> None:
    """Refuse to send real mail or Slack messages whose links point at a guessed address; warn for files."""
    settings = app.settings
    if settings.base_url_is_set:
        return
    with app.db.session() as session:
        channels = subscriber_channels(session, ids)
    message = NO_BASE_URL.format(url=settings.base_url)
    if not dry_run and any(delivers_for_real(settings, channel) for channel in channels):
        raise DigestError(message)
    click.echo(f"warning: {message}", err=True)


# What an operator can do about a stuck claim, by its state.
NEXT_STEP = {
    "unknown": "check the mail log or the channel; `digest deliveries release ID` if it never arrived",
    "gone": "its process died mid-send: check, then `digest deliveries release ID` if it never arrived",
    "running": "a live process is sending it now: wait",
    "elsewhere": "claimed by a process on another host: check that host first",
}
SLACK_STEP = "`digest deliveries settle` looks it up in the Slack channel"


@click.command()
@click.option("--subscriber", "reference", help="One subscriber: id, email address or Slack channel id.")
@click.option("--date", "day", help="Digest date YYYY-MM-DD (default: each subscriber's local today).")
@click.option("--dry-run", is_flag=True, help="Pick and render, send and record nothing.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Processes sending chunks at once (default: one per core, at most 4).",
)
@click.option("--quiet", is_flag=True, help="Only the counts: no line (or JSON entry) per subscriber.")
@click.option("--json", "as_json", is_flag=True, help="Last line: JSON counts and per-subscriber outcomes.")
@pass_context
def send(
    app: Context,
    reference: str | None,
    day: str | None,
    dry_run: bool,
    processes: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Send today's digest now to every active subscriber (or one); never twice for the same day."""
    from digest.dispatch import send_many  # ranks: numpy/scipy load only for the commands that rank

    digest_date = parse_date(day)
    with app.db.session() as session:
        ids = find_subscriber_ids(session, reference)
    if reference is not None and not ids:
        raise click.ClickException(f"no subscriber matches {reference!r}")
    check_links(app, ids, dry_run=dry_run)
    processes = processes or min(os.cpu_count() or 1, 4)
    report = send_many(
        app.db, app.settings, ids, digest_date=digest_date, dry_run=dry_run, processes=processes
    )
    _report_send(report, quiet, as_json)


def _report_send(report: BatchReport, quiet: bool, as_json: bool) -> None:
    for outcome in [] if quiet else report.outcomes:
        detail = f" ({outcome.reason})" if outcome.reason else ""
        click.echo(
            f"subscriber {outcome.subscriber_id} {outcome.digest_date}: {outcome.status}"
            f" [{len(outcome.paper_ids)} papers]{detail}"
        )
    counts = report.counts()
    if as_json:
        outcomes = [] if quiet else [outcome.as_dict() for outcome in report.outcomes]
        phases = {name: round(seconds, 3) for name, seconds in report.phases.seconds.items()}
        emit_json({**counts, "outcomes": outcomes, "phases": phases})
    else:
        click.echo(", ".join(f"{status} {number}" for status, number in counts.items()))
    if counts["failed"] or counts["unknown"]:
        raise SystemExit(1)


@click.group(cls=Commands)
def deliveries() -> None:
    """Inspect and repair the delivery ledger."""


@deliveries.command("list")
@click.option("--subscriber", "reference", help="Only this subscriber's (id, email or Slack channel id).")
@click.option("--date", "day", help="Only this digest date, YYYY-MM-DD.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most N rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON object (last line).")
@pass_context
def deliveries_list(app: Context, reference: str | None, day: str | None, limit: int, as_json: bool) -> None:
    """List deliveries, newest digest date first: subscriber, date, status, papers, reason."""
    digest_date = parse_date(day)
    with app.db.session() as session:
        subscriber_id = _subscriber_id(session, reference)
        rows = list_deliveries(session, subscriber_id, digest_date, limit=limit)
    if as_json:
        emit_json({"count": len(rows), "deliveries": rows})
        return
    for row in rows:
        reason = f"  ({row['reason']})" if row["reason"] else ""
        click.echo(
            f"delivery {row['id']}: subscriber {row['subscriber']} {row['digest_date']} {row['channel']} "
            f"{row['status']}, {row['papers']} papers{reason}"
        )
    if not rows:
        click.echo("no deliveries")


def _subscriber_id(session, reference: str | None) -> int | None:  # type: ignore[no-untyped-def]
    if reference is None:
        return None
    try:
        return find_subscriber(session, reference).id
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None


@deliveries.command("stuck")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON object (last line).")
@pass_context
def deliveries_stuck(app: Context, as_json: bool) -> None:
    """List claims never confirmed: deliveries left 'sending' (outcome unknown, or their process gone)
    and schedule leases held by a process that is gone. None of them is resent by itself."""
    now = utcnow()
    with app.db.session() as session:
        rows = [_stuck_row(stuck) for stuck in stuck_states(session)]
        leases = [_lease_row(row) for row in orphaned_leases(session, now)]
    for row in rows:
        click.echo(
            f"delivery {row['id']}: subscriber {row['subscriber']} {row['digest_date']} ({row['channel']}), "
            f"claimed {row['claimed_at']} by {row['claimed_by']}: {row['state']}"
            + (f" ({row['reason']})" if row["reason"] else "")
            + f"\n  next: {row['next']}"
        )
    for lease in leases:
        click.echo(
            f"lease: subscriber {lease['subscriber']} held until {lease['claimed_until']} by "
            f"{lease['claimed_by']}, a process that is gone\n  next: {lease['next']}"
        )
    if as_json:
        emit_json({"stuck": rows, "leases": leases})
    elif not rows and not leases:
        click.echo("no stuck deliveries")


def _stuck_row(stuck: Stuck) -> dict[str, Any]:
    row = stuck.delivery
    slack = row.channel == Channel.SLACK_BOT and stuck.state != "running"
    return {
        "id": row.id,
        "subscriber": row.subscriber_id,
        "digest_date": str(row.digest_date),
        "channel": row.channel,
        "claimed_at": f"{row.created_at:%Y-%m-%d %H:%M} UTC",
        "claimed_by": row.claimed_by or "(not recorded)",
        "state": stuck.state,
        "reason": row.reason,
        "next": SLACK_STEP if slack else NEXT_STEP[stuck.state],
    }


def _lease_row(row: Subscriber) -> dict[str, Any]:
    assert row.claimed_until is not None
    return {
        "subscriber": row.id,
        "claimed_until": f"{row.claimed_until:%Y-%m-%d %H:%M} UTC",
        "claimed_by": row.claimed_by,
        "next": f"`digest deliveries unlock {row.id}` lets the next dispatch run take it up now",
    }


@deliveries.command("release")
@click.argument("delivery_id", type=int)
@pass_context
def deliveries_release(app: Context, delivery_id: int) -> None:
    """Forget a stuck claim you know was lost, so `digest send --date …` sends that digest again."""
    try:
        with app.db.session() as session:
            row = release_claim(session, delivery_id)
            click.echo(f"released delivery {delivery_id}: subscriber {row.subscriber_id} {row.digest_date}")
    except NotStuck as exc:
        raise click.ClickException(str(exc)) from None


@deliveries.command("settle")
@click.argument("delivery_ids", type=int, nargs=-1)
@pass_context
def deliveries_settle(app: Context, delivery_ids: tuple[int, ...]) -> None:
    """Look stuck Slack bot deliveries up in their channel: found, they are marked sent; not there, they
    are posted now (once). Without ids: every one whose outcome is unknown or whose process is gone."""
    from digest.dispatch import send_digest  # ranks: numpy/scipy load only for the commands that rank

    ids = delivery_ids or _settleable(app)
    transports = Transports(app.settings)
    try:
        for delivery_id in ids:
            try:
                outcome = settle_claim(
                    app.db, transports.for_channel(Channel.SLACK_BOT), delivery_id, utcnow()
                )
            except (NotStuck, OutcomeUnknown) as exc:
                click.echo(f"delivery {delivery_id}: left stuck: {exc}")
                continue
            if outcome.status != "sent":  # not in the channel: the claim is gone, post it now
                outcome = send_digest(app.db, app.settings, outcome.subscriber_id, outcome.digest_date)
            click.echo(
                f"delivery {delivery_id}: subscriber {outcome.subscriber_id} {outcome.digest_date}: "
                f"{outcome.status}" + (f" ({outcome.reason})" if outcome.reason else "")
            )
    finally:
        transports.close()


def _settleable(app: Context) -> list[int]:
    with app.db.session() as session:
        return [
            stuck.delivery.id
            for stuck in stuck_states(session)
            if stuck.delivery.channel == Channel.SLACK_BOT and stuck.state in ("unknown", "gone")
        ]


@deliveries.command("unlock")
@click.argument("subscriber_id", type=int)
@click.option("--force", is_flag=True, help="Break the lease even if its holder may still run.")
@pass_context
def deliveries_unlock(app: Context, subscriber_id: int, force: bool) -> None:
    """End a schedule lease held by a process that is gone, so the next dispatch run sends at once."""
    try:
        with app.db.session() as session:
            row = break_lease(session, subscriber_id, utcnow(), force=force)
            click.echo(f"unlocked subscriber {row.id}: due again at the next dispatch run")
    except NotStuck as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--subscriber", "reference", required=True, help="Subscriber id, email or Slack channel id.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--date", "day", help="Digest date YYYY-MM-DD (default: the subscriber's local today).")
@pass_context
def preview(app: Context, reference: str, out: Path, day: str | None) -> None:
    """Write a subscriber's digest as HTML, text, .eml and Slack JSON; records and sends nothing."""
    from digest.compose import preview_digest, write_preview  # ranks: loaded only for this command

    with app.db.session() as session:
        ids = find_subscriber_ids(session, reference)
    if len(ids) != 1:
        raise click.ClickException(f"{reference!r} matches {len(ids)} subscribers; give an id")
    check_links(app, ids, dry_run=True)  # a preview only shows the links: a warning is enough
    rendered = preview_digest(app.db, app.settings, ids[0], parse_date(day))
    for path in write_preview(rendered, out):
        click.echo(path)
    click.echo(f"{len(rendered.paper_ids)} picks")
