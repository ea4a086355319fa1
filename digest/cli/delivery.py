"""``digest send``, ``digest preview`` and ``digest deliveries stuck|release``."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.context import Context, emit_json, parse_date, pass_context
from digest.deliver.ledger import NotStuck, release_claim, stuck_claims
from digest.subscribers import find_subscriber_ids


@click.command()
@click.option("--subscriber", "reference", help="One subscriber: id, email address or Slack channel id.")
@click.option("--date", "day", help="Digest date YYYY-MM-DD (default: each subscriber's local today).")
@click.option("--dry-run", is_flag=True, help="Pick and render, send and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Last line: JSON counts and per-subscriber outcomes.")
@pass_context
def send(app: Context, reference: str | None, day: str | None, dry_run: bool, as_json: bool) -> None:
    """Send today's digest now to every active subscriber (or one); never twice for the same day."""
    from digest.dispatch import send_many  # ranks: numpy/scipy load only for the commands that rank

    digest_date = parse_date(day)
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


@click.group()
def deliveries() -> None:
    """Inspect and repair the delivery ledger."""


@deliveries.command("stuck")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON object (last line).")
@pass_context
def deliveries_stuck(app: Context, as_json: bool) -> None:
    """List deliveries left 'sending' by a process that stopped mid-send (never resent by themselves)."""
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
    try:
        with app.db.session() as session:
            row = release_claim(session, delivery_id)
            click.echo(f"released delivery {delivery_id}: subscriber {row.subscriber_id} {row.digest_date}")
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
    rendered = preview_digest(app.db, app.settings, ids[0], parse_date(day))
    for path in write_preview(rendered, out):
        click.echo(path)
    click.echo(f"{len(rendered.paper_ids)} picks")
