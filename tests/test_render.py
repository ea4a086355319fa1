from __future__ import annotations

import datetime as dt
import json
import os
import re
import types
from pathlib import Path

import pytest
import time_machine
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from digest.config import load_settings
from digest.deliver.mime import email_message, unsubscribe_headers
from digest.models import Paper
from digest.rank import Pick
from digest.render import (
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_CHARS,
    TEMPLATES_DIR,
    digest_context,
    inline_css,
    make_message,
    mrkdwn_escape,
    preinline,
    short_authors,
    shorten,
    slack_message,
)
from digest.signing import Signer, links_for

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
FROZEN = dt.datetime(2025, 6, 30, 6, 0, tzinfo=dt.UTC)
DAY = dt.date(2025, 6, 30)
SECRET = "golden-secret-key-fixed-for-tests"
HOSTILE = "Attack <script>alert(1)</script> <@U123> <!channel> & <b>co</b>"


def paper(pid: int, title: str, arxiv_id: str | None = None, authors=(), abstract: str = "") -> Paper:  # type: ignore[no-untyped-def]
    return Paper(id=pid, title=title, arxiv_id=arxiv_id, authors=list(authors), abstract=abstract)


def sample_picks() -> list[Pick]:
    return [
        Pick(
            paper(
                11,
                "Diffusion models for fast text to speech synthesis",
                "2506.00001",
                ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
                "We train a diffusion model that turns text into natural speech in few denoising steps. " * 5,
            ),
            0.82,
            "matches your keywords 'diffusion' and 'speech synthesis'",
        ),
        Pick(
            paper(12, "Robot grasping from tactile feedback", None, [], "A robot arm learns to grasp."),
            0.41,
            "close to 'Dexterous manipulation', which you liked",
        ),
    ]


@pytest.fixture
def golden_settings(data_dir):  # type: ignore[no-untyped-def]
    return load_settings(
        data_dir=data_dir,
        secret_key=SECRET,
        base_url="https://digest.example.org",
        mail_from="Digest <digest@example.org>",
    )


def subscriber(sid: int = 7, keywords=("diffusion", "speech synthesis")):  # type: ignore[no-untyped-def]
    return types.SimpleNamespace(id=sid, keywords=list(keywords))


def context_for(settings, picks, sid: int = 7):  # type: ignore[no-untyped-def]
    return digest_context(subscriber(sid), picks, links_for(settings), DAY)


def normalise_eml(raw: bytes) -> str:
    text = raw.decode()
    text = re.sub(r"Message-ID: <[^>]+>", "Message-ID: <fixed@example.org>", text)
    boundaries = sorted(set(re.findall(r'boundary="([^"]+)"', text)))
    for number, boundary in enumerate(boundaries):
        text = text.replace(boundary, f"BOUNDARY-{number}")
    return text


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {name} was missing and has been written; check it and re-run")
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs (UPDATE_GOLDEN=1 rewrites it)"


# --- golden files ----------------------------------------------------------------------------------------


@time_machine.travel(FROZEN, tick=False)
def test_digest_email_matches_the_golden_eml(golden_settings):
    context = context_for(golden_settings, sample_picks())
    content = make_message("digest", context)
    headers = unsubscribe_headers(context["unsubscribe_url"])
    message = email_message(
        golden_settings, "ada@example.org", content, headers, now=FROZEN.replace(tzinfo=None)
    )
    check_golden("digest.eml", normalise_eml(message.as_bytes()))


@time_machine.travel(FROZEN, tick=False)
def test_digest_slack_payload_matches_the_golden_json(golden_settings):
    payload = slack_message(context_for(golden_settings, sample_picks()))
    check_golden("digest.slack.json", json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


# --- content ---------------------------------------------------------------------------------------------


def test_each_pick_links_its_paper_authors_why_and_both_votes(settings):
    context = context_for(settings, sample_picks())
    content = make_message("digest", context)
    for part in (content.text, content.html):
        assert "https://huggingface.co/papers/2506.00001" in part
        assert "http://digest.test/papers/12" in part  # no arXiv id: our own paper page
        assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in part
        assert part.count("/feedback/") == 4
        assert "/preferences/" in part and "/unsubscribe/" in part
        assert "which you liked" in part
    assert "https://arxiv.org/abs/2506.00001" in content.html
    assert content.subject.startswith("2 new papers for you (30 Jun): Diffusion models")


def test_feedback_links_carry_tokens_for_that_subscriber_paper_and_vote(settings):
    view = context_for(settings, sample_picks(), sid=42)["picks"][0]
    signer = Signer(settings.secret)
    up = signer.loads(view.up_url.rsplit("/", 1)[1], {"up", "down"})
    down = signer.loads(view.down_token, {"up", "down"})
    assert (up.action, up.subscriber_id, up.paper_id) == ("up", 42, 11)
    assert (down.action, down.subscriber_id, down.paper_id) == ("down", 42, 11)


def test_html_is_inlined_table_layout_with_dark_mode_and_a_fluid_container(settings):
    html = make_message("digest", context_for(settings, sample_picks())).html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert 'role="presentation"' in html and "max-width: 600px" in html
    # The stylesheet's rules were inlined onto the elements (Gmail drops most <style> rules).
    assert re.search(r'<a class="vote" href="[^"]+" style="[^"]*border-radius[^"]*">👍', html)
    assert re.search(r'<p class="why" style="[^"]*background-color: #e9f5ec', html)


# --- CSS inlined once, at template load ------------------------------------------------------------------


def inlined_after_render(name: str, context: dict) -> str:  # type: ignore[type-arg]
    """The reference: render the template as written, then run css-inline on the page (per message)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return str(inline_css(env.get_template(name).render(context)))


@pytest.mark.parametrize("picks", ["sample_picks", "hostile_picks", "no_picks"])
def test_html_inlined_at_load_is_the_html_inlined_after_each_render(settings, picks):
    chosen = {"sample_picks": sample_picks, "hostile_picks": hostile_picks, "no_picks": list}[picks]()
    context = digest_context(subscriber(keywords=["it's", 'a "b" & <c>']), chosen, links_for(settings), DAY)
    content = make_message("digest", context)
    expected = inlined_after_render("email/digest/body.html", {**context, "subject": content.subject})
    # Jinja escapes ' and " as &#39; and &#34;; css-inline's serialiser writes them as ' and &quot;/":
    # the same characters, so the same page.
    assert content.html.replace("&#39;", "'").replace("&#34;", '"') == expected.replace("&quot;", '"')


def test_the_digest_template_is_inlined_once_at_load_not_per_message():
    source = (TEMPLATES_DIR / "email/digest/body.html").read_text()
    inlined = preinline(source.removesuffix("\n"))
    assert inlined is not None  # (preinline raises when a template cannot be inlined at load)
    assert '<p class="why" style="margin: 0 0 12px 0;' in inlined and "{{ pick.why }}" in inlined
    assert ".why {" not in inlined.split("@media")[0]  # plain rules left <style>; @media rules stayed


@pytest.mark.parametrize("kind", ["confirm", "manage"])
def test_the_confirm_email_inlined_at_load_is_the_html_inlined_after_each_render(settings, kind):
    shipped = {path.parent.name for path in (TEMPLATES_DIR / "email").glob("*/body.html")}
    assert shipped == {"digest", "confirm"}  # a new email template needs a test like this one
    url = f"{settings.base_url}/confirm/a.b?c=1&d='e'"
    context = {"kind": kind, "action_url": url, "keywords": [HOSTILE, "it's"], "base_url": settings.base_url}
    content = make_message("confirm", context)
    expected = inlined_after_render("email/confirm/body.html", {**context, "subject": content.subject})
    assert content.html.replace("&#39;", "'").replace("&#34;", '"') == expected.replace("&quot;", '"')


def test_a_template_whose_jinja_tags_css_inline_would_move_fails_to_load():
    with pytest.raises(ValueError, match="Jinja tag"):
        preinline("<html><head><title>{% if a %}x{% endif %}</title></head><body></body></html>")


def test_helpers_shorten_text_and_author_lists():
    assert short_authors(["A", "B", "C"]) == "A, B, C"
    assert short_authors(["A", "B", "C", "D"]) == "A, B, C et al."
    assert short_authors([]) == ""
    assert shorten("one two three four", 10) == "one two…"
    assert shorten("  spaced \n  out ", 50) == "spaced out"


def test_unknown_or_unsafe_template_kinds_are_refused():
    with pytest.raises(ValueError):
        make_message("../web/index", {})


# --- escaping --------------------------------------------------------------------------------------------


def hostile_picks() -> list[Pick]:
    return [Pick(paper(5, HOSTILE, "2506.99999", [HOSTILE], HOSTILE), 1.0, f"because {HOSTILE}")]


def test_hostile_title_is_inert_in_html(settings):
    html = make_message("digest", context_for(settings, hostile_picks())).html
    assert "<script>" not in html and "<b>co</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_title_is_plain_text_in_the_text_part_and_subject(settings):
    content = make_message("digest", context_for(settings, hostile_picks()))
    assert HOSTILE in content.text  # text/plain: shown as typed, nothing interprets it
    assert "\n" not in content.subject


def test_hostile_title_cannot_mention_or_format_in_slack(settings):
    payload = slack_message(context_for(settings, hostile_picks()))
    dumped = json.dumps(payload)
    for raw in ("<!channel>", "<@U123>", "<script>", "<b>"):
        assert raw not in dumped
    assert "&lt;!channel&gt;" in payload["text"] and "&lt;@U123&gt;" in dumped
    assert mrkdwn_escape("a & <b>") == "a &amp; &lt;b&gt;"


# --- Slack limits ----------------------------------------------------------------------------------------


def test_slack_rich_layout_has_vote_buttons_with_signed_values(settings):
    picks = sample_picks()
    payload = slack_message(context_for(settings, picks, sid=3))
    actions = [block for block in payload["blocks"] if block["type"] == "actions"]
    assert len(actions) == len(picks)
    signer = Signer(settings.secret)
    for block, pick in zip(actions, picks, strict=True):
        up, down = block["elements"]
        assert (up["action_id"], down["action_id"]) == ("vote_up", "vote_down")
        assert signer.loads(up["value"], {"up"}).paper_id == pick.paper.id
        assert signer.loads(down["value"], {"down"}).subscriber_id == 3
    assert payload["text"].startswith("2 new papers for you")


@pytest.mark.parametrize("size", [1, 23, 24, 50])
def test_slack_payload_stays_within_block_kit_limits_even_for_huge_papers(settings, size):
    long = "word " * 2000
    picks = [Pick(paper(i, f"{i} {long}", f"2506.{i:05d}", [long] * 8, long), 0.5, long) for i in range(size)]
    payload = slack_message(context_for(settings, picks))
    blocks = payload["blocks"]
    assert len(blocks) <= SLACK_MAX_BLOCKS
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert texts and all(len(text) <= SLACK_SECTION_CHARS for text in texts)
    assert len(payload["text"]) <= SLACK_SECTION_CHARS
    assert len(blocks[0]["text"]["text"]) <= 150
    shown = " ".join(texts)
    assert all(f"*{i + 1}. <" in shown for i in range(size))  # every pick is in the message
    for block in blocks:
        for element in block.get("elements", []):
            assert len(element.get("value", "")) <= 2000


# --- the HTML in a real browser --------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium")
def test_html_email_reads_well_at_phone_and_desktop_widths_in_chromium(settings):
    sync_api = pytest.importorskip("playwright.sync_api")
    picks = sample_picks() + [Pick(paper(13, "A" * 60 + " unbroken", None, [], "x " * 200), 0.3, "why")]
    html = make_message("digest", context_for(settings, picks)).html
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            for width, scheme in ((360, "light"), (800, "light"), (360, "dark")):
                page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
                page.set_content(html)
                page.screenshot(path=str(ARTIFACTS / f"digest-email-{width}-{scheme}.png"), full_page=True)
                # Readable at a phone's width means no sideways scrolling.
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                assert page.locator("text=👍 More like this").count() == len(picks)
                page.close()
        finally:
            browser.close()
