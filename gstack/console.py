"""The console proxy's HTTP side: tickets, and an instance's serial console over a WebSocket.

``POST /console/tickets`` (Bearer token of an owner or editor of the project; body or query
``project``, ``zone``, ``instance``) answers a ticket valid for a minute and the WebSocket URL to
open with it: ``/console/ws?ticket=...``. Text frames carry the terminal both ways. The first
frame is GCE's banner (``serialport: Connected to PROJECT.ZONE.INSTANCE port 1 ...``).

Flask has no WebSocket support of its own: ``simple-websocket`` takes the connection's socket from
the WSGI server (werkzeug's threaded server of ``gstack serve``, or gunicorn's threaded workers).
"""

from __future__ import annotations

import contextlib
import secrets
import socket

from flask import Flask, Response, current_app, jsonify, request
from simple_websocket import ConnectionClosed, Server

from core.errors import BadRequest, Required, ResourceNotReady
from core.ids import rfc3339
from core.systemvms import console_proxy
from gstack.auth import guard
from gstack.gce.discovery import Method
from gstack.gce.render import base_url

# Asking for a console is using the instance: owners and editors may (GCE: compute.instances.use).
TICKET_METHOD = Method(
    id="gstack.console.tickets", resource="instances", name="use", http_method="POST", path="console/tickets",
    scopes=frozenset({"https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/compute"}),
    request=None, response=None, parameters={})
POLL_SECONDS = 0.1
PROXY_WAIT_SECONDS = 15.0


def register(app: Flask) -> None:
    app.add_url_rule("/console/tickets", "console_tickets", issue_ticket, methods=["POST"])
    # werkzeug routes a request with ``Upgrade: websocket`` only to rules that say they take one.
    app.add_url_rule("/console/ws", "console_ws", connect, methods=["GET"], websocket=True)


def _field(body: dict, name: str) -> str:
    value = body.get(name) or request.args.get(name)
    if not value or not isinstance(value, str):
        raise Required(name)
    return value


def issue_ticket() -> Response:
    runtime = current_app.extensions["gstack"]
    ident = guard.authenticate(TICKET_METHOD)
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    project, zone_name, name = _field(body, "project"), _field(body, "zone"), _field(body, "instance")
    session = runtime.db.session()
    guard.authorize(session, ident, TICKET_METHOD, project)
    token, ticket, proxy_name = console_proxy.open_ticket(session, project, zone_name, name, ident.email)
    runtime.engine_kick()  # the proxy's first deploy, if this zone had none
    ws_base = base_url().removesuffix("compute/v1/").replace("http", "ws", 1)
    return jsonify({"kind": "gstack#consoleTicket", "ticket": token, "url": f"{ws_base}console/ws?ticket={token}",
                    "expireTime": rfc3339(ticket.expires), "proxy": proxy_name})


def connect() -> Response:
    runtime = current_app.extensions["gstack"]
    session = runtime.db.session()
    ticket = console_proxy.use_ticket(session, request.args.get("ticket", ""))
    console_proxy.wait_for_proxy(session, ticket.zone, PROXY_WAIT_SECONDS)
    try:
        console = console_proxy.open_console(runtime.factory, runtime.drivers, ticket.uid)
    except console_proxy.ConsoleUnavailable as exc:
        raise ResourceNotReady(str(exc)) from None
    ws = Server.accept(request.environ)
    try:
        ws.send(f"serialport: Connected to {ticket.project}.{ticket.zone}.{ticket.instance} port 1 "
                f"(session ID: {secrets.token_hex(20)}, active connections: 1).\r\n")
        _relay(ws, console)
    except (ConnectionClosed, console_proxy.ConsoleUnavailable):
        pass
    finally:
        console.close()
        with contextlib.suppress(ConnectionClosed):
            ws.close()
    return _closed(ws)


def _relay(ws: Server, console) -> None:
    """Keys from the client to the serial port, the port's output to the client, until either ends."""
    while ws.connected:
        data = ws.receive(timeout=POLL_SECONDS)
        if data:
            console.write(data if isinstance(data, str) else data.decode(errors="replace"))
        output = console.read()
        if output:
            ws.send(output)


def _closed(ws: Server) -> Response:
    """The connection was the WebSocket's: the WSGI server must not write an HTTP response on it
    (as Flask-Sock does: werkzeug drops a connection whose app raises ConnectionError)."""

    class WebSocketClosed(Response):
        def __call__(self, *args, **kwargs):
            if ws.mode == "gunicorn":
                raise StopIteration()
            if ws.mode == "werkzeug":
                # An HTTP/1.1 server would wait for a next request on the socket, and the client for
                # the server to close it (RFC 6455 section 7.1.1): close it now.
                with contextlib.suppress(OSError):
                    ws.sock.shutdown(socket.SHUT_RDWR)
                raise ConnectionError()
            return []

    return WebSocketClosed()
