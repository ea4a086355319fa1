"""A subscriber's own pages, reached through the signed links in every digest: preferences (with the library
upload and the links to their archive, ratings and feed), pause and resume, "delete my data", and
unsubscribe (including the RFC 8058 one-click POST that mail providers send).

Every successful form POST answers 303 with the address of its result page (``?saved=…``, ``?done=1``),
so reloading that page re-submits nothing; only the one-click POST is answered directly, as RFC 8058 asks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from digest import subscribers
from digest.models import Subscriber, SubscriberStatus
from digest.subscribers import InvalidSubscription
from digest.subscribers.library import has_library, import_library, library_summary
from digest.web.forms import (
    WEEKDAY_NAMES,
    PreferencesForm,
    form_errors,
    library_upload,
    megabytes,
    preference_fields,
    schedule_fields,
    timezones,
)
from digest.web.site import Site, get_subscriber, message, page, site_of

router = APIRouter()
STOPPED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.DISABLED)
# What the result page of each POST says (?saved=…); "unchanged" is said with the current status.
SAVED = {
    "preferences": "Your preferences are saved.",
    "paused": "Paused: no digest is sent until you resume.",
    "resumed": "Resumed: your next digest goes out at your chosen time.",
    "library": "Your library is imported: your next digest is ranked by it.",
}


def _form_of(subscriber: Subscriber) -> PreferencesForm:
    return PreferencesForm(
        keywords=", ".join(subscriber.keywords or []),
        excluded_keywords=", ".join(subscriber.excluded_keywords or []),
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
        digest_size=str(subscriber.digest_size),
        weekdays=list(subscriber.weekdays),
        cadence=subscriber.cadence,
    )


def _preferences_page(
    request: Request,
    subscriber: Subscriber,
    token: str,
    form: PreferencesForm | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    saved: str | None = None,
) -> HTMLResponse:
    site = site_of(request)
    links, base = site.links, site.links.base_url
    with site.db.session() as session:
        library = library_summary(session, subscriber)
    return page(
        request,
        "preferences.html",
        status,
        subscriber=subscriber,
        token=token,
        form=form or _form_of(subscriber),
        errors=errors or {},
        saved=saved,
        timezones=timezones(),
        weekday_names=WEEKDAY_NAMES,
        library=library,
        library_limit=megabytes(site.settings.max_library_bytes),
        archive_path=links.archive(subscriber.id).removeprefix(base),
        ratings_path=links.ratings(subscriber.id).removeprefix(base),
        feed_url=links.feed(subscriber.id),
    )


@router.get("/preferences/{token}", response_class=HTMLResponse, summary="Show a subscriber's preferences")
def preferences_page(request: Request, token: str, saved: str = "", aside: int = 0) -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        note = SAVED.get(saved) or (
            f"Nothing changed: this subscription is {subscriber.status}." if saved == "unchanged" else None
        )
        if saved == "library" and aside > 0:
            note = f"{note} {aside} entr{'y' if aside == 1 else 'ies'} (ids of papers we do not have, "
            note += "without a title) could not be used."
        return _preferences_page(request, subscriber, token, saved=note)


@router.post("/preferences/{token}", response_class=HTMLResponse, summary="Save a subscriber's preferences")
def save_preferences(request: Request, token: str, form: Annotated[PreferencesForm, Form()]) -> Any:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    site.csrf.check(request, form.csrf_token)
    with site.db.sessions() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        keywords_required = not has_library(session, subscriber)
        fields, errors = preference_fields(form, subscriber.digest_size)
        schedule, schedule_errors = schedule_fields(form)
        fields, errors = fields | schedule, errors | schedule_errors
        found = subscribers.field_errors(
            site.settings, None, fields, subscriber.digest_size, keywords_required=keywords_required
        )
        errors = form_errors(found) | errors
        if errors:
            return _preferences_page(request, subscriber, token, form, errors, 422)
        try:
            subscribers.update_preferences(session, subscriber, **fields, keywords_required=keywords_required)
        except InvalidSubscription as exc:
            session.rollback()
            session.refresh(subscriber)
            return _preferences_page(request, subscriber, token, form, form_errors(exc.errors), 422)
        session.commit()
    return _saved(token, "preferences")


@router.post("/preferences/{token}/library", response_class=HTMLResponse, summary="Import a library file")
def import_library_file(
    request: Request,
    token: str,
    csrf_token: Annotated[str, Form()] = "",
    library: Annotated[UploadFile | None, File()] = None,
) -> Any:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    site.csrf.check(request, csrf_token)
    references, errors = library_upload(library, site.settings.max_library_bytes)
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        if references is None:
            errors = errors or {"library": "choose a file first"}
            return _preferences_page(request, subscriber, token, errors=errors, status=422)
        report = import_library(session, subscriber, references)
    return RedirectResponse(f"/preferences/{token}?saved=library&aside={len(report.left_aside)}", 303)


def _saved(token: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"/preferences/{token}?saved={what}", 303)


def _set_status(
    request: Request,
    site: Site,
    token: str,
    csrf_token: str,
    allowed_from: tuple[SubscriberStatus, ...],
    status: SubscriberStatus,
    note: str,
) -> RedirectResponse:
    link = site.token(token, {"preferences"})
    site.csrf.check(request, csrf_token)
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        if subscriber.status not in allowed_from:
            return _saved(token, "unchanged")
        subscribers.update_preferences(session, subscriber, status=status)
    return _saved(token, note)


@router.post("/preferences/{token}/pause", response_class=HTMLResponse, summary="Pause the digest")
def pause(request: Request, token: str, csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    return _set_status(
        request,
        site_of(request),
        token,
        csrf_token,
        (SubscriberStatus.ACTIVE,),
        SubscriberStatus.PAUSED,
        "paused",
    )


@router.post("/preferences/{token}/resume", response_class=HTMLResponse, summary="Resume the digest")
def resume(request: Request, token: str, csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    # A signed preferences link proves the address, so it may also restart an unsubscribed or disabled
    # subscription without a new double opt-in.
    return _set_status(
        request,
        site_of(request),
        token,
        csrf_token,
        (SubscriberStatus.PAUSED, *STOPPED),
        SubscriberStatus.ACTIVE,
        "resumed",
    )


@router.get("/preferences/{token}/delete", response_class=HTMLResponse, summary="Ask to delete all data")
def delete_page(request: Request, token: str) -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        return page(request, "delete.html", subscriber=subscriber, token=token)


@router.post("/preferences/{token}/delete", response_class=HTMLResponse, summary="Delete all data")
def delete(request: Request, token: str, csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    site.csrf.check(request, csrf_token)
    with site.db.session() as session:
        subscribers.delete_subscriber(session, get_subscriber(session, link.subscriber_id))
    return RedirectResponse("/deleted", 303)


@router.get("/deleted", response_class=HTMLResponse, summary="After deleting: the data is gone")
def deleted(request: Request) -> HTMLResponse:
    return message(
        request,
        "Your data is deleted",
        "Your subscription, your votes, your reading model and the record of what we sent you are gone. "
        "Links in old digests no longer work.",
        action_path="/",
        action_label="Subscribe again",
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, summary="Ask to unsubscribe")
def unsubscribe_page(request: Request, token: str, done: bool = False) -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, {"unsubscribe"})
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        if done and subscriber.status == SubscriberStatus.UNSUBSCRIBED:
            return _unsubscribed(request, site, subscriber.id)
        return page(request, "unsubscribe.html", subscriber=subscriber, token=token)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, summary="Unsubscribe (+ RFC 8058)")
def unsubscribe(
    request: Request,
    token: str,
    csrf_token: Annotated[str, Form()] = "",
    one_click: Annotated[str, Form(alias="List-Unsubscribe")] = "",
) -> Any:
    site = site_of(request)
    link = site.token(token, {"unsubscribe"})
    # RFC 8058 §3.1: mail providers POST "List-Unsubscribe=One-Click" with no cookies and follow no
    # redirects. The signed token in the URL is the whole authorisation (a forger would need it anyway),
    # so this one request skips the CSRF check and is answered 200 directly.
    if one_click != "One-Click":
        site.csrf.check(request, csrf_token)
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        if subscriber.status != SubscriberStatus.UNSUBSCRIBED:
            subscribers.update_preferences(session, subscriber, status=SubscriberStatus.UNSUBSCRIBED)
    if one_click == "One-Click":
        return _unsubscribed(request, site, link.subscriber_id)
    return RedirectResponse(f"/unsubscribe/{token}?done=1", 303)


def _unsubscribed(request: Request, site: Site, subscriber_id: int) -> HTMLResponse:
    preferences = site.links.preferences(subscriber_id).removeprefix(site.links.base_url)
    return message(
        request,
        "You're unsubscribed",
        "No more digests will be sent to you.",
        action_path=preferences,
        action_label="Changed your mind? Resume",
    )
