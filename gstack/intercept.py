"""The intercepting proxy of ``gstack serve --proxy-port``: for clients that hard-code Google's hosts.

Some clients have no endpoint setting at all (Ansible's google.cloud collection builds every URL
from ``https://compute.googleapis.com``/``https://www.googleapis.com``; Node's gtoken signs in at
``https://oauth2.googleapis.com/token`` whatever the key file says). What they all honour is the
standard ``HTTPS_PROXY`` and a CA bundle. So gstack is that proxy: a client's ``CONNECT`` to one of
Google's API hosts is answered here, TLS is terminated with a certificate from the data directory's
CA (gstack/tls.py) naming those hosts, and the requests inside the tunnel are served by the same
WSGI application, in this process, on werkzeug's own request handler: no second hop, no forwarded
headers to trust. Every other destination, and any request that is not ``CONNECT``, is refused with
403 and a sentence saying why: gstack is not a general proxy and must not become one by accident.

Links follow the host the client used (gstack/gce/render.py): Google's hosts get Google's own
``https://www.googleapis.com/compute/v1/`` links, which clients such as Ansible compare for idempotence.
"""

from __future__ import annotations

import ssl

from gstack import tls
from gstack.serving import PooledWSGIServer, RequestHandler

# The hosts Google's clients reach for what gstack serves: the API (both of its names), tokens (the
# current endpoint and the older accounts.google.com one libcloud and old libraries use), and the
# service-account credentials APIs.
HOSTS = ("compute.googleapis.com", "www.googleapis.com", "oauth2.googleapis.com", "accounts.google.com",
         "iamcredentials.googleapis.com", "sts.googleapis.com")
CERT_PREFIX = "proxy"  # the proxy's certificate is not the TLS server's: their names differ


def refusal(target: str) -> str:
    """Why a destination is refused, in words a user reading a client's error can act on."""
    return (f"gstack's proxy tunnels only to Google API hosts it serves ({', '.join(HOSTS)} on port 443), "
            f"not to {target}; exclude other hosts with NO_PROXY")


class InterceptingHandler(RequestHandler):
    """One proxy connection: the ``CONNECT`` in the clear, then TLS, then HTTP/1.1 on the tunnel as on
    any gstack connection, kept alive (one CONNECT and one handshake for a client's many requests)."""

    server: InterceptingServer  # (TCP_NODELAY is every gstack connection's: RequestHandler)

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            return
        target = self.path if self.command == "CONNECT" else f"{self.command} {self.path}"
        host, _, port = self.path.rpartition(":")
        if self.command != "CONNECT" or host.lower() not in HOSTS or port != "443":
            self._refuse(target)
            return
        self.send_response_only(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        try:
            tunnel = self.server.tunnel_context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as e:  # most often: the client does not trust gstack's CA
            self.log_error("TLS handshake for %s failed: %s", host, e)
            return
        self.request = self.connection = tunnel
        self.setup()  # rfile and wfile now read and write through TLS
        super().handle()

    def _refuse(self, target: str) -> None:
        message = refusal(target)
        self.log_error("refused %s", target)
        body = (message + "\n").encode()
        self.send_response_only(403, message)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by the application (gstack.http), the tunnels not at all."""


class InterceptingServer(PooledWSGIServer):
    """The proxy's listener: plain TCP (clients speak ``CONNECT`` in the clear), and an SSL context
    set only so that werkzeug gives the tunnelled requests ``wsgi.url_scheme`` https."""

    def __init__(self, host: str, port: int, app, data_dir: str) -> None:
        super().__init__(host, port, app, handler=InterceptingHandler)
        certificate = tls.ensure_server_certificate(data_dir, HOSTS, prefix=CERT_PREFIX)
        self.tunnel_context = tls.server_context(certificate)
        self.ssl_context = self.tunnel_context
