"""The subscribe and preferences forms: raw strings in, keyword arguments for `digest.subscribers` out.

Every field arrives as a string so a malformed value becomes an error shown next to its field instead of
a framework-level 422. Each parser returns the fields it could read and the errors of those it could not
(``Parsed``), so a page shows every problem at once; `digest.subscribers` does the real validation.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel

from digest.references import LibraryError, Reference, read_library

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CADENCES = ("daily", "weekly")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# digest.subscribers names Slack fields after the model; the subscribe form has one Slack box.
FIELD_ALIASES = {"slack_webhook_url": "slack", "slack_channel": "slack"}
CHANNEL_FIELDS = frozenset({"channel", "email", "slack"})
SHOWN_LIBRARY_PROBLEMS = 8
Parsed = tuple[dict[str, Any], dict[str, str]]  # (fields read, field → error)


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


def _control_characters(values: dict[str, Any]) -> dict[str, str]:
    return {
        name: "contains control characters"
        for name, v in values.items()
        if isinstance(v, str) and CONTROL.search(v)
    }


def _without(fields: dict[str, Any], errors: dict[str, str]) -> Parsed:
    return {name: value for name, value in fields.items() if name not in errors}, errors


def preference_fields(form: PreferencesForm | SubscribeForm, default_size: int) -> Parsed:
    """The preference keyword arguments shared by create_subscriber and update_preferences."""
    errors = _control_characters(form.model_dump(include=set(PreferencesForm.model_fields) - {"weekdays"}))
    size = form.digest_size.strip()
    if size and not re.fullmatch(r"\d{1,3}", size):
        errors.setdefault("digest_size", "must be a whole number between 1 and 50")
    fields = {
        "keywords": split_keywords(form.keywords),
        "excluded_keywords": split_keywords(form.excluded_keywords),
        "send_time": form.send_time.strip() or "08:00",
        "timezone": form.timezone.strip() or "UTC",
        "digest_size": int(size) if re.fullmatch(r"\d{1,3}", size) else default_size,
    }
    return _without(fields, errors)


def schedule_fields(form: PreferencesForm) -> Parsed:
    errors = {}
    days = sorted({d for d in form.weekdays if d in {str(i) for i in range(7)}})
    if not days or len(days) != len(set(form.weekdays)):
        errors["weekdays"] = "pick at least one day of the week"
    if form.cadence not in CADENCES:
        errors["cadence"] = "choose daily or weekly"
    return _without({"weekdays": "".join(days), "cadence": form.cadence}, errors)


def channel_fields(form: SubscribeForm) -> Parsed:
    """email=… or slack_webhook_url=… / slack_channel=…, from the channel the visitor chose."""
    errors = _control_characters({"email": form.email, "slack": form.slack})
    if errors:
        return {}, errors
    if form.channel == "slack":
        target = form.slack.strip()
        if not target:
            return {}, {"slack": "enter a Slack incoming-webhook URL or a channel/member id"}
        key = "slack_webhook_url" if target.lower().startswith(("http://", "https://")) else "slack_channel"
        return {key: target}, {}
    if form.channel != "email":
        return {}, {"channel": "choose email or Slack"}
    if not form.email.strip():
        return {}, {"email": "enter your email address"}
    return {"email": form.email.strip()}, {}


def form_field(model_field: str) -> str:
    return FIELD_ALIASES.get(model_field, model_field)


def form_errors(errors: dict[str, str]) -> dict[str, str]:
    """digest.subscribers' field errors under the names of the form's fields."""
    return {form_field(name): message for name, message in errors.items()}


def library_upload(
    upload: UploadFile | None, max_bytes: int
) -> tuple[list[Reference] | None, dict[str, str]]:
    """The entries of an uploaded library file (None when no file was chosen), or the error of the
    ``library`` field naming its bad entries (then nothing is stored, and the file must be chosen again)."""
    if upload is None or not upload.filename:
        return None, {}
    data = upload.file.read(max_bytes + 1)  # bounded: a bigger file is refused from what was read
    try:
        return read_library(data, max_bytes), {}
    except LibraryError as exc:
        shown = "; ".join(exc.problems[:SHOWN_LIBRARY_PROBLEMS])
        more = len(exc.problems) - SHOWN_LIBRARY_PROBLEMS
        tail = f"; … and {more} more" if more > 0 else ""
        return None, {"library": f"{shown}{tail}. Nothing was stored: correct the file and choose it again."}


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.3g} MB"
