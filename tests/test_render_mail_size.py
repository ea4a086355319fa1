"""The HTML part of a digest stays under Gmail's clipping size at every digest size the settings allow."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from digest.config import load_settings
from digest.deliver.mime import email_message
from digest.models import Paper
from digest.rank import Pick
from digest.render import digest_context, make_message
from digest.signing import links_for
from digest.subscribers.fields import MAX_DIGEST_SIZE, MAX_KEYWORD_CHARS, MAX_KEYWORDS

# Gmail shows "[Message clipped]" and hides the rest (the footer's unsubscribe link too) past ~102 KB.
GMAIL_CLIPS_AT = 100_000
DAY = dt.date(2025, 6, 30)


def longest_picks(count: int, text: str) -> list[Pick]:
    """Papers whose every shown field is as long as the renderer lets it be, with the biggest ids."""
    papers = [
        Paper(
            id=2**62 + n,
            title=(text * 100)[:1000],
            arxiv_id=f"2506.{n:05d}",
            authors=[f"Author {text} number {i}" for i in range(40)],
            abstract=text * 400,
        )
        for n in range(count)
    ]
    return [Pick(paper, 0.9, f"matches your keywords {text * 60}") for paper in papers]


def html_bytes(settings, count: int, text: str) -> int:  # type: ignore[no-untyped-def]
    subscriber = SimpleNamespace(id=2**62, keywords=["k" * MAX_KEYWORD_CHARS] * MAX_KEYWORDS)
    context = digest_context(subscriber, longest_picks(count, text), links_for(settings), DAY)
    message = email_message(settings, "reader@example.org", make_message("digest", context), {})
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    # As sent: after its transfer encoding (quoted-printable here), which only ever adds bytes.
    return max(len(html.get_payload().encode("ascii")), len(html.get_content().encode("utf-8")))


@pytest.fixture
def long_url_settings(data_dir):  # type: ignore[no-untyped-def]
    base = "https://papers.digest.example-university.org/lab"
    return load_settings(data_dir=data_dir, secret_key="k" * 64, base_url=base)


@pytest.mark.parametrize("count", [1, 10, 20, 21, 35, MAX_DIGEST_SIZE])
@pytest.mark.parametrize("text", ["transformers for R&D ", "apprentissage été très "])
def test_the_html_part_stays_under_gmails_clipping_size(long_url_settings, count, text) -> None:
    assert html_bytes(long_url_settings, count, text) < GMAIL_CLIPS_AT


def test_the_largest_digest_is_listed_compactly_but_keeps_every_pick_and_its_votes(long_url_settings) -> None:
    subscriber = SimpleNamespace(id=7, keywords=["diffusion"])
    picks = longest_picks(MAX_DIGEST_SIZE, "word ")
    html = make_message("digest", digest_context(subscriber, picks, links_for(long_url_settings), DAY)).html
    assert html.count("👍 More like this") == html.count("👎 Less like this") == MAX_DIGEST_SIZE
    assert "Unsubscribe" in html and 'class="excerpt"' not in html
