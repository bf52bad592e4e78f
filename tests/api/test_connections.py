"""Google's clients keep their connection to ``gstack serve`` from one call to the next (HTTP/1.1
keep-alive, gstack/serving.py): google-api-python-client over httplib2 and google-auth's
AuthorizedSession (the requests session of google-cloud-compute's REST transport) each make their
calls on one socket. Before, every answer closed its connection
and each call opened another. A wire property: it runs once, on SQLite."""

from __future__ import annotations

import pytest
from google.auth.transport.requests import AuthorizedSession

from tests.conftest import PROJECT

ZONE = "us-central1-a"


@pytest.fixture
def sqlite_server(server):
    if server.backend != "sqlite":
        pytest.skip("keep-alive is the wire's, not the database's: it runs once, on SQLite")
    return server


def test_google_api_python_client_reuses_its_connection(sqlite_server):
    gce = sqlite_server.gce()
    sockets = []
    for _ in range(4):
        gce.zones().get(project=PROJECT, zone=ZONE).execute()
        connections = list(gce._http.http.connections.values())  # httplib2's, by scheme and host
        assert len(connections) == 1
        sockets.append(connections[0].sock)
    assert sockets[0] is not None and all(s is sockets[0] for s in sockets)


def test_a_requests_session_makes_its_calls_on_one_socket(sqlite_server):
    session = AuthorizedSession(sqlite_server.credentials())
    url = f"{sqlite_server.api}projects/{PROJECT}/zones/{ZONE}/instances"

    def socket_after(method: str, expected: int, **kwargs) -> object:
        assert session.request(method, url, **kwargs).status_code == expected
        pools = session.get_adapter(url).poolmanager.pools._container.values()  # urllib3's, one per host
        # each pool's idle connections (None: room not yet used)
        socks = [c.sock for pool in pools for c in pool.pool.queue if c is not None]
        assert len(socks) == 1
        return socks[0]

    sockets = [socket_after("GET", 200) for _ in range(3)]
    sockets.append(socket_after("POST", 400, json={"name": "keep-alive-check", "machineType": "bad/type"}))
    sockets.append(socket_after("GET", 200))  # an error answer keeps the connection too
    assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
