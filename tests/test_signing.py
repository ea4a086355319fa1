from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from digest.signing import FEEDBACK_ACTIONS, BadToken, Links, Signer, Token

SECRET = "a-test-secret-of-enough-length"


def test_token_round_trips_subscriber_paper_and_action() -> None:
    signer = Signer(SECRET)
    token = signer.loads(signer.dumps("up", 7, 42), FEEDBACK_ACTIONS)
    assert (token.action, token.subscriber_id, token.paper_id) == ("up", 7, 42)


def test_tampered_token_is_refused() -> None:
    signer = Signer(SECRET)
    token = signer.dumps("down", 7, 42)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(BadToken, match="not valid"):
        signer.loads(tampered, FEEDBACK_ACTIONS)


def test_token_signed_with_another_key_is_refused() -> None:
    token = Signer("another-secret-of-enough-length").dumps("up", 1, 2)
    with pytest.raises(BadToken):
        Signer(SECRET).loads(token, FEEDBACK_ACTIONS)


def test_wrong_action_token_is_refused() -> None:
    signer = Signer(SECRET)
    with pytest.raises(BadToken, match="preferences"):
        signer.loads(signer.dumps("preferences", 7), {"unsubscribe"})


def test_expired_feedback_token_is_refused_but_unsubscribe_still_works() -> None:
    signer = Signer(SECRET, max_age_days=1)
    with time_machine.travel("2026-01-01 08:00:00+00:00", tick=False):
        vote, unsubscribe = signer.dumps("up", 7, 42), signer.dumps("unsubscribe", 7)
    with time_machine.travel("2026-01-03 08:00:00+00:00", tick=False):
        with pytest.raises(BadToken, match="expired"):
            signer.loads(vote, FEEDBACK_ACTIONS)
        assert signer.loads(unsubscribe, {"unsubscribe"}).subscriber_id == 7


def test_feedback_token_without_paper_is_refused() -> None:
    from itsdangerous import URLSafeTimedSerializer

    forged = URLSafeTimedSerializer(SECRET, salt="digest.link.v1").dumps(["up", 7])
    with pytest.raises(BadToken):
        Signer(SECRET).loads(forged, FEEDBACK_ACTIONS)


def test_links_are_absolute_and_signed() -> None:
    links = Links("https://digest.example.org/", Signer(SECRET))
    url = links.feedback(3, 9, "down")
    assert url.startswith("https://digest.example.org/feedback/")
    token = url.rsplit("/", 1)[1]
    assert Signer(SECRET).loads(token, FEEDBACK_ACTIONS).action == "down"


@pytest.mark.parametrize(
    "payload",
    [
        ["up", True, 42],
        ["up", 7, False],
        ["preferences", True],
        ["up", 2**70, 42],
        ["up", 7, 2**63],
        ["up", 0, 1],
    ]
    + [["unsubscribe", -3], [["up"], 7, 42], [{"up": 1}, 7]],
)
def test_a_validly_signed_token_with_an_id_that_is_no_database_id_is_refused(payload) -> None:
    from itsdangerous import URLSafeTimedSerializer

    from digest.signing import ACTIONS, SALT

    token = URLSafeTimedSerializer(SECRET, salt=SALT).dumps(payload)  # signed with the real key
    with pytest.raises(BadToken, match="not valid"):
        Signer(SECRET).loads(token, ACTIONS)


def test_archive_and_feed_links_carry_their_own_actions_and_only_the_feed_never_expires() -> None:
    signer = Signer("k" * 32, max_age_days=1)
    made = Links("https://digest.example.org/", signer)
    archive = made.archive(7, dt.date(2025, 6, 30))
    assert archive.startswith("https://digest.example.org/archive/") and archive.endswith("/2025-06-30")
    assert made.ratings(7).endswith("/ratings") and made.feed(7).startswith(
        "https://digest.example.org/feed/"
    )
    archive_token = made.archive(7).rsplit("/", 1)[1]
    feed_token = made.feed(7).rsplit("/", 1)[1]
    assert signer.loads(archive_token, {"archive"}) == Token("archive", 7)
    with pytest.raises(BadToken, match="for 'archive'"):
        signer.loads(archive_token, {"feed"})
    with time_machine.travel(dt.datetime.now() + dt.timedelta(days=2)):
        assert signer.loads(feed_token, {"feed"}) == Token("feed", 7)
        with pytest.raises(BadToken, match="expired"):
            signer.loads(archive_token, {"archive"})
