"""The console proxy VM of a zone (CloudStack's CPVM): serial output and the interactive serial console.

A client gets a short-lived ticket (``POST /console/tickets``, or ``gstack admin systemvm
console-ticket``) and opens ``/console/ws?ticket=...``: a WebSocket to the instance's serial port
1, relayed through the zone's console proxy while it runs. A ticket is an HMAC-SHA256 over its
payload (project, zone, instance and its uid, caller, expiry) with the installation's secret, and
opens one session only (its digest is recorded until it expires).

GCE's rule applies: serial port access must be enabled by the metadata key
``serial-port-enable`` (on the instance, or the project's common metadata).

How the console is reached is a driver matter (:func:`open_console`): a driver may offer a
streaming ``open_serial(host, vm_uid)`` returning a :class:`SerialConsole`; otherwise one with the
``serial-console`` capability is polled through ``serial_output`` and typed on through
``serial_write`` (the simulator, and libvirt: a virStream to the domain's console, its serial log read).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import orjson
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.db import begin_write
from core.errors import ComputeError, Forbidden, NotFound, ResourceNotReady
from core.hypervisors.base import DriverError, HostRef, HypervisorDriver
from core.hypervisors.registry import DriverRegistry
from core.links import path_of
from core.models import ConsoleTicketUse, Project, Resource, SystemSetting, SystemVm, Zone
from core.resources import store
from core.systemvms import jobs, vms

TICKET_TTL = 60.0
SECRET_KEY = "console.secret"
SERIAL_ENABLE = "serial-port-enable"


class TicketError(ComputeError):
    """The ticket is malformed, forged, expired or used."""

    status = 403
    reason = "forbidden"


# -- tickets ---------------------------------------------------------------------------------------


def _secret(session: Session) -> bytes:
    """The installation's ticket key, made on first use (the unique key settles a race between processes)."""
    row = session.get(SystemSetting, SECRET_KEY)
    if row is None:
        try:
            with session.begin_nested():
                row = SystemSetting(key=SECRET_KEY, value=secrets.token_urlsafe(32))
                session.add(row)
        except IntegrityError:
            row = session.get(SystemSetting, SECRET_KEY)
            assert row is not None  # the row of the process that won the race
    return row.value.encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Ticket:
    project: str
    zone: str
    instance: str
    uid: int
    user: str
    expires: float


def serial_enabled(session: Session, instance: Resource) -> bool:
    def flag(items: list[store.Body]) -> str | None:
        return next((str(i.get("value", "")).lower() for i in items if i.get("key") == SERIAL_ENABLE), None)

    own = flag((store.body_of(instance).get("metadata") or {}).get("items") or [])
    if own is not None:
        return own in ("true", "1")
    common = session.scalar(select(Project.common_metadata).where(Project.name == instance.project))
    return (flag(orjson.loads(common or "[]")) or "") in ("true", "1")


def issue_ticket(session: Session, instance: Resource, user: str, ttl: float = TICKET_TTL) -> tuple[str, Ticket]:
    """A ticket for the instance's serial console; Forbidden when serial port access is disabled."""
    if not serial_enabled(session, instance):
        path = path_of(instance.project, instance.scope, "instances", instance.name)
        raise Forbidden(f"Serial port access is disabled for '{path}': set the metadata key '{SERIAL_ENABLE}' "
                        "to TRUE on the instance or the project.")
    ticket = Ticket(instance.project, instance.scope.split("/", 1)[1], instance.name, instance.uid, user,
                    float(int(time.time() + ttl)))
    payload = _b64(orjson.dumps({"p": ticket.project, "z": ticket.zone, "i": ticket.instance, "u": ticket.uid,
                                 "by": user, "exp": int(ticket.expires), "n": secrets.token_urlsafe(12)}))
    signature = _b64(hmac.new(_secret(session), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", ticket


def redeem_ticket(session: Session, token: str) -> Ticket:
    """Check the ticket and mark it used, in the caller's (write) transaction."""
    payload, _, signature = (token or "").partition(".")
    expected = _b64(hmac.new(_secret(session), payload.encode(), hashlib.sha256).digest())
    if not payload or not hmac.compare_digest(signature, expected):
        raise TicketError("The console ticket is not valid.")
    data = orjson.loads(_unb64(payload))
    now = time.time()
    if data["exp"] < now:
        raise TicketError("The console ticket has expired; ask for a new one.")
    session.execute(delete(ConsoleTicketUse).where(ConsoleTicketUse.expires < now))
    try:
        with session.begin_nested():
            session.add(ConsoleTicketUse(digest=hashlib.sha256(token.encode()).hexdigest(), expires=data["exp"]))
    except IntegrityError:
        raise TicketError("The console ticket was used already; ask for a new one.") from None
    return Ticket(data["p"], data["z"], data["i"], data["u"], data["by"], float(data["exp"]))


def open_ticket(session: Session, project: str, zone_name: str, instance_name: str,
                user: str) -> tuple[str, Ticket, str]:
    """A ticket for an instance's serial console and the name of the zone's console proxy (deployed
    now if the zone had none), in a write transaction of its own, committed before the answer."""
    begin_write(session)
    zone = find_zone(session, zone_name)
    if zone is None:
        raise NotFound(f"projects/{project}/zones/{zone_name}")
    instance = store.find(session, project, "instances", f"zones/{zone_name}", instance_name)
    token, ticket = issue_ticket(session, instance, user)
    proxy_name = proxy_for(session, zone).name
    session.commit()
    return token, ticket, proxy_name


def use_ticket(session: Session, token: str) -> Ticket:
    """Redeem a ticket in a write transaction of its own: once committed, no other connection may use it."""
    begin_write(session)
    ticket = redeem_ticket(session, token)
    session.commit()
    return ticket


# -- the proxy -------------------------------------------------------------------------------------


def find_zone(session: Session, name: str) -> Zone | None:
    return session.scalar(select(Zone).where(Zone.name == name))


def proxy_for(session: Session, zone: Zone) -> SystemVm:
    """The zone's console proxy, deployed (by a job) when the zone has none yet."""
    return jobs.ensure_zone_vm(session, vms.CONSOLE_PROXY, zone)


def proxy_ready(session: Session, zone_name: str) -> SystemVm | None:
    """The zone's console proxy if it runs on a host that is Up."""
    zone = find_zone(session, zone_name)
    vm = vms.zone_vm(session, vms.CONSOLE_PROXY, zone) if zone is not None else None
    if vm is None or vm.state != "Running":
        return None
    host = vms.host_of(session, vm)
    return vm if host is not None and host.status == "Up" else None


def wait_for_proxy(session: Session, zone_name: str, seconds: float, poll: float = 0.2) -> str:
    """The name of the zone's console proxy once it runs on an Up host; ResourceNotReady after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        proxy = proxy_ready(session, zone_name)
        name = proxy.name if proxy is not None else None
        session.rollback()  # the next look must see what workers committed meanwhile
        if name is not None:
            return name
        if time.monotonic() > deadline:
            raise ResourceNotReady(f"The console proxy of zone '{zone_name}' is not running yet; try again shortly.")
        time.sleep(poll)


# -- reaching the serial port ----------------------------------------------------------------------


class ConsoleUnavailable(Exception):
    """The instance does not run, or its hypervisor has no interactive serial console."""


class SerialConsole(Protocol):
    def read(self) -> str:
        """Output since the last read; "" when there is none."""

    def write(self, data: str) -> None:
        """Type ``data`` on the serial port."""

    def close(self) -> None: ...


@runtime_checkable
class StreamingConsoles(Protocol):
    """A driver that streams the serial console itself, rather than being polled."""

    def open_serial(self, host: HostRef, vm_uid: int) -> SerialConsole: ...


class PolledConsole:
    """A serial console through ``serial_output`` (polled) and ``serial_write``; starts with the
    last ``backlog`` bytes, so the client sees the current prompt."""

    def __init__(self, driver: HypervisorDriver, host_ref: HostRef, uid: int, backlog: int = 2048):
        self.driver, self.host_ref, self.uid = driver, host_ref, uid
        _, _, end = driver.serial_output(uid, 0)
        self.offset = max(end - backlog, 0)

    def read(self) -> str:
        contents, _, self.offset = driver_output(self.driver, self.uid, self.offset)
        return contents

    def write(self, data: str) -> None:
        try:
            self.driver.serial_write(self.host_ref, self.uid, data)
        except DriverError as exc:
            raise ConsoleUnavailable(str(exc)) from exc

    def close(self) -> None:
        pass


def driver_output(driver: HypervisorDriver, uid: int, start: int) -> tuple[str, int, int]:
    try:
        return driver.serial_output(uid, start)
    except DriverError as exc:
        raise ConsoleUnavailable(str(exc)) from exc


def open_console(factory: sessionmaker[Session], drivers: DriverRegistry, instance_uid: int) -> SerialConsole:
    with factory() as session:
        res = session.scalar(select(Resource).where(Resource.uid == instance_uid))
        if res is None or res.status != "RUNNING" or res.host_id is None:
            raise ConsoleUnavailable("The instance is not running.")
        driver, ref = vms.driver_for(drivers, session, res.host_id)
    if isinstance(driver, StreamingConsoles):
        return driver.open_serial(ref, instance_uid)
    if "serial-console" not in driver.capabilities:
        raise ConsoleUnavailable(f"The {driver.name} hypervisor has no interactive serial console.")
    return PolledConsole(driver, ref, instance_uid)


def serial_output(session: Session, drivers: DriverRegistry, instance: Resource, start: int) -> tuple[str, int, int]:
    """getSerialPortOutput as the console proxy serves it: (contents, start, next) of port 1, from
    the instance's host (its last one while it is stopped).

    The simulator's log (and libvirt's console file) can be read by the core itself, so this is the
    same read whether or not the proxy runs, and the API keeps answering while the watchdog
    redeploys a proxy; a driver whose log only the proxy reaches plugs in here.
    """
    host_id = instance.host_id or instance.last_host_id
    if host_id is None:
        return "", 0, 0
    driver, _ = vms.driver_for(drivers, session, host_id)
    return driver.serial_output(instance.uid, start)
