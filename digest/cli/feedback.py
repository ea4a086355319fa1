"""``digest feedback list``: a subscriber's 👍/👎, for an operator answering "why do I get these papers?"."""

from __future__ import annotations

import click

from digest.cli.context import Commands, Context, emit_json, pass_context
from digest.subscribers import feedback_of, find_subscriber


@click.group(cls=Commands)
def feedback() -> None:
    """Inspect the 👍/👎 subscribers gave."""


@feedback.command("list")
@click.option("--subscriber", "reference", required=True, help="Subscriber id, email or Slack channel id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def feedback_list(app: Context, reference: str, as_json: bool) -> None:
    """Every vote of one subscriber, newest first: when, 👍/👎, where from, and the paper."""
    with app.db.session() as session:
        try:
            subscriber = find_subscriber(session, reference)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        rows = feedback_of(session, subscriber.id)
    if as_json:
        emit_json({"subscriber": subscriber.id, "count": len(rows), "feedback": rows})
        return
    for row in rows:
        vote = "👍" if row["vote"] == "up" else "👎"
        paper = row["arxiv_id"] or row["paper_id"]
        click.echo(f"{row['at']}  {vote}  {row['source']:<5}  {paper:<12}  {row['title']}")
    click.echo(f"{len(rows)} votes")
