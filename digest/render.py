"""Rendering: the Jinja environments and what they produce (email subject/text/HTML, Slack Block Kit).

Two environments, because the outputs escape differently:

* ``html``: autoescape on, so a title like ``<script>`` arrives as text. The HTML email templates have
  their stylesheet inlined with css-inline: Gmail and Outlook drop or ignore ``<style>`` in many cases, so
  every rule that can live in a ``style=""`` attribute does; only ``@media`` rules (dark mode, narrow
  screens) stay in a ``<style>`` block, where clients that understand them read them. The inlining is done
  **once, on the template source, when it is loaded** (:func:`preinline`), not on every rendered message:
  the styles an element gets depend only on its tag, classes and ancestors, which the template fixes, and
  autoescaped data cannot add elements. A template that does not meet the conditions that make this
  exact (see :func:`preinline`) is inlined after every render instead, as before.
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
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import css_inline
from jinja2 import BaseLoader, Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

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
    env = Environment(
        # email/**/*.html come out of the loader with their CSS already inlined (see preinline()).
        loader=InliningLoader(FileSystemLoader(TEMPLATES_DIR), lambda name: name.startswith("email/")),
        auto_reload=False,  # templates ship with the code; no stat() per render
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters[INLINE_FILTER] = inline_css
    return env


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


@cache
def _inliner() -> css_inline.CSSInliner:
    # keep_at_rules: @media (dark mode, small screens) cannot be inlined and must survive in <style>.
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


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

INLINE_FILTER = "inline_css"
_JINJA = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.DOTALL)
_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)  # no end tag
# Jinja statements whose effect on the markup pre-inlining can follow: blocks that keep or drop, or
# repeat, a run of whole elements. Anything else (include, extends, macro, call, block set…) → per render.
_OPENS, _MIDDLES, _CLOSES = {"for", "if", "with"}, {"elif", "else"}, {"endfor", "endif", "endwith"}
# Selectors whose match depends on the rendered document rather than on the template: siblings (+ ~),
# pseudo-classes (:first-child, :nth-child, :empty, :not…), attribute values ([href^=…]).
_RUNTIME_SELECTOR = re.compile(r"[+~:\[]")


def inline_css(html: str) -> Markup:
    """The ``inline_css`` filter: css-inline on rendered HTML (the fallback when pre-inlining is unsafe)."""
    return Markup(_inliner().inline(str(html)))


class InliningLoader(BaseLoader):
    """Wraps a loader; the HTML templates it selects come back with their CSS inlined (see preinline()).

    A template that cannot be pre-inlined exactly is wrapped in ``{% filter inline_css %}`` instead, so
    its CSS is inlined after each render: slower, never wrong.
    """

    def __init__(self, inner: BaseLoader, selects: Callable[[str], bool]) -> None:
        self.inner = inner
        self.selects = selects

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Any]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        if self.selects(template) and template.endswith(".html"):
            if not environment.keep_trailing_newline and source.endswith("\n"):
                source = source[:-2] if source.endswith("\r\n") else source[:-1]  # as Jinja would
            inlined = preinline(source)
            source = (
                inlined if inlined is not None else f"{{% filter {INLINE_FILTER} %}}{source}{{% endfilter %}}"
            )
        return source, filename, uptodate


def preinline(source: str) -> str | None:
    """The Jinja template ``source`` with its stylesheet inlined by css-inline, or None if that is unsafe.

    Every Jinja tag is swapped for a marker (statements for HTML comments, expressions for a word), the
    page is inlined, and the tags are put back where the markers came out. That gives the same HTML as
    inlining every rendered page, provided the markup around the tags is what the HTML parser builds its
    tree from, unchanged. So this returns None, and the page is inlined per render, unless:

    * css-inline's parser reproduced the template's tags exactly: same start and end tags, in the same
      order, no element added or moved (write ``<tbody>``, close every element) and every marker back once,
      in order;
    * each ``{% for %}``/``{% if %}``/``{% with %}`` opens, branches and closes inside one and the same
      element, so it keeps, drops or repeats whole elements; no other statements (include, macro…);
    * no Jinja inside ``<style>``, a ``style``/``class``/``id`` attribute, or a tag's name or attribute
      names (the selectors would have matched other values);
    * no selector that depends on what is rendered: siblings (``+``, ``~``), pseudo-classes
      (``:first-child``…), attribute selectors.
    """
    marker = f"jinja{secrets.token_hex(6)}"
    tags: list[str] = []

    def swap(match: re.Match[str]) -> str:
        tags.append(match.group())
        kind = "s" if match.group().startswith(("{%", "{#")) else "e"
        name = f"{marker}{kind}{len(tags) - 1}x"
        return f"<!--{name}-->" if kind == "s" else name

    marked = _JINJA.sub(swap, source)
    before = _Tags(marker)
    before.feed(marked)
    before.close()
    if before.unsafe or not _static_selectors(before.stylesheet) or not _blocks_whole(before, tags):
        return None
    inlined = _inliner().inline(marked)
    after = _Tags(marker)
    after.feed(inlined)
    after.close()
    if _without_style(after.sequence) != _without_style(before.sequence):
        return None  # the parser added, dropped or moved an element
    if re.findall(rf"{marker}[se](\d+)x", inlined) != [str(i) for i in range(len(tags))]:
        return None  # a Jinja tag was dropped, repeated or moved
    restored = re.sub(rf"<!--{marker}s(\d+)x-->", lambda m: tags[int(m.group(1))], inlined)
    restored = re.sub(rf"{marker}e(\d+)x", lambda m: tags[int(m.group(1))], restored)
    return None if marker in restored else restored  # a statement marker that was not an HTML comment


class _Tags(HTMLParser):
    """A page's tags, in order, as (start|end|statement, name) — and whether Jinja sits anywhere unsafe."""

    def __init__(self, marker: str) -> None:
        super().__init__(convert_charrefs=False)
        self.marker = marker
        self.sequence: list[tuple[str, str]] = []
        self.stylesheet: list[str] = []
        self.unsafe = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sequence.append(("start", tag))
        self._in_style = tag == "style"
        self.unsafe |= self.marker in tag
        for name, value in attrs:
            self.unsafe |= self.marker in name
            self.unsafe |= name in ("style", "class", "id") and self.marker in (value or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        self.sequence.append(("end", tag))
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.stylesheet.append(data)
            self.unsafe |= self.marker in data

    def handle_comment(self, data: str) -> None:
        if data.startswith(self.marker):
            self.sequence.append(("statement", data))


def _without_style(sequence: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # css-inline writes the <style> it keeps (the @media rules) at the top of <head>.
    return [item for item in sequence if item[1] != "style"]


def _static_selectors(stylesheet: list[str]) -> bool:
    css = re.sub(r"/\*.*?\*/", "", " ".join(stylesheet), flags=re.DOTALL)
    selectors = [s.strip() for s in re.findall(r"([^{};]*)\{", css)]
    return not any(_RUNTIME_SELECTOR.search(s) for s in selectors if not s.startswith("@"))


def _blocks_whole(page: _Tags, tags: list[str]) -> bool:
    """Every Jinja block opens, branches and ends with the same open elements around it."""
    open_elements: list[str] = []
    blocks: list[tuple[str, tuple[str, ...]]] = []
    for kind, name in page.sequence:
        if kind == "start":
            if name not in _VOID:
                open_elements.append(name)
        elif kind == "end":
            if not open_elements or open_elements.pop() != name:
                return False
        else:
            tag = tags[int(name[len(page.marker) + 1 : -1])]
            if tag.startswith("{#"):
                continue
            words = tag.strip("{%}-+ \t\r\n").split(maxsplit=1) or [""]
            keyword, where = words[0], tuple(open_elements)
            if keyword in _OPENS:
                blocks.append((keyword, where))
            elif keyword in _MIDDLES or keyword in _CLOSES:
                if not blocks or blocks[-1][1] != where:
                    return False
                if keyword in _CLOSES and blocks.pop()[0] != keyword[3:]:
                    return False
            elif keyword != "set" or "=" not in tag:
                return False
    return not open_elements and not blocks


# --- the digest's view model ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def shorten(text: str | None, limit: int) -> str:
    """Collapse whitespace and cut at a word boundary with an ellipsis.

    Cached: a day's digests share their papers, so the same abstracts are shortened again and again.
    """
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0] if " " in flat[: limit - 1] else flat[: limit - 1]
    return cut.rstrip(" ,;:.") + "…"


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
