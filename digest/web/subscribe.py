"""Sign-up with double opt-in: the form, the "check your inbox" answer, and the confirmation link.

A sign-up may bring a library file (papers the visitor already likes) instead of keywords; it is read
first, and a bad one stores nothing and is named next to its field. Its papers shape the pending
subscriber's model at once (the first digest, once confirmed, is ranked by them); an unconfirmed sign-up is
erased with them.

A successful POST answers 303 with the result page's address (reloading it re-submits nothing); a form
with errors is shown again (422) with every bad field marked at once.

The answer never says whether an address was already subscribed (that would let anyone probe who reads
what): every valid submission gets the same page, and the mail that follows differs instead. A new or
still-pending address gets a confirmation link; a live subscription gets its "manage preferences" link.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import subscribers
from digest.models import LIVE_STATUSES, Subscriber, SubscriberStatus, utcnow
from digest.references import Reference
from digest.subscribers import InvalidSubscription
from digest.subscribers.library import import_library
from digest.web import notices
from digest.web.forms import (
    CHANNEL_FIELDS,
    SubscribeForm,
    channel_fields,
    form_errors,
    library_upload,
    megabytes,
    preference_fields,
    timezones,
)
from digest.web.site import Site, get_subscriber, message, page, site_of

router = APIRouter()
DESTINATIONS = ("email", "slack_webhook_url", "slack_channel")
SENT_TO = {"email": "inbox", "slack": "Slack channel"}


def _subscribe_form(request: Request, form: SubscribeForm, errors: dict[str, str], status: int = 200) -> Any:
    site = site_of(request)
    return page(
        request,
        "subscribe.html",
        status,
        form=form,
        errors=errors,
        timezones=timezones(),
        default_size=site.settings.default_digest_size,
        library_limit=megabytes(site.settings.max_library_bytes),
    )


@router.get("/", response_class=HTMLResponse, summary="The subscribe form")
@router.get("/subscribe", response_class=HTMLResponse, summary="The subscribe form")
def subscribe_page(request: Request) -> HTMLResponse:
    return _subscribe_form(request, SubscribeForm(), {})


@router.post("/subscribe", response_class=HTMLResponse, summary="Sign up (a confirmation link is sent)")
def subscribe(
    request: Request,
    form: Annotated[SubscribeForm, Form()],
    library: Annotated[UploadFile | None, File()] = None,
) -> Any:
    site = site_of(request)
    retry_after = site.subscribe_limiter.hit(request.client.host if request.client else "unknown")
    if retry_after is not None:
        return message(
            request,
            "Too many sign-ups",
            "Please wait a minute before trying again.",
            429,
            headers={"Retry-After": str(int(retry_after) + 1)},
        )
    site.csrf.check(request, form.csrf_token)
    references, library_errors = library_upload(library, site.settings.max_library_bytes)
    chosen = library is not None and bool(library.filename)  # a library instead of keywords
    fields, errors = _read(site, form, keywords_required=not chosen)
    errors |= library_errors
    if errors:
        return _subscribe_form(request, form, errors, 422)
    try:
        subscriber_id, kind = _sign_up(site, fields, references)
    except InvalidSubscription as exc:
        return _subscribe_form(request, form, form_errors(exc.errors), 422)
    notices.send(site, subscriber_id, kind)
    return RedirectResponse(f"/subscribe/sent?to={'email' if 'email' in fields else 'slack'}", 303)


def _read(
    site: Site, form: SubscribeForm, *, keywords_required: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The sign-up's fields and every error in them: the form's own, then digest.subscribers' checks."""
    destination, errors = channel_fields(form)
    prefs, pref_errors = preference_fields(form, site.settings.default_digest_size)
    errors |= pref_errors
    checked = destination if not errors.keys() & CHANNEL_FIELDS else None
    found = subscribers.field_errors(site.settings, checked, prefs, keywords_required=keywords_required)
    return destination | prefs, form_errors(found) | errors


@router.get("/subscribe/sent", response_class=HTMLResponse, summary="After signing up: check your inbox")
def subscribe_sent(request: Request, to: str = "email") -> HTMLResponse:
    return message(
        request,
        f"Check your {SENT_TO.get(to, SENT_TO['email'])}",
        "We sent a message there. Open the link in it to confirm; nothing is sent to you before that.",
    )


def _sign_up(site: Site, fields: dict[str, Any], library: list[Reference] | None) -> tuple[int, str]:
    """Store the sign-up (and its library) and say which notice to send: ("confirm" | "manage")."""
    destination = {k: v for k, v in fields.items() if k in DESTINATIONS}
    prefs = {k: v for k, v in fields.items() if k not in destination}
    required = library is None
    with site.db.sessions() as session:
        live = _live_subscription(session, site, destination)
        if live is None:
            created = subscribers.create_subscriber(
                session, site.settings, **fields, status=SubscriberStatus.PENDING, keywords_required=required
            )
            if library:
                import_library(session, created, library)
            session.commit()
            return created.id, "confirm"
        # Same checks as a new sign-up, so errors look the same whether or not the address is known.
        subscribers.update_preferences(session, live, **prefs, keywords_required=required)
        if live.status == SubscriberStatus.PENDING:
            if library:
                import_library(session, live, library)
            session.commit()  # a second try before confirming: keep the newest choices, resend the link
            return live.id, "confirm"
        session.rollback()  # a live subscription changes only through its own signed preferences link
        return live.id, "manage"


def _live_subscription(session: Session, site: Site, destination: dict[str, str]) -> Subscriber | None:
    ((name, raw),) = destination.items()
    cleaners = {
        "email": subscribers.clean_email,
        "slack_webhook_url": lambda v: subscribers.clean_webhook_url(v, site.settings),
        "slack_channel": subscribers.clean_slack_channel,
    }
    value = cleaners[name](raw)
    column = getattr(Subscriber, name)
    match = func.lower(column) == value.lower() if name == "email" else column == value
    query = select(Subscriber).where(match, Subscriber.status.in_(LIVE_STATUSES))
    return session.scalars(query.order_by(Subscriber.id.desc()).limit(1)).first()


@router.get("/confirm/{token}", response_class=HTMLResponse, summary="Ask to confirm a sign-up")
def confirm_page(request: Request, token: str, done: bool = False) -> HTMLResponse:
    site = site_of(request)
    link = site.token(token, {"confirm"})
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        if done and subscriber.status == SubscriberStatus.ACTIVE:
            return _confirmed(request, site, subscriber)
        if subscriber.status != SubscriberStatus.PENDING:
            return _already(request, site, subscriber)
        return page(request, "confirm.html", subscriber=subscriber, token=token)


@router.post("/confirm/{token}", response_class=HTMLResponse, summary="Confirm a sign-up")
def confirm(request: Request, token: str, csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    site = site_of(request)
    link = site.token(token, {"confirm"})
    site.csrf.check(request, csrf_token)
    with site.db.session() as session:
        subscriber = get_subscriber(session, link.subscriber_id)
        if subscriber.status != SubscriberStatus.PENDING:
            return RedirectResponse(f"/confirm/{token}", 303)
        subscribers.update_preferences(session, subscriber, status=SubscriberStatus.ACTIVE)
        subscriber.confirmed_at = utcnow()
    return RedirectResponse(f"/confirm/{token}?done=1", 303)


def _confirmed(request: Request, site: Site, subscriber: Subscriber) -> HTMLResponse:
    return message(
        request,
        "You're subscribed",
        "Your first digest arrives at your chosen time. Every digest has a link to change your "
        "preferences or unsubscribe.",
        action_path=_path(site, site.links.preferences(subscriber.id)),
        action_label="Your preferences",
    )


def _already(request: Request, site: Site, subscriber: Subscriber) -> HTMLResponse:
    # An old confirmation link must not bring back a subscription that was stopped since.
    text = {
        SubscriberStatus.ACTIVE: "This subscription is already confirmed.",
        SubscriberStatus.PAUSED: "This subscription is confirmed and currently paused.",
    }.get(subscriber.status, "This subscription was stopped; sign up again to restart it.")
    return message(request, "Nothing to confirm", text)


def _path(site: Site, url: str) -> str:
    return url.removeprefix(site.links.base_url)
