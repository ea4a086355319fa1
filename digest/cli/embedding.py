"""``digest embed``: the papers' sentence embeddings (the semantic part of ranking), with a progress bar."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from digest.cli.context import Context, pass_context

MISSING = "the semantic part is not installed: pip install 'digest[semantic]' (ranking uses TF-IDF alone)"


@click.command("embed")
@click.option("--limit", type=click.IntRange(min=1), help="Embed at most N papers (newest first).")
@pass_context
def embed(app: Context, limit: int | None) -> None:
    """Embed the papers that have no embedding yet, newest first (the service does it after each ingest;
    this also backfills papers stored before). Until a paper is embedded it is ranked on TF-IDF alone."""
    # Imported here: numpy, scipy and the model load only for this command, not for every `digest` call.
    from digest.rank import encoder
    from digest.rank.embeddings import embed_pending, pending

    model = encoder.encoder()
    if model is None:
        raise click.ClickException(MISSING)
    with app.db.session() as session:
        total = pending(session)
    total = min(total, limit) if limit else total
    with tqdm(total=total, unit="paper", disable=not sys.stderr.isatty() or not total) as bar:
        done = embed_pending(app.db, model, limit=limit, progress=bar.update)
    click.echo(f"embedded {done} paper{'s' if done != 1 else ''} ({encoder.MODEL_ID})")
