"""The messages the web app sends itself: the double opt-in confirmation and the "already subscribed" note.

Email goes through `digest.deliver.transports.send_email` (SMTP or the file outbox) with the
`templates/email/confirm` triplet. A Slack sign-up gets the same link posted through the Slack transport
to the destination it named (webhook or channel/member id; the outbox when no bot token is set), so
someone who reads that conversation confirms it: a web visitor cannot start a digest in a channel alone.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from digest.deliver.base import Outgoing
from digest.deliver.transports import Transports, send_email
from digest.models import Channel, Subscriber
from digest.render import make_message, mrkdwn_escape
from digest.web.site import Site

log = logging.getLogger(__name__)
Kind = Literal["confirm", "manage"]


class NoticeFailed(Exception):
    """The confirmation could not be handed to its transport (shown as a 503 page: try again later)."""


def send(site: Site, subscriber_id: int, kind: Kind) -> None:
    with site.db.session() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:  # deleted between sign-up and sending: nothing to tell anyone
            return
        links = site.links
        url = links.confirm(subscriber.id) if kind == "confirm" else links.preferences(subscriber.id)
        context = {
            "kind": kind,
            "action_url": url,
            "keywords": list(subscriber.keywords or []),
            "base_url": site.links.base_url,
        }
        channel, address = subscriber.channel, subscriber.email
    try:
        if channel == Channel.EMAIL and address:
            _send_email(site, address, context)
        else:
            _send_slack(site, subscriber, context)
    except Exception as exc:  # any transport failure: the visitor gets a clear "try again later"
        log.warning("could not send the %s notice to subscriber %s: %s", kind, subscriber_id, exc)
        raise NoticeFailed(str(exc)) from exc


def _send_email(site: Site, address: str, context: dict[str, object]) -> None:
    send_email(site.settings, address, make_message("confirm", context))


def _send_slack(site: Site, subscriber: Subscriber, context: dict[str, Any]) -> None:
    destination = subscriber.slack_webhook_url or subscriber.slack_channel or ""
    label = f"{context['kind']}-{subscriber.id}"
    message = Outgoing(subscriber.channel, destination, slack=slack_notice(context), label=label)
    transports = Transports(site.settings)
    try:
        transports.for_channel(subscriber.channel).send(message)
    finally:
        transports.close()


def slack_notice(context: dict[str, Any]) -> dict[str, Any]:
    """Block Kit for the notice: a line of text and a link button (opening the page; the page confirms)."""
    keywords = mrkdwn_escape(", ".join(context["keywords"]))
    if context["kind"] == "confirm":
        text = (
            f"Someone asked for a daily paper digest in this conversation, about *{keywords}*. "
            "Nothing is posted here until someone confirms."
        )
        label = "Confirm the digest"
    else:
        text = (
            "Someone tried to sign this conversation up again; it already has a paper digest. "
            "Nothing changed."
        )
        label = "Manage the digest"
    button = {"type": "button", "text": {"type": "plain_text", "text": label}, "url": context["action_url"]}
    return {
        "text": f"{text} {context['action_url']}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "elements": [button]},
        ],
    }
