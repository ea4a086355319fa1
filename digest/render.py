"""Rendering: the Jinja environments and what they produce (email subject/text/HTML, Slack Block Kit).

Two environments, because the outputs escape differently:

* ``html``: autoescape on, so a title like ``<script>`` arrives as text. The HTML email templates have
  their stylesheet inlined with css-inline (Gmail and Outlook drop or ignore ``<style>`` in many cases);
  only ``@media`` rules (dark mode, narrow screens) stay in a ``<style>`` block. The inlining is done once,
  on the template source, when it is loaded (:func:`preinline`): the styles an element gets depend only on
  its tag, classes and ancestors, which the template fixes, and autoescaped data cannot add elements.
* ``text``: no autoescape, for the plain-text part and for Slack. Plain text needs no escaping; Slack
  ``mrkdwn`` needs ``&``, ``<`` and ``>`` replaced by entities (Slack's "Escaping text" guide), which the
  ``mrkdwn`` filter does, so ``<!channel>`` or ``<@U123>`` in a title cannot ping anyone.

Every template gets ``StrictUndefined``: a misspelt variable fails the render instead of sending a blank.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
import textwrap
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.ext import Extension

from digest.signing import Links

# templates/ ships inside the package (pyproject.toml maps it to digest.templates); an installed package is
# a directory, which FileSystemLoader reads.
TEMPLATES_DIR = Path(str(resources.files("digest.templates")))
KIND = re.compile(r"^[a-z][a-z0-9_]*$")
EXCERPT_CHARS = 280
TITLE_CHARS = 300
WHY_CHARS = 300
AUTHORS_CHARS = 200
MAX_AUTHORS = 3
# Slack Block Kit limits (https://api.slack.com/reference/block-kit/blocks): 50 blocks per message,
# 3,000 characters per section text, 150 per header, 2,000 per button value.
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_CHARS = 3000
SLACK_HEADER_CHARS = 150
SLACK_VALUE_CHARS = 2000
SLACK_FIXED_BLOCKS = 4  # header, intro context, divider, footer context


@dataclasses.dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


class PickLike(Protocol):
    paper: Any
    score: float
    why: str


@dataclasses.dataclass(frozen=True)
class PickView:
    """One pick as the templates see it: display strings and ready-made links, nothing to compute."""

    paper_id: int
    title: str
    url: str
    arxiv_id: str | None
    arxiv_url: str | None
    authors: str
    excerpt: str
    why: str
    up_url: str
    down_url: str
    up_token: str
    down_token: str


# --- environments ---------------------------------------------------------------------------------------


def mrkdwn_escape(value: object) -> str:
    """Slack's three control characters as entities.

    Slack's "Escaping text" guide (api.slack.com/reference/surfaces/formatting#escaping): replace ``&``,
    ``<`` and ``>`` and nothing else; then ``<!channel>`` or ``<@U123>`` is shown, not acted on.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_url(value: object) -> str:
    """A URL safe inside Slack's ``<url|label>``: ``|`` and ``>`` would end it early."""
    return mrkdwn_escape(quote(str(value), safe=":/?#[]@!$&'()*+,;=%~-._"))


@cache
def html_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        extensions=[PreInlinedCss],  # email/**.html: CSS inlined once, as the template is loaded
        auto_reload=False,  # templates ship with the code; no stat() per render
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def text_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        auto_reload=False,
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["mrkdwn"] = mrkdwn_escape
    env.filters["slack_url"] = slack_url
    return env


def make_message(kind: str, context: dict[str, Any]) -> EmailContent:
    """Render ``templates/email/<kind>/{subject.txt, body.txt, body.html}``; the HTML has its CSS inlined."""
    if not KIND.match(kind):
        raise ValueError(f"bad template kind {kind!r}")
    folder = f"email/{kind}"
    subject = " ".join(text_environment().get_template(f"{folder}/subject.txt").render(context).split())
    text = text_environment().get_template(f"{folder}/body.txt").render(context)
    html = html_environment().get_template(f"{folder}/body.html").render({**context, "subject": subject})
    return EmailContent(subject=subject, text=text, html=html)


# --- CSS inlined once, when a template is loaded --------------------------------------------------------

# Inlining every rendered digest would cost more than rendering it (bench_send prints both), so the template
# source is inlined once, as it is loaded.
_JINJA_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.DOTALL)


class PreInlinedCss(Extension):
    """Jinja extension: ``email/**.html`` templates get their stylesheet inlined as they are loaded."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is None or not (name.startswith("email/") and name.endswith(".html")):
            return source
        if not self.environment.keep_trailing_newline:  # drop it as Jinja would: css-inline puts it in <body>
            source = re.sub(r"(\r\n|\r|\n)\Z", "", source)
        return preinline(source)


def inline_css(html: str) -> str:
    """css-inline on a whole page, with the options every email gets."""
    return _inliner().inline(html)


@cache
def _inliner() -> css_inline.CSSInliner:
    # keep_at_rules: @media (dark mode, small screens) cannot be inlined and must survive in <style>.
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def preinline(source: str) -> str:
    """The Jinja template ``source`` with its stylesheet inlined by css-inline.

    Jinja tags are swapped for markers css-inline passes through (statements for HTML comments, which may
    stand between table rows; expressions for a word), the page is inlined, and the tags are put back.
    Exact where each block holds whole elements and no selector depends on what is rendered (``li + li``);
    tests/test_render.py checks the shipped templates against inlining after each render.
    """
    marker = f"jinja{secrets.token_hex(6)}"
    tags: list[str] = []

    def swap(match: re.Match[str]) -> str:
        tags.append(match.group())
        expression = match.group().startswith("{{")
        return f"{marker}e{len(tags) - 1}_" if expression else f"<!--{marker}s{len(tags) - 1}_-->"

    inlined = inline_css(_JINJA_TAG.sub(swap, source))
    markers = re.compile(rf"<!--{marker}s(\d+)_-->|{marker}e(\d+)_")
    if [int(a or b) for a, b in markers.findall(inlined)] != list(range(len(tags))):
        raise ValueError("css-inline dropped or moved a Jinja tag (a {% %} in <title> or a comment?)")
    return markers.sub(lambda m: tags[int(m[1] or m[2])], inlined)


# --- the digest's view model ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)  # a day's digests share their papers: the same abstracts, again and again
def shorten(text: str | None, limit: int) -> str:
    """Whitespace collapsed, cut at a word boundary with an ellipsis."""
    flat = " ".join((text or "").split())
    # Text that fits (most of it) skips building a TextWrapper, many times the cost (bench_send prints both).
    return flat if len(flat) <= limit else textwrap.shorten(flat, limit, placeholder="…")


def short_authors(authors: Sequence[str] | None) -> str:
    names = [" ".join(str(name).split()) for name in (authors or []) if str(name).strip()]
    if len(names) > MAX_AUTHORS:
        return ", ".join(names[:MAX_AUTHORS]) + " et al."
    return ", ".join(names)


def pick_view(pick: PickLike, subscriber_id: int, links: Links) -> PickView:
    paper = pick.paper
    arxiv_id = (paper.arxiv_id or "").strip() or None
    quoted = quote(arxiv_id, safe="") if arxiv_id else None
    up, down = (links.signer.dumps(v, subscriber_id, paper.id) for v in ("up", "down"))
    return PickView(
        paper_id=paper.id,
        title=shorten(paper.title, TITLE_CHARS),
        # The Hugging Face page when the arXiv id is known (abstract, discussion, code); else our own page.
        url=f"https://huggingface.co/papers/{quoted}" if quoted else links.paper(paper.id),
        arxiv_id=arxiv_id,
        arxiv_url=f"https://arxiv.org/abs/{quoted}" if quoted else None,
        authors=shorten(short_authors(paper.authors), AUTHORS_CHARS),
        excerpt=shorten(paper.abstract, EXCERPT_CHARS),
        why=shorten(pick.why, WHY_CHARS),
        up_url=f"{links.base_url}/feedback/{up}",
        down_url=f"{links.base_url}/feedback/{down}",
        up_token=up,
        down_token=down,
    )


def digest_context(
    subscriber: Any, picks: Sequence[PickLike], links: Links, digest_date: dt.date
) -> dict[str, Any]:
    """Everything the digest templates (email and Slack) read."""
    return {
        "picks": [pick_view(pick, subscriber.id, links) for pick in picks],
        "digest_date": digest_date,
        "date_label": f"{digest_date:%A} {digest_date.day} {digest_date:%B %Y}",
        "short_date": f"{digest_date.day} {digest_date:%b}",
        "keywords": list(subscriber.keywords or []),
        # What the picks answer: the keywords, or the library of a subscriber who gave none.
        "picked_for": ", ".join(subscriber.keywords or []) or "your library",
        "archive_url": links.archive(subscriber.id, digest_date),
        "preferences_url": links.preferences(subscriber.id),
        "unsubscribe_url": links.unsubscribe(subscriber.id),
        "base_url": links.base_url,
    }


# --- Slack ---------------------------------------------------------------------------------------------


def slack_message(context: dict[str, Any]) -> dict[str, Any]:
    """Block Kit payload (``text`` fallback + ``blocks``) for a digest, always within Slack's limits.

    Up to 23 picks get a section and a 👍/👎 button row each (buttons post signed tokens to the web app's
    /slack/actions). Bigger digests would pass 50 blocks, so their picks are packed several to a section with
    👍/👎 as links to the web feedback pages instead.
    """
    env = text_environment()
    picks: list[PickView] = context["picks"]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": _plain(env.get_template("slack/header.txt.j2").render(context), SLACK_HEADER_CHARS),
        },
        {"type": "context", "elements": [_mrkdwn(env.get_template("slack/intro.mrkdwn.j2").render(context))]},
    ]
    if SLACK_FIXED_BLOCKS + 2 * len(picks) <= SLACK_MAX_BLOCKS:
        blocks += [block for index, pick in enumerate(picks, 1) for block in _rich_pick(env, pick, index)]
    else:
        blocks += _packed_picks(env, picks)
    blocks.append({"type": "divider"})
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(env.get_template("slack/footer.mrkdwn.j2").render(context))]}
    )
    text = env.get_template("slack/fallback.txt.j2").render(context).strip()
    return {"text": _fit(text, SLACK_SECTION_CHARS), "blocks": blocks}


def _rich_pick(env: Environment, pick: PickView, index: int) -> list[dict[str, Any]]:
    section = env.get_template("slack/pick.mrkdwn.j2").render(pick=pick, index=index, compact=False)
    buttons = [
        _button("👍 More like this", "vote_up", pick.up_token, "primary"),
        _button("👎 Less like this", "vote_down", pick.down_token, None),
    ]
    return [
        {"type": "section", "block_id": f"pick-{pick.paper_id}", "text": _mrkdwn(section)},
        {"type": "actions", "block_id": f"vote-{pick.paper_id}", "elements": buttons},
    ]


def _packed_picks(env: Environment, picks: Sequence[PickView]) -> list[dict[str, Any]]:
    template = env.get_template("slack/pick.mrkdwn.j2")
    sections: list[str] = []
    for index, pick in enumerate(picks, 1):
        # At most half a section each, so two always fit: 50 picks need at most 25 sections.
        text = _fit(
            template.render(pick=pick, index=index, compact=True).strip(), SLACK_SECTION_CHARS // 2 - 2
        )
        if sections and len(sections[-1]) + 2 + len(text) <= SLACK_SECTION_CHARS:
            sections[-1] += "\n\n" + text
        else:
            sections.append(text)
    return [{"type": "section", "text": _mrkdwn(section)} for section in sections]


def _button(label: str, action_id: str, value: str, style: str | None) -> dict[str, Any]:
    if len(value) > SLACK_VALUE_CHARS:
        raise ValueError("signed button value longer than Slack allows")
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": label, "emoji": True},
    }
    if style:
        button["style"] = style
    return button


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _fit(text.strip(), SLACK_SECTION_CHARS)}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _fit(" ".join(text.split()), limit), "emoji": True}


def _fit(text: str, limit: int) -> str:
    """Last-resort cut at a line break (fields are already shortened, so this should not trigger)."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    return (head.rsplit("\n", 1)[0] if "\n" in head else head) + "…"
