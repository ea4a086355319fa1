"""Bad input anywhere on the web: every route, fed malformed bodies, tokens, paths and headers, answers a
4xx naming what was wrong (never a 5xx) and loses nothing stored. Seeded, so a failure reproduces."""

from __future__ import annotations

import random
from itertools import product
from urllib.parse import quote

import pytest
from itsdangerous import URLSafeTimedSerializer
from web_support import add_paper, add_subscriber, client_for, csrf_token, path_of, snapshot

from digest.signing import SALT, links_for

SEED = 16
TOKEN_ROUTES = ("/feedback/{}", "/preferences/{}", "/preferences/{}/pause", "/preferences/{}/resume")
TOKEN_ROUTES += ("/preferences/{}/delete", "/unsubscribe/{}", "/confirm/{}")
FORM_FIELDS = ("keywords", "excluded_keywords", "send_time", "timezone", "digest_size", "cadence", "email")
FORM_FIELDS += ("slack", "channel", "weekdays", "csrf_token", "List-Unsubscribe")


def nasty_values(rng: random.Random) -> list[str]:
    return [
        "",
        "\x00",
        "9" * 5000,
        "-1",
        "1e999",
        "NaN",
        "../../etc/passwd",
        "a" * 200_000,
        "Europe/Nowhere",
        "25:61",
        "<script>x</script>",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "".join(chr(rng.randrange(1, 0x2FFFF)) for _ in range(50))
        .encode("utf-8", "replace")
        .decode("utf-8", "replace"),
    ]


def signed_payloads(secret: str) -> list[str]:
    raw = URLSafeTimedSerializer(secret, salt=SALT)
    payloads = [["up", True, 1], ["up", 2**70, 1], ["up", 1, 2**70], ["up", 1, -5], ["up", 1.5, 1],
                [["up"], 1, 1], [{"a": 1}, 1], ["preferences", True], ["preferences", 0], "x", None, {},
                ["confirm", "1"], ["unsubscribe", 2**63], ["up", 1, 1, 1], [[[[[[]]]]]]]  # fmt: skip
    return [raw.dumps(payload) for payload in payloads] + ["", ".", "a" * 5000, "%00", "..", "é"]


@pytest.fixture
def site(settings, db):
    client = client_for(settings, db)
    subscriber = add_subscriber(db, settings)
    paper = add_paper(db)
    page = client.get("/subscribe")
    return client, csrf_token(page.text), links_for(settings), subscriber, paper


def assert_4xx_naming_the_problem(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code}"
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.text.strip(), f"{what}: an empty {response.status_code}"


def test_forms_with_malformed_fields_never_answer_5xx_and_change_nothing_they_refuse(site, db, settings):
    client, csrf, links, subscriber, paper = site
    rng = random.Random(SEED)
    posts = [
        "/subscribe",
        path_of(links.preferences(subscriber)),
        path_of(links.feedback(subscriber, paper, "up")),
    ]
    for path, field, value in product(posts, FORM_FIELDS, nasty_values(rng)):
        before = snapshot(db)
        response = client.post(path, data={"csrf_token": csrf, field: value})
        assert_4xx_naming_the_problem(response, f"POST {path} {field}={value[:20]!r}")
        if response.status_code >= 400:
            assert snapshot(db) == before, f"POST {path} {field}: refused, yet something changed"


def test_raw_bodies_that_are_not_forms_never_answer_5xx(site):
    client, csrf, links, subscriber, paper = site
    rng = random.Random(SEED)
    bodies = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(30)]
    bodies += [
        b"%ff%fe=%ed%a0%80",
        b"csrf_token=" + csrf.encode() + b"&keywords=%ff",
        b"=" * 3000,
        b"&" * 5000,
    ]
    kinds = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "multipart/form-data"]
    kinds += ["application/json", "text/plain"]
    for path, body, kind in product(["/subscribe", path_of(links.preferences(subscriber))], bodies, kinds):
        response = client.post(path, content=body, headers={"Content-Type": kind})
        assert_4xx_naming_the_problem(response, f"POST {path} ({kind}) {body[:20]!r}")


def test_signed_tokens_with_odd_payloads_are_refused_with_a_4xx(site, settings):
    client, csrf, *_ = site
    for route, token in product(TOKEN_ROUTES, signed_payloads(settings.secret)):
        path = route.format(quote(token, safe=""))
        for method in ("GET", "POST"):
            response = client.request(method, path, data={"csrf_token": csrf})
            assert_4xx_naming_the_problem(response, f"{method} {route} {token[:30]}")


def test_odd_paths_and_headers_never_answer_5xx(site):
    client, *_ = site
    paths = ["/papers/99999999999999999999999", "/papers/-1", "/papers/%00", "/papers/1e3", "/%ff", "//x//",
             "/subscribe/" * 50, "/static/../../etc/passwd", "/feedback/", "/slack/actions/",
             "/papers/1/"]  # fmt: skip
    headers = [{}, {"Host": "evil.example"}, {"Cookie": "digest_csrf=" + "x" * 5000}, {"Cookie": "\x7f=\x7f"},
               {"Content-Length": "5"}, {"Accept-Language": ("é" * 100).encode()}]  # fmt: skip
    for path, extra in product(paths, headers):
        for method in ("GET", "POST", "HEAD"):
            response = client.request(method, path, headers=extra)
            assert_4xx_naming_the_problem(response, f"{method} {path} {extra}")
            assert "evil.example" not in response.headers.get("location", "")
