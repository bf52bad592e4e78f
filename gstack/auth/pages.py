"""Server-rendered pages: sign in, consent (authorization code flow), and device verification.

oauthlib validates every authorization request, on each GET and POST, before a page shows or a
decision counts: a bad client or redirect URI gets an error page here (never a redirect to an
unverified URI); any other error goes back to the client's redirect URI, as RFC 6749 says.
"""

from __future__ import annotations

import secrets
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Response, redirect, render_template, request
from oauthlib.oauth2.rfc6749 import errors

from core import identity
from gstack.auth import browser, clients, scopes, server
from gstack.auth.ratelimit import LIMITER
from gstack.auth.views import bp

ERROR_TITLES = {
    "invalid_client": "The OAuth client was not found.",
    "redirect_uri_mismatch": "The redirect URI is not registered for this client.",
    "invalid_request": "This request is invalid.",
}


def page(template: str, status: int = 200, **context: Any) -> Response:
    nonce = secrets.token_urlsafe(16)
    html = render_template(template, nonce=nonce, csrf_token=browser.csrf_token(), **context)
    return browser.finish(Response(html, status=status, content_type="text/html; charset=utf-8"), nonce)


def go(location: str, status: int = 303) -> Response:
    # Within an app, flask's redirect makes the app's response class (typed as werkzeug's base class).
    return browser.finish(cast(Response, redirect(location, status)))


def error_page(error: errors.OAuth2Error) -> Response:
    code, status = error.error, 401 if error.error == "invalid_client" else 400
    if isinstance(error, errors.MismatchingRedirectURIError):
        code = "redirect_uri_mismatch"
    title = ERROR_TITLES.get(code or "", ERROR_TITLES["invalid_request"])
    return page("error.html", status, code=code, error_status=status, title=title, detail=error.description)


def oauth_uri() -> str:
    """This request's URL as oauthlib wants it: the query strictly form-encoded (browsers leave characters
    such as '[' of ``http://[::1]:port/`` bare, and oauthlib refuses them)."""
    return request.base_url + "?" + urlencode(list(request.args.items(multi=True)))


def _address() -> str:
    return "ip:" + (request.remote_addr or "")


def _login_keys(email: str) -> dict[str, str]:
    """The limiter's keys for a sign-in, by kind: the (account, address) pair, the address, the account."""
    account = email.strip().lower()
    return {"login": f"user-ip:{account}|{request.remote_addr or ''}", "login_address": _address(),
            "login_account": "user:" + account}


def sign_in(context: dict[str, Any]) -> Response:
    """Check the posted email and password; on success start a session and show the page again (GET).
    A source over its limit is refused without the password being checked (see ``ratelimit``)."""
    email, password = request.form.get("email", "").strip(), request.form.get("password", "")
    keys = _login_keys(email)
    wait = max(LIMITER.blocked(kind, key) for kind, key in keys.items())
    if wait:
        LIMITER.refused("login")
        minutes = max(1, round(wait / 60))
        return page("login.html", 429, email=email, error=f"Too many failed attempts. Try again in {minutes} "
                                                           f"minute{'s' if minutes > 1 else ''}.", **context)
    validator = server.validator()
    user = identity.authenticate_user(validator.session_factory(), email, password) if email and password else None
    if user is None:
        for kind, key in keys.items():
            LIMITER.fail(kind, key)
        return page("login.html", 401, email=email, error="Wrong email or password.", **context)
    LIMITER.forgive("login", keys["login"])
    with validator.writing() as session:
        browser.start_session(identity.create_browser_session(session, user))
    return go(request.url)


def _session_actions(context: dict[str, Any]) -> Response | None:
    """The POSTs every page shares: CSRF first, then sign in and sign out."""
    if not browser.csrf_ok():
        return page("error.html", 400, code="invalid_request", error_status=400, heading="This page has expired",
                    title="Go back, reload the page and try again.")
    action = request.form.get("action")
    if action == "login":
        return sign_in(context)
    if action == "switch":
        browser.end_session()
        return go(request.url)
    if browser.current_user() is None:
        return page("login.html", **context)
    return None


# --------------------------------------------------------------------------- authorization code flow

@bp.route("/o/oauth2/auth", methods=["GET", "POST"])
@bp.route("/o/oauth2/v2/auth", methods=["GET", "POST"])
def authorize() -> Response:
    endpoint = server.authorization_endpoint()
    try:
        requested, info = endpoint.validate_authorization_request(oauth_uri(), http_method="GET")
    except errors.FatalClientError as e:
        return error_page(e)
    except errors.OAuth2Error as e:
        if e.redirect_uri is None:  # an error oauthlib raised before it knew where to send it
            return error_page(e)
        return go(e.in_uri(e.redirect_uri), 302)
    client: clients.Client = info["request"].client
    context: dict[str, Any] = {"client": client, "login_hint": info["request"].login_hint or ""}
    if request.method == "GET":
        if browser.current_user() is None:
            return page("login.html", email=context["login_hint"], **context)
        return consent(client, requested, info)
    done = _session_actions(context)
    if done is not None:
        return done
    if request.form.get("action") == "deny":
        return go(errors.AccessDeniedError(state=info["state"]).in_uri(info["redirect_uri"]), 302)
    if request.form.get("action") != "approve":
        return consent(client, requested, info)
    headers, _, _ = endpoint.create_authorization_response(
        oauth_uri(), http_method="GET", scopes=requested, credentials={"user": browser.current_user()})
    location = headers["Location"]
    if location.split("?", 1)[0] in clients.CODE_DISPLAY_PAGES:
        code = parse_qs(urlsplit(location).query).get("code", [""])[0]
        return page("code.html", client=client, code=code)
    return go(location, 302)


def consent(client: clients.Client, requested: list[str], info: dict[str, Any]) -> Response:
    target = urlsplit(info["redirect_uri"])
    return page("consent.html", client=client, user=browser.current_user(),
                scopes=[(s, scopes.describe(s)) for s in requested],
                destination=f"{target.scheme}://{target.netloc}")


# --------------------------------------------------------------------------- device flow

@bp.route("/device", methods=["GET", "POST"])
def device() -> Response:
    """Where a person types the code a device shows, signs in, and approves or denies the device."""
    context: dict[str, Any] = {"client": None, "login_hint": ""}
    user_code = (request.form.get("user_code") or request.args.get("user_code") or "").strip()
    if request.method == "GET":
        if browser.current_user() is None:
            return page("login.html", **context)
        return _device_step(user_code)
    done = _session_actions(context)
    if done is not None:
        return done
    action = request.form.get("action")
    if action in ("approve", "deny"):
        return _device_decision(user_code, action == "approve")
    return _device_step(user_code)


def _device_step(user_code: str) -> Response:
    if not user_code:
        return page("device.html", user_code="", error="")
    validator = server.validator()
    row = identity.find_device_by_user_code(validator.session_factory(), user_code)
    if row is None:
        wait = LIMITER.blocked("login_address", _address())
        LIMITER.fail("login_address", _address())
        status, error = (429, "Too many attempts. Try again later.") if wait else \
            (404, "That code is not valid or has expired. Check it and try again.")
        return page("device.html", status, user_code=user_code, error=error)
    client = clients.find(validator.session_factory(), row.client_id)
    return page("device_consent.html", client=client, user=browser.current_user(), user_code=user_code,
                scopes=[(s, scopes.describe(s)) for s in row.scopes.split()])


def _device_decision(user_code: str, approve: bool) -> Response:
    validator = server.validator()
    with validator.writing() as session:
        row = identity.find_device_by_user_code(session, user_code)
        if row is not None:
            identity.decide_device(session, row, browser.current_user() if approve else None)
    if row is None:
        return page("device.html", 404, user_code=user_code,
                    error="That code is not valid or has expired. Check it and try again.")
    return page("device_done.html", approved=approve)
