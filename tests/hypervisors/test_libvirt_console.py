"""The console proxy's interactive serial console over a real WebSocket, for an instance on a libvirt host.

A ``test://`` host runs no guest: what is typed on its serial port goes to the serial log, and the
driver answers as the simulated guest does (a getty, then a small shell), so the whole path —
ticket, WebSocket, console proxy, driver, serial log, getSerialPortOutput — is the one a KVM host
takes, without mocks.
"""

from __future__ import annotations

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from core.hypervisors.libvirt import domain_name
from tests.conftest import PROJECT, console_ticket, read_until
from tests.helpers.libvirt import body, host_of, run, state
from tests.hypervisors.conftest import LIBVIRT_ZONE as ZONE

pytestmark = pytest.mark.xdist_group("libvirt")


def ticket(cloud, instance: str) -> requests.Response:
    return console_ticket(cloud, ZONE, instance)


def test_interactive_serial_console_on_libvirt(cloud):
    gce = cloud.gce()
    inst_api = gce.instances()
    run(gce, inst_api.insert(project=PROJECT, zone=ZONE, body=body(
        "lvcon", "e2-micro", metadata={"items": [{"key": "serial-port-enable", "value": "TRUE"}]})))
    inst = inst_api.get(project=PROJECT, zone=ZONE, instance="lvcon").execute()
    assert inst["status"] == "RUNNING"
    uid = int(inst["id"])
    assert state(cloud, uid) == "running"  # a domain on the libvirt host, not a simulator VM

    resp = ticket(cloud, "lvcon")
    assert resp.status_code == 200, resp.text
    url = resp.json()["url"]
    assert url.startswith(cloud.base.replace("http", "ws"))
    with connect(url, open_timeout=30) as ws:
        assert read_until(ws, "port 1").startswith(f"serialport: Connected to {PROJECT}.{ZONE}.lvcon port 1")
        ws.send("\r")
        read_until(ws, "lvcon login: ")
        ws.send("root\r")
        read_until(ws, "Password: ")
        ws.send("hunter2\r")
        read_until(ws, "root@lvcon:~# ")
        ws.send("hostname\r")
        assert "hostname\r\nlvcon\r\n" in read_until(ws, "lvcon\r\nroot@lvcon:~# ")

    output = inst_api.getSerialPortOutput(project=PROJECT, zone=ZONE, instance="lvcon").execute()["contents"]
    assert "started on kvm1-host1" in output  # the boot lines and the session share the domain's serial log
    assert "root@lvcon:~# hostname\r\nlvcon" in output and "hunter2" not in output
    log = cloud.driver.console_path(host_of(cloud), uid)  # the log file the domain's <serial><log> names
    assert log.endswith(f"{domain_name(uid)}-serial.log")
    with open(log, encoding="utf-8", newline="") as f:
        assert "root@lvcon:~# hostname\r\nlvcon" in f.read()

    with pytest.raises(InvalidStatus) as exc:  # a ticket opens one session
        connect(url, open_timeout=10)
    assert exc.value.response.status_code == 403

    run(gce, inst_api.delete(project=PROJECT, zone=ZONE, instance="lvcon"))
