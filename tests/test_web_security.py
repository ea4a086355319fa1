"""Cross-cutting safety of the web app: GETs never write, headers, CSRF cookie, rate limiter, log redaction,
health, and error pages without internals."""

from __future__ import annotations

import gc
import logging
import shutil
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from web_support import add_paper, add_subscriber, client_for, links, path_of, snapshot

from digest.cli import main
from digest.web.app import create_app
from digest.web.security import CSRF_COOKIE, RateLimiter, RedactTokens, redact


@pytest.fixture
def client(settings, db):
    return client_for(settings, db)


def every_link(settings, db) -> list[str]:
    sid, pid = add_subscriber(db, settings), add_paper(db)
    pending = add_subscriber(db, settings, email="new@example.org", status="pending")
    made = links(settings)
    urls = [
        made.feedback(sid, pid, "up"),
        made.feedback(sid, pid, "down"),
        made.paper(pid),
        made.preferences(sid),
        made.preferences(sid) + "/delete",
        made.unsubscribe(sid),
        made.confirm(pending),
        made.archive(sid),
        made.ratings(sid),
        made.feed(sid),
    ]
    return [path_of(u) for u in urls] + ["/", "/subscribe", "/healthz", "/favicon.ico", "/static/style.css"]


def test_get_on_any_link_leaves_digest_stats_and_tables_unchanged(client, settings, db, monkeypatch) -> None:
    paths = every_link(settings, db)
    monkeypatch.setenv("DIGEST_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DIGEST_SECRET_KEY", settings.secret)
    stats = lambda: CliRunner().invoke(main, ["stats", "--json"]).output  # noqa: E731
    before_stats, before_rows = stats(), snapshot(db)
    for path in paths:
        for _ in range(2):  # a scanner fetching twice, with and without our cookie
            assert client.get(path).status_code == 200, path
            assert client.head(path).status_code in (200, 405), path
    assert stats() == before_stats and '"feedback": 0' in before_stats
    assert snapshot(db) == before_rows


def test_every_answer_carries_the_security_headers(client) -> None:
    for path in ("/", "/healthz", "/nowhere", "/feedback/x", "/static/style.css"):
        answer = client.get(path)
        headers = answer.headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    for private in ("/feedback/x", "/archive/x", "/feed/x"):
        assert client.get(private).headers["cache-control"] == "no-store"


def test_csrf_cookie_is_http_only_and_same_site(client) -> None:
    cookie = client.get("/").headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # http base URL here; https base URLs get Secure


def test_rate_limiter_allows_the_limit_per_key_within_the_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window=60, clock=lambda: now[0])
    assert [limiter.hit("a"), limiter.hit("a")] == [None, None]
    assert limiter.hit("a") == pytest.approx(60)
    assert limiter.hit("b") is None
    now[0] = 60.5
    assert limiter.hit("a") is None


def test_access_log_lines_never_contain_link_tokens(settings, db) -> None:
    url = path_of(links(settings).feedback(1, 2, "up"))
    token = url.rsplit("/", 1)[1]
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", url + "?x=1", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert token not in record.getMessage() and "/feedback/<token>?x=1" in record.getMessage()
    create_app(settings, db)
    assert any(isinstance(f, RedactTokens) for f in logging.getLogger("uvicorn.access").filters)
    for kind in ("preferences", "unsubscribe", "confirm", "archive", "feed"):
        assert redact(f"POST /{kind}/abc.DEF-12_3/delete") == f"POST /{kind}/<token>/delete"
    assert redact("GET /papers/12") == "GET /papers/12"


def test_healthz_pings_the_database(settings, db) -> None:
    app = create_app(settings, db)
    assert TestClient(app).get("/healthz").json()["database"] == "ok"
    # A database that refuses connections (nothing listens on port 1).
    app.state.site.db = SimpleNamespace(engine=create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    broken = TestClient(app).get("/healthz")
    assert broken.status_code == 503 and broken.json()["status"] == "error"


def test_server_errors_show_a_page_without_internals(settings, db) -> None:
    app = create_app(settings, db)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500 and "Something went wrong" in answer.text
    assert "secret internals" not in answer.text and "Traceback" not in answer.text


def test_unknown_path_and_wrong_method_get_error_pages(client) -> None:
    assert client.get("/wp-login.php").status_code == 404
    assert client.put("/subscribe").status_code == 405
    assert client.get("/slack/actions").status_code == 405


def test_start_up_freezes_long_lived_objects_out_of_the_garbage_collectors_full_passes(settings, db) -> None:
    gc.unfreeze()
    with TestClient(create_app(settings, db)):
        assert gc.get_freeze_count() > 10_000  # modules, classes, metadata: a full pass skips them


def test_a_favicon_is_served_and_linked(client) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert client.get("/static/favicon.svg").status_code == 200
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/").text


def test_openapi_json_is_served_only_when_the_setting_enables_it(settings, db) -> None:
    assert client_for(settings, db).get("/openapi.json").status_code == 404
    enabled = client_for(settings.model_copy(update={"openapi": True}), db).get("/openapi.json")
    assert enabled.status_code == 200 and "/subscribe" in enabled.json()["paths"]


def test_with_the_database_gone_pages_say_so_with_a_503_and_log_one_line(settings, db, caplog) -> None:
    sid = add_subscriber(db, settings)
    client = client_for(settings, db)
    url = path_of(links(settings).preferences(sid))
    shutil.rmtree(settings.data_dir)  # the database's folder disappears under the running app
    db.engine.dispose()
    with caplog.at_level(logging.ERROR, logger="digest.web.app"):
        answer = client.get(url)
    assert answer.status_code == 503 and "Temporarily unavailable" in answer.text
    assert answer.headers["retry-after"] == "60"
    (record,) = [r for r in caplog.records if r.name == "digest.web.app"]
    assert "/preferences/<token>" in record.getMessage() and record.exc_info is None


def test_the_trailing_slash_redirect_goes_to_the_base_url_whatever_the_host_header(settings, db) -> None:
    client = client_for(settings, db)
    answer = client.get("/subscribe/?a=1", headers={"Host": "evil.example"})
    assert answer.status_code == 307 and answer.headers["location"] == "http://digest.test/subscribe?a=1"
    assert client.get("/nothing-here/", headers={"Host": "evil.example"}).status_code == 404
