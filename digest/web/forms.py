"""The subscribe and preferences forms: raw strings in, keyword arguments for `digest.subscribers` out.

Every field arrives as a string so a malformed value becomes an error shown next to its field instead of
a framework-level 422. `digest.subscribers` does the real validation and names the field it refuses.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any

from pydantic import BaseModel

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CADENCES = ("daily", "weekly")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# digest.subscribers names Slack fields after the model; the subscribe form has one Slack box.
FIELD_ALIASES = {"slack_webhook_url": "slack", "slack_channel": "slack"}


class PreferencesForm(BaseModel):
    keywords: str = ""
    excluded_keywords: str = ""
    send_time: str = ""
    timezone: str = ""
    digest_size: str = ""
    weekdays: list[str] = []
    cadence: str = ""
    csrf_token: str = ""


class SubscribeForm(BaseModel):
    channel: str = "email"
    email: str = ""
    slack: str = ""
    keywords: str = ""
    excluded_keywords: str = ""
    send_time: str = ""
    timezone: str = ""
    digest_size: str = ""
    csrf_token: str = ""


class FormErrors(Exception):
    """Field name → message, shown next to each field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@cache
def timezones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def split_keywords(text: str) -> list[str]:
    """Comma- or line-separated phrases, trimmed, empty ones and repeats dropped, order kept."""
    seen: dict[str, None] = {}
    for part in re.split(r"[,\n;]", text):
        phrase = " ".join(part.split())
        if phrase and phrase.lower() not in {s.lower() for s in seen}:
            seen[phrase] = None
    return list(seen)


def _check_plain_text(values: dict[str, Any]) -> None:
    bad = {
        name: "contains control characters"
        for name, v in values.items()
        if isinstance(v, str) and CONTROL.search(v)
    }
    if bad:
        raise FormErrors(bad)


def _digest_size(text: str, default: int) -> int:
    text = text.strip()
    if not text:
        return default
    if not re.fullmatch(r"\d{1,3}", text):
        raise FormErrors({"digest_size": "must be a whole number between 1 and 50"})
    return int(text)


def preference_fields(form: PreferencesForm | SubscribeForm, default_size: int) -> dict[str, Any]:
    """The preference keyword arguments shared by create_subscriber and update_preferences."""
    _check_plain_text(form.model_dump())
    return {
        "keywords": split_keywords(form.keywords),
        "excluded_keywords": split_keywords(form.excluded_keywords),
        "send_time": form.send_time.strip() or "08:00",
        "timezone": form.timezone.strip() or "UTC",
        "digest_size": _digest_size(form.digest_size, default_size),
    }


def schedule_fields(form: PreferencesForm) -> dict[str, Any]:
    days = sorted({d for d in form.weekdays if d in {str(i) for i in range(7)}})
    if not days or len(days) != len(set(form.weekdays)):
        raise FormErrors({"weekdays": "pick at least one day of the week"})
    if form.cadence not in CADENCES:
        raise FormErrors({"cadence": "choose daily or weekly"})
    return {"weekdays": "".join(days), "cadence": form.cadence}


def channel_fields(form: SubscribeForm) -> dict[str, Any]:
    """email=… or slack_webhook_url=… / slack_channel=…, from the channel the visitor chose."""
    _check_plain_text({"email": form.email, "slack": form.slack})
    if form.channel == "slack":
        target = form.slack.strip()
        if not target:
            raise FormErrors({"slack": "enter a Slack incoming-webhook URL or a channel/member id"})
        key = "slack_webhook_url" if target.lower().startswith(("http://", "https://")) else "slack_channel"
        return {key: target}
    if form.channel != "email":
        raise FormErrors({"channel": "choose email or Slack"})
    if not form.email.strip():
        raise FormErrors({"email": "enter your email address"})
    return {"email": form.email.strip()}


def form_field(model_field: str) -> str:
    return FIELD_ALIASES.get(model_field, model_field)
