"""OAuth clients: the ones registered in the database, and Google's own public installed-app clients
(gcloud's and the application-default-credentials one), pre-registered so that ``gcloud auth login``
and ``gcloud auth application-default login`` work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from core import identity
from core.identity import OAuthClient

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_LOOPBACK = tuple(f"http://{host}/" for host in LOOPBACK_HOSTS)


@dataclass(frozen=True)
class Client:
    """What the validator needs to know about a client; ``client_id`` is what oauthlib asks for."""

    client_id: str
    name: str
    kind: str  # installed | web
    secret_hash: str | None
    redirect_uris: tuple[str, ...]
    builtin: bool = False

    @property
    def public(self) -> bool:
        return self.secret_hash is None

    def allows_redirect(self, uri: str) -> bool:
        """Exact match, except that an installed app may use any port of a registered loopback URI
        (RFC 8252 section 7.3: it listens on whatever port is free)."""
        if uri in self.redirect_uris:
            return True
        if self.kind != "installed":
            return False
        parts = urlsplit(uri)
        if parts.scheme != "http" or parts.hostname is None or parts.query or parts.fragment or parts.username:
            return False
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        portless = f"http://{host}{parts.path or '/'}"
        return host in LOOPBACK_HOSTS and portless in self.redirect_uris


# The secrets of Google's installed-app clients are public (they ship in gcloud); they are kept here
# as digests all the same, like every other client secret.
BUILTIN = {
    c.client_id: c for c in (
        Client("32555940559.apps.googleusercontent.com", "Google Cloud SDK", "installed",
               identity.digest("ZmssLNjJy2998hD4CTg2ejr2"),
               _LOOPBACK + ("https://sdk.cloud.google.com/authcode.html",), builtin=True),
        Client("764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
               "Google Auth Library", "installed", identity.digest("d-FL95Q19q7MQmFpd7hHD0Ty"),
               _LOOPBACK + ("https://sdk.cloud.google.com/applicationdefaultauthcode.html",), builtin=True),
    )
}

# Where gcloud's no-browser flows send the browser: a Google page that shows the code to paste. gstack
# shows that page itself, since the machine may not reach Google.
CODE_DISPLAY_PAGES = ("https://sdk.cloud.google.com/authcode.html",
                      "https://sdk.cloud.google.com/applicationdefaultauthcode.html")


def find(session, client_id: str | None) -> Client | None:
    if not client_id:
        return None
    if client_id in BUILTIN:
        return BUILTIN[client_id]
    row = identity.find_client(session, client_id)
    return _client(row) if row is not None else None


def _client(row: OAuthClient) -> Client:
    return Client(row.client_id, row.name, row.kind, row.secret_hash, tuple(u for u in row.redirect_uris.splitlines() if u))


def all_clients(session) -> list[Client]:
    return list(BUILTIN.values()) + [_client(r) for r in identity.registered_clients(session)]
