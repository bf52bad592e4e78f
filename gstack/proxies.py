"""Reverse proxies: ``X-Forwarded-For``, ``-Proto``, ``-Host`` and ``-Port``, from trusted proxies only.

Behind the TLS proxy the operator's guide prescribes, every request comes from the proxy's address
over plain HTTP. The forwarded headers say who the client is and which URL it used; believed from
anyone, they would let any client pick its own address (and escape the rate limits). So they are
read only when the connection comes from an address in ``GSTACK_TRUSTED_PROXIES`` (comma-separated
addresses or networks, e.g. ``127.0.0.1,10.0.0.0/8``; empty, the default, trusts none).

The client is the rightmost ``X-Forwarded-For`` address that is not itself a trusted proxy (each
proxy appends the address it saw, so a client-supplied value further left is not believed). The
scheme, host and port are the values the nearest proxy set (the last of each). Then
``request.remote_addr`` is the client's address (rate limits, logs), ``request.is_secure`` is true
behind TLS (cookies are ``Secure``) and ``request.host_url`` is the URL the client used (issuer,
selfLinks when GSTACK_BASE_URL is not set). werkzeug's ProxyFix trusts a fixed number of hops from
any peer instead, which is why this is not ProxyFix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks; a bad entry raises ValueError (a typo must not start
    a server that silently trusts nobody, or everybody)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _last(value: str | None) -> str:
    return value.split(",")[-1].strip() if value else ""


class TrustedProxies:
    """WSGI middleware: the client's address, scheme and host from a trusted proxy's headers."""

    def __init__(self, wsgi_app, networks: tuple[Network, ...]):
        self.wsgi_app = wsgi_app
        self.networks = networks

    def __call__(self, environ, start_response):
        if self.networks and _trusted(environ.get("REMOTE_ADDR", ""), self.networks):
            self._apply(environ)
        return self.wsgi_app(environ, start_response)

    def _apply(self, environ: dict) -> None:
        environ["gstack.proxy.orig"] = {k: environ.get(k) for k in
                                        ("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT")}
        hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        client = environ.get("REMOTE_ADDR", "")
        while hops and _trusted(client, self.networks):
            client = hops.pop()
        environ["REMOTE_ADDR"] = client
        proto = _last(environ.get("HTTP_X_FORWARDED_PROTO")).lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        host = _last(environ.get("HTTP_X_FORWARDED_HOST"))
        if host:
            environ["HTTP_HOST"] = host
        port = _last(environ.get("HTTP_X_FORWARDED_PORT"))
        if port.isdigit():
            environ["SERVER_PORT"] = port
            name = _hostname(environ.get("HTTP_HOST", ""))
            default = "443" if environ["wsgi.url_scheme"] == "https" else "80"
            environ["HTTP_HOST"] = name if port == default else f"{name}:{port}"


def _hostname(host: str) -> str:
    """``host:port`` or ``[v6]:port`` without its port."""
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    return host.split(":")[0]
