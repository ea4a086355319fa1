"""``digest subscribe``: add a subscription from the command line (no double opt-in: the operator's path)."""

from __future__ import annotations

from typing import Any

import click

from digest.cli.context import Context, pass_context
from digest.subscribers import InvalidSubscription, create_subscriber


@click.command()
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
    try:
        with app.db.session() as session:
            subscriber = create_subscriber(session, app.settings, **fields)
    except InvalidSubscription as exc:
        raise click.ClickException(f"invalid {exc.field}: {exc.message}") from None
    click.echo(subscriber.id)
