"""Subscribers' digests: their picks rendered into the message for each one's own channel; and a preview.

``compose_many`` composes a chunk of subscribers from one pick (``digest.rank.pick_many``: the day's window
read once); only a subscriber's own channel is rendered (an email for mail, a Block Kit payload for Slack),
except in a preview, which shows both."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from digest.calendar import digest_date_for
from digest.config import Settings
from digest.db import Database
from digest.deliver.base import Outgoing, delivery_key
from digest.deliver.mime import email_message, unsubscribe_headers
from digest.models import Channel, Subscriber, utcnow
from digest.rank import Pick, pick_many
from digest.rank.window import Window
from digest.render import EmailContent, digest_context, make_message, slack_message
from digest.signing import links_for


@dataclasses.dataclass
class RenderedDigest:
    """A digest ready to send: picks, the template context, and the message for the subscriber's channel
    (``email`` / ``slack``: the rendered content of that channel, both in a preview)."""

    subscriber_id: int
    channel: Channel
    paper_ids: list[int]
    picks: list[Pick]
    context: dict[str, Any]
    email: EmailContent | None
    slack: dict[str, Any] | None
    message: Outgoing


def compose_many(
    session: Session,
    settings: Settings,
    subscribers: Sequence[Subscriber],
    dates: Sequence[dt.date],
    now: dt.datetime,
    *,
    both: bool = False,
    window: Window | None = None,
) -> list[RenderedDigest]:
    """Pick and render each subscriber's digest for their date (no ledger writes): what a send would send.
    ``both``: render the email and the Slack payload whatever the channel (a preview)."""
    picks = pick_many(session, settings, subscribers, now=now, window=window)
    return compose_picks(settings, subscribers, picks, dates, now, both=both)


def compose_picks(
    settings: Settings,
    subscribers: Sequence[Subscriber],
    picks: Sequence[list[Pick]],
    dates: Sequence[dt.date],
    now: dt.datetime,
    *,
    both: bool = False,
) -> list[RenderedDigest]:
    """Render already picked digests, each for its subscriber's own channel (both with ``both``)."""
    links = links_for(settings)
    return [
        _rendered(settings, subscriber, found, digest_context(subscriber, found, links, day), now, both)
        for subscriber, found, day in zip(subscribers, picks, dates, strict=True)
    ]


def render_digest(
    session: Session, settings: Settings, subscriber: Subscriber, digest_date: dt.date, now: dt.datetime
) -> RenderedDigest:
    """One subscriber's digest, as ``compose_many`` composes it."""
    return compose_many(session, settings, [subscriber], [digest_date], now)[0]


def _rendered(
    settings: Settings,
    subscriber: Subscriber,
    picks: list[Pick],
    context: dict[str, Any],
    now: dt.datetime,
    both: bool,
) -> RenderedDigest:
    email = make_message("digest", context) if both or subscriber.channel == Channel.EMAIL else None
    slack = slack_message(context) if both or subscriber.channel != Channel.EMAIL else None
    return RenderedDigest(
        subscriber_id=subscriber.id,
        channel=subscriber.channel,
        paper_ids=[pick.paper.id for pick in picks],
        picks=list(picks),
        context=context,
        email=email,
        slack=slack,
        message=_outgoing(settings, subscriber, email, slack, context, now),
    )


def _outgoing(
    settings: Settings,
    subscriber: Subscriber,
    content: EmailContent | None,
    slack: dict[str, Any] | None,
    context: dict[str, Any],
    now: dt.datetime,
) -> Outgoing:
    label = f"digest-{subscriber.id}-{context['digest_date']}"
    key = delivery_key(subscriber.id, context["digest_date"])
    if subscriber.channel == Channel.EMAIL:
        assert content is not None
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
        day = digest_date or digest_date_for(subscriber, now)
        return compose_many(session, settings, [subscriber], [day], now, both=True)[0]


def write_preview(rendered: RenderedDigest, folder: Path) -> list[Path]:
    """The digest as files to look at (nothing recorded): HTML, text, the .eml and the Slack payload."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"digest-{rendered.subscriber_id}-{rendered.context['digest_date']}"
    assert rendered.email is not None and rendered.slack is not None, "a preview renders both channels"
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
