"""A subscriber's picks as an Atom feed (RFC 4287), written by feedgen, for those who read in a feed reader.

One entry per delivered pick, newest digest first: the paper's title and link, its authors, and as content
why it was picked, its abstract and the 👍/👎 links of the digest. An entry's id is the paper's page on this
site (a paper is never sent twice to one subscriber) and its time the delivery's, so a reader shows each
pick once, when its digest went out.
"""

from __future__ import annotations

import datetime as dt
import types

from feedgen.feed import FeedGenerator
from markupsafe import Markup
from sqlalchemy.orm import Session

from digest import __version__
from digest.models import Subscriber
from digest.render import PickView, pick_view
from digest.signing import Links
from digest.subscribers.history import Listed, recent_picks

FEED_ENTRIES = 100


def atom_feed(session: Session, links: Links, subscriber: Subscriber, self_url: str) -> bytes:
    """The feed document of the subscriber's latest ``FEED_ENTRIES`` picks."""
    listed = recent_picks(session, subscriber.id, limit=FEED_ENTRIES)
    generator = FeedGenerator()
    generator.id(self_url)
    generator.title(f"Paper digest · {', '.join(subscriber.keywords or []) or 'your library'}")
    generator.subtitle("New papers picked for you, each with why it was picked")
    generator.link(href=self_url, rel="self", type="application/atom+xml")
    generator.link(href=links.archive(subscriber.id), rel="alternate", type="text/html")
    generator.author({"name": "digest"})
    generator.generator("digest", version=__version__)
    generator.updated(_utc(listed[0].sent_at) if listed else _utc(subscriber.created_at))
    for item in listed:
        _entry(generator, item, pick_view(_pick(item), subscriber.id, links), links)
    return generator.atom_str(pretty=True)


def _pick(item: Listed) -> types.SimpleNamespace:
    return types.SimpleNamespace(paper=item.paper, score=0.0, why=item.why)


def _entry(generator: FeedGenerator, item: Listed, view: PickView, links: Links) -> None:
    entry = generator.add_entry(order="append")
    entry.id(links.paper(item.paper.id))
    entry.title(view.title)
    entry.link(href=view.url, rel="alternate", type="text/html")
    entry.published(_utc(item.sent_at))
    entry.updated(_utc(item.sent_at))
    for name in item.paper.authors or []:
        entry.author({"name": name})
    entry.content(_content(item, view), type="html")


def _content(item: Listed, view: PickView) -> str:
    parts = [Markup("<p><strong>Why this pick:</strong> {}</p>").format(view.why)] if view.why else []
    if item.paper.abstract:
        parts.append(Markup("<p>{}</p>").format(item.paper.abstract))
    if view.arxiv_url:
        parts.append(Markup('<p><a href="{}">arXiv:{}</a></p>').format(view.arxiv_url, view.arxiv_id))
    parts.append(
        Markup('<p><a href="{}">👍 More like this</a> · <a href="{}">👎 Less like this</a></p>').format(
            view.up_url, view.down_url
        )
    )
    return str(Markup("").join(parts))


def _utc(moment: dt.datetime) -> dt.datetime:
    """Stored times are naive UTC; feedgen wants them zoned."""
    return moment.replace(tzinfo=dt.UTC)
