"""The server's own OAuth URLs: the issuer is ``GSTACK_BASE_URL``, else the URL the caller used."""

from __future__ import annotations

from flask import current_app, request

from gstack.auth.jwt_bearer import GOOGLE_TOKEN_URI

TOKEN_PATHS = ("/token", "/oauth2/v4/token", "/o/oauth2/token")
# Token URLs a JWT-bearer assertion may name as its audience besides ours: Google's, which gcloud and
# google-auth always put there, whatever token_uri the key file says.
GOOGLE_TOKEN_URIS = (GOOGLE_TOKEN_URI, "https://www.googleapis.com/oauth2/v4/token",
                     "https://accounts.google.com/o/oauth2/token")


def issuer() -> str:
    configured = current_app.config["GSTACK"].base_url
    return (configured or request.host_url).rstrip("/")


def token_audiences() -> tuple[str, ...]:
    own = issuer()
    return GOOGLE_TOKEN_URIS + tuple(own + path for path in TOKEN_PATHS)
