"""The ``digest`` command: thin wrappers over the rooms, one module per group of commands.

Every command's failures go through one place (``context.Commands.invoke``): an operational one (database,
disk, network, a setting) ends as one line naming the setting or resource and exit status 1.
"""

from __future__ import annotations

import click

from digest import __version__
from digest.cli import delivery, embedding, evaluation, feedback, ingest, service, subscribers
from digest.cli.context import Commands, Context


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
    embedding.embed,
    subscribers.subscribe,
    subscribers.subscribers,
    delivery.send,
    delivery.deliveries,
    delivery.preview,
    feedback.feedback,
):
    main.add_command(command)
