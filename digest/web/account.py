"""A subscriber's own pages, reached through the signed links in every digest: preferences, pause and resume,
"delete my data", and unsubscribe (including the RFC 8058 one-click POST that mail providers send).

Every successful form POST answers 303 with the address of its result page (``?saved=…``, ``?done=1``),
so reloading that page re-submits nothing; only the one-click POST is answered directly, as RFC 8058 asks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from digest import subscribers
from digest.models import Subscriber, SubscriberStatus
from digest.subscribers import InvalidSubscription
from digest.web.forms import (
    WEEKDAY_NAMES,
    PreferencesForm,
    form_errors,
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
    )


@router.get("/preferences/{token}", response_class=HTMLResponse, summary="Show a subscriber's preferences")
def preferences_page(request: Request, token: str, saved: str = "") -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        note = SAVED.get(saved) or (
            f"Nothing changed: this subscription is {subscriber.status}." if saved == "unchanged" else None
        )
        return _preferences_page(request, subscriber, token, saved=note)


@router.post("/preferences/{token}", response_class=HTMLResponse, summary="Save a subscriber's preferences")
def save_preferences(request: Request, token: str, form: Annotated[PreferencesForm, Form()]) -> Any:
    site = site_of(request)
    link = site.token(token, {"preferences"})
    site.csrf.check(request, form.csrf_token)
    with site.db.sessions() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        fields, errors = preference_fields(form, subscriber.digest_size)
        schedule, schedule_errors = schedule_fields(form)
        fields, errors = fields | schedule, errors | schedule_errors
        errors = (
            form_errors(subscribers.field_errors(site.settings, None, fields, subscriber.digest_size))
            | errors
        )
        if errors:
            return _preferences_page(request, subscriber, token, form, errors, 422)
        try:
            subscribers.update_preferences(session, subscriber, **fields)
        except InvalidSubscription as exc:
            session.rollback()
            session.refresh(subscriber)
            return _preferences_page(request, subscriber, token, form, form_errors(exc.errors), 422)
        session.commit()
    return _saved(token, "preferences")


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
