"""The browser side of the sign-in and consent pages: the session cookie, CSRF, and safe headers.

The session cookie holds a random token; the database holds its digest (``BrowserSession``), so a
session works across API processes and ends when the user is deleted or changes password. CSRF is
a double-submit token: a random cookie that every form must echo, which a page on another origin can
neither read nor set.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Response, current_app, g, request

from core import identity
from core.identity import Principal

SESSION_COOKIE = "gstack_session"
CSRF_COOKIE = "gstack_csrf"
CSRF_FIELD = "csrf_token"


def csrf_token() -> str:
    """This browser's CSRF token, made (and set as a cookie by :func:`finish`) on first use."""
    if "csrf" not in g:
        existing = request.cookies.get(CSRF_COOKIE, "")
        g.csrf = existing if len(existing) >= 32 else secrets.token_urlsafe(32)
        g.new_csrf = g.csrf != existing
    return g.csrf


def csrf_ok() -> bool:
    cookie, field = request.cookies.get(CSRF_COOKIE, ""), request.form.get(CSRF_FIELD, "")
    return bool(cookie) and len(cookie) >= 32 and hmac.compare_digest(cookie.encode(), field.encode())


def current_user() -> Principal | None:
    if "user" not in g:
        token = request.cookies.get(SESSION_COOKIE, "")
        session = current_app.extensions["gstack"].db.session
        g.user = identity.session_principal(session, token) if token else None
    return g.user


def start_session(token: str) -> None:
    g.session_cookie = token


def end_session() -> None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        from gstack.auth.server import validator

        with validator().writing() as session:
            identity.end_browser_session(session, token)
    g.session_cookie = ""


def finish(response: Response, nonce: str = "") -> Response:
    """Set the cookies this request changed, and the headers every page carries."""
    secure = request.is_secure
    if g.get("new_csrf"):
        response.set_cookie(CSRF_COOKIE, g.csrf, httponly=True, samesite="Lax", secure=secure, path="/")
    if "session_cookie" in g:
        if g.session_cookie:
            response.set_cookie(SESSION_COOKIE, g.session_cookie, max_age=identity.SESSION_TTL, httponly=True,
                                samesite="Lax", secure=secure, path="/")
        else:
            response.delete_cookie(SESSION_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    style = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {style}; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
    return response
