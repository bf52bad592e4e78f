"""The check in front of every API method: token (401), scope (403 insufficientPermissions),
project access and role (403 forbidden)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app, request
from oauthlib.oauth2 import BearerToken, ResourceEndpoint

from core.errors import Forbidden, InsufficientPermissions, RateLimited, Unauthenticated
from core.identity import access, digest
from core.identity.access import ProjectAccess
from gstack.auth.ratelimit import LIMITER
from gstack.auth.validator import GstackValidator, Identity, TokenCache
from gstack.gce.discovery import Method
from gstack.gce.errors import UNAUTHENTICATED_INVALID, UNAUTHENTICATED_MISSING
from gstack.gce.render import base_url


def resource_endpoint(validator: GstackValidator) -> ResourceEndpoint:
    return ResourceEndpoint(default_token="Bearer", token_types={"Bearer": BearerToken(validator)})


class MissingCredential(Unauthenticated):
    """No credential at all: Google answers reason ``required``, not ``authError``."""

    reason = "required"


def bearer_credential() -> str:
    """The request's credential as an Authorization value: the header, else ``access_token`` /
    ``oauth_token`` in the query string; "" when there is none."""
    auth = request.headers.get("Authorization", "").strip()
    if auth:
        return auth
    token = request.args.get("access_token") or request.args.get("oauth_token")
    return "Bearer " + token if token else ""


@dataclass
class BearerRequest:
    """The part of oauthlib's Request that ``GstackValidator.validate_bearer_token`` reads (``uri``,
    ``scopes``) and writes (``identity``)."""

    uri: str
    scopes: list[str]
    identity: Identity | None = None


def verify_token(runtime, auth: str, method: Method) -> Identity | None:
    """The identity behind an Authorization value, None when the credential is not valid.

    A plain ``Bearer <token>`` (every client's) goes straight to the validator, as oauthlib's
    BearerToken would send it, without building oauthlib's Request (which parses the URI, headers
    and body again on every call). Anything else takes oauthlib's resource endpoint. The URI is
    this API's base, the audience a self-signed JWT may name; oauthlib must not see the query
    string, which it refuses to parse when it holds characters such as '"' that clients leave
    unescaped in filter expressions.
    """
    parts = auth.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        request_ = BearerRequest(base_url(), sorted(method.scopes))
        valid = runtime.validator.validate_bearer_token(parts[1], request_.scopes, request_)
        return request_.identity if valid else None
    valid, oauth_request = runtime.resource_endpoint.verify_request(
        base_url(), http_method=request.method, body=None, headers={"Authorization": auth},
        scopes=sorted(method.scopes))
    return oauth_request.identity if valid else None


def authenticate(method: Method) -> Identity:
    runtime = current_app.extensions["gstack"]
    auth = bearer_credential()
    if not auth:
        raise MissingCredential(UNAUTHENTICATED_MISSING)
    ident = verify_token(runtime, auth, method)
    if ident is None:
        # The credential is checked first: a valid one is served whatever others failed from this address.
        keys = ("ip:" + (request.remote_addr or ""), "cred:" + digest(auth))
        wait = LIMITER.blocked("api", *keys)
        LIMITER.fail("api", *keys)
        if wait:
            LIMITER.refused("api")
            raise RateLimited("Rate Limit Exceeded")
        raise Unauthenticated(UNAUTHENTICATED_INVALID)
    if not (ident.scopes & method.scopes):
        raise InsufficientPermissions()
    return ident


class AccessCache(TokenCache):
    """(principal, project) -> ProjectAccess for a couple of seconds."""


def project_access(session, ident: Identity, project: str, cache: AccessCache) -> ProjectAccess:
    """The identity's standing on the project, from the cache when it was looked up a moment ago."""
    key = _access_key(ident, project)
    found, value = cache.get(key)
    if found:
        return value  # type: ignore[return-value]
    found_access = access.project_access(session, ident.principal_id, project)
    cache.put(key, found_access)  # type: ignore[arg-type]
    return found_access


def _access_key(ident: Identity, project: str) -> str:
    return f"{ident.principal_id}/{project}"


def cached_check(runtime, auth: str, host: str, method: Method, project: str) -> bool:
    """True when this process's caches alone show that the credential ``auth`` (an Authorization
    value) may call ``method`` on ``project``: :func:`authenticate` and :func:`authorize` answered
    from what they looked up less than a cache ttl ago (gstack/auth/validator.py's TokenCache: a
    revocation in this process drops its entry at once), the token's expiry and the method's
    scopes checked now. False when they cannot say yes, never a query: the full check then runs
    and says why (and fills the caches). For the lighter GET path (gstack/api/fastread.py), which
    runs outside Flask's request context and holds no session."""
    parts = auth.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return False
    found, ident = runtime.validator.cached_identity(parts[1], host)
    if not found or ident is None or ident.expires < time.time() or not (ident.scopes & method.scopes):
        return False
    if ident.admin:
        return access.may_call(True, access.NO_ACCESS, method.read_only)
    found, standing = runtime.access_cache.get(_access_key(ident, project))
    return found and standing is not None and access.may_call(False, standing, method.read_only)


def authorize(session, ident: Identity, method: Method, project: str | None) -> None:
    """May this identity call this method on this project? (The decision is the core's: admins
    reach every project, members what their role allows.)"""
    if project is None:
        return
    runtime = current_app.extensions["gstack"]
    standing = access.NO_ACCESS if ident.admin else project_access(session, ident, project, runtime.access_cache)
    if not access.may_call(ident.admin, standing, method.read_only):
        raise Forbidden(f"Required '{access.permission(method.resource, method.name)}' permission for "
                        f"'projects/{project}'")
