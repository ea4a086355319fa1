"""The ``digest`` command: thin wrappers over the rooms, one module per group of commands."""

from __future__ import annotations

import click

from digest import __version__
from digest.cli import delivery, evaluation, ingest, service, subscribers
from digest.cli.context import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def main(ctx: click.Context) -> None:
    """digest: turn daily paper digests into a personal daily email or Slack message."""
    ctx.ensure_object(Context)


for command in (
    service.init,
    service.db,
    service.stats,
    service.serve,
    service.worker,
    evaluation.eval_group,
    ingest.ingest_command,
    ingest.papers,
    subscribers.subscribe,
    delivery.send,
    delivery.deliveries,
    delivery.preview,
):
    main.add_command(command)
