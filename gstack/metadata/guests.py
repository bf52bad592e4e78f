"""The metadata server of running guests: gstack's metadata application on a Unix socket that the
virtual routers' metadata proxies (``core.hypervisors.netns.dataplane``) forward to.

Which instance asks is read from the two headers the proxy sets over whatever the guest sent:
the guest's source address as the router saw it and the router's network. Nothing else the guest
sends names an instance. The socket is the trust boundary: it is reachable only through the
filesystem of the gstack machine, where the routers' proxies run (mode 0600, root's).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from core.services.instance_metadata import Sessions, instance_at
from gstack.metadata.app import InstanceRef, MetadataServer

SOURCE_HEADER = "X-Gstack-Source-Ip"
NETWORK_HEADER = "X-Gstack-Network"


def router_locator(sessions: Sessions) -> Callable[[Request], InstanceRef | None]:
    def locate(request: Request) -> InstanceRef | None:
        ip, network = request.headers.get(SOURCE_HEADER), request.headers.get(NETWORK_HEADER, "").strip('"')
        if not ip or not network:
            return None
        with sessions() as session:
            found = instance_at(session, network, ip)
        return InstanceRef(*found) if found else None
    return locate


def serve_guests(sessions: Sessions, socket_path: str, issuer: str) -> Callable[[], None]:
    """Serve the guests' metadata on ``socket_path`` from a thread; the function that stops it."""
    os.makedirs(os.path.dirname(socket_path), exist_ok=True)
    if os.path.exists(socket_path):
        os.remove(socket_path)  # a server that stopped without removing it
    app = MetadataServer(sessions, router_locator(sessions), issuer)
    server = make_server(f"unix://{socket_path}", 0, app, threaded=True)
    os.chmod(socket_path, 0o600)
    threading.Thread(target=server.serve_forever, name="guest-metadata", daemon=True).start()

    def stop() -> None:
        app.stopping.set()
        server.shutdown()
        if os.path.exists(socket_path):
            os.remove(socket_path)
    return stop
