"""One subscriber's digest: the picks rendered into the message for their channel; and its preview."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from digest.calendar import digest_date_for
from digest.config import Settings
from digest.db import Database
from digest.deliver.base import Outgoing, delivery_key
from digest.deliver.mime import email_message, unsubscribe_headers
from digest.models import Channel, Subscriber, utcnow
from digest.rank import Pick, pick_digest
from digest.render import EmailContent, digest_context, make_message, slack_message
from digest.signing import links_for


@dataclasses.dataclass
class RenderedDigest:
    """A digest ready to send: picks, the template context, and the message for the subscriber's channel."""

    subscriber_id: int
    channel: Channel
    paper_ids: list[int]
    picks: list[Pick]
    context: dict[str, Any]
    email: EmailContent
    slack: dict[str, Any]
    message: Outgoing


def render_digest(
    session: Session, settings: Settings, subscriber: Subscriber, digest_date: dt.date, now: dt.datetime
) -> RenderedDigest:
    """Pick and render (no ledger writes): what a send would send, and what a preview shows."""
    picks = pick_digest(session, settings, subscriber, now=now, k=subscriber.digest_size)
    context = digest_context(subscriber, picks, links_for(settings), digest_date)
    content = make_message("digest", context)
    slack = slack_message(context)
    return RenderedDigest(
        subscriber_id=subscriber.id,
        channel=subscriber.channel,
        paper_ids=[pick.paper.id for pick in picks],
        picks=list(picks),
        context=context,
        email=content,
        slack=slack,
        message=_outgoing(settings, subscriber, content, slack, context, now),
    )


def _outgoing(
    settings: Settings,
    subscriber: Subscriber,
    content: EmailContent,
    slack: dict[str, Any],
    context: dict[str, Any],
    now: dt.datetime,
) -> Outgoing:
    label = f"digest-{subscriber.id}-{context['digest_date']}"
    key = delivery_key(subscriber.id, context["digest_date"])
    if subscriber.channel == Channel.EMAIL:
        headers = unsubscribe_headers(context["unsubscribe_url"])
        mail = email_message(settings, subscriber.email or "", content, headers, now=now)
        return Outgoing(Channel.EMAIL, subscriber.email or "", email=mail, label=label, key=key)
    destination = (
        subscriber.slack_webhook_url
        if subscriber.channel == Channel.SLACK_WEBHOOK
        else subscriber.slack_channel
    )
    return Outgoing(subscriber.channel, destination or "", slack=slack, label=label, key=key)


def preview_digest(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    digest_date: dt.date | None = None,
    *,
    now: dt.datetime | None = None,
) -> RenderedDigest:
    """Render a subscriber's digest as it would go out now, whatever their status; nothing is recorded."""
    now = now or utcnow()
    with db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            raise LookupError(f"no subscriber {subscriber_id}")
        return render_digest(
            session, settings, subscriber, digest_date or digest_date_for(subscriber, now), now
        )


def write_preview(rendered: RenderedDigest, folder: Path) -> list[Path]:
    """The digest as files to look at (nothing recorded): HTML, text, the .eml and the Slack payload."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"digest-{rendered.subscriber_id}-{rendered.context['digest_date']}"
    files = {
        f"{stem}.html": rendered.email.html,
        f"{stem}.txt": f"Subject: {rendered.email.subject}\n\n{rendered.email.text}",
        f"{stem}.slack.json": json.dumps(rendered.slack, ensure_ascii=False, indent=2),
    }
    paths = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    if rendered.message.email is not None:
        (folder / f"{stem}.eml").write_bytes(rendered.message.email.as_bytes())
        paths.append(folder / f"{stem}.eml")
    return paths
