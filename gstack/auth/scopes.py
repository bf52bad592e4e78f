"""OAuth scopes: which a client may ask for, and how the consent page describes them."""

from __future__ import annotations

from collections.abc import Iterable

AUTH = "https://www.googleapis.com/auth/"
OPENID = "openid"
EMAIL_SCOPES = frozenset({"email", AUTH + "userinfo.email"})
PROFILE_SCOPES = frozenset({"profile", AUTH + "userinfo.profile"})
IDENTITY_SCOPES = EMAIL_SCOPES | PROFILE_SCOPES | {OPENID}

DESCRIPTIONS = {
    OPENID: "Associate you with your personal info",
    "email": "See your primary email address",
    AUTH + "userinfo.email": "See your primary email address",
    "profile": "See your personal info, including any personal info you've made publicly available",
    AUTH + "userinfo.profile": "See your personal info, including any personal info you've made publicly available",
    AUTH + "cloud-platform": "See, edit, configure, and delete your Google Cloud data and see the email address "
                             "for your Google Account",
    AUTH + "cloud-platform.read-only": "View your data across Google Cloud services and see the email address "
                                       "of your Google Account",
    AUTH + "compute": "View and manage your Google Compute Engine resources",
    AUTH + "compute.readonly": "View your Google Compute Engine resources",
    AUTH + "appengine.admin": "View and manage your applications deployed on Google App Engine",
    AUTH + "sqlservice.login": "Manage your Google SQL Service instances",
}


def is_known(scope: str) -> bool:
    """Google's API scopes (any ``https://www.googleapis.com/auth/...``) and the OpenID ones."""
    return scope in IDENTITY_SCOPES or (scope.startswith(AUTH) and len(scope) > len(AUTH) and " " not in scope)


def valid(scopes: Iterable[str]) -> bool:
    scopes = list(scopes)
    return bool(scopes) and all(is_known(s) for s in scopes)


# A refresh may narrow a grant to scopes the granted ones include, not only to a literal subset.
IMPLIED = {
    AUTH + "cloud-platform": frozenset({AUTH + "compute", AUTH + "compute.readonly", AUTH + "cloud-platform.read-only"}),
    AUTH + "compute": frozenset({AUTH + "compute.readonly"}),
    AUTH + "userinfo.email": frozenset({"email"}),
    "email": frozenset({AUTH + "userinfo.email"}),
}


def within(requested: Iterable[str], granted: Iterable[str]) -> list[str]:
    """The requested scopes the granted ones neither are nor include."""
    granted = set(granted)
    allowed = granted.union(*(IMPLIED.get(g, ()) for g in granted))
    return [s for s in requested if s not in allowed]


def describe(scope: str) -> str:
    return DESCRIPTIONS.get(scope) or f"Use {scope.removeprefix(AUTH)}"


def grants_email(scopes: Iterable[str]) -> bool:
    return not EMAIL_SCOPES.isdisjoint(scopes)


def grants_identity(scopes: Iterable[str]) -> bool:
    """May the token read userinfo? openid, email or profile."""
    return not IDENTITY_SCOPES.isdisjoint(scopes)
