"""networkEndpointGroups: zonal groups of VM endpoints (type GCE_VM_IP_PORT), an instance's address
and a port each, which a backend service balances to as it does to instance groups.

The group's resource row carries what GCE reports (``size`` is the number of endpoints); the
endpoints live in a private row of their own (collection :data:`ENDPOINTS`, same project, zone and
name, never routed nor listed), as a certificate's key does: they are the group's state, not its
description, and GCE's NetworkEndpointGroup has no field for them.

An endpoint names an instance of the group's zone and network; its address defaults to the
instance's primary address in that network, its port to the group's ``defaultPort``. What the group
means shows in the virtual router: each endpoint of a RUNNING instance answering its health checks
is a server of the HAProxy backend of every service using the group (``core.systemvms.http_lb``), so
attaching, detaching or deleting asks the routers of the balancers' networks to render again.

Where GCE's behaviour is not documented, gstack chose (see docs/architecture.rst): attaching an
endpoint the group holds, or detaching one it does not, is refused naming the endpoint (never a
silent no-op). An instance being deleted leaves the groups it is an endpoint of, as in GCE
(:func:`forget_instance`, called by the instance's delete job).
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Invalid, NotFound, Required, ResourceInUse
from core.links import parse_ref, scope_url, url_of
from core.models import Operation, Resource
from core.resources import health, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import lb_common, projects, vpc
from core.services.topology import ZoneInfo

COLLECTION = health.NEG_COLLECTION
ENDPOINTS = health.NEG_ENDPOINTS  # private: never routed, never listed
KIND = "compute#networkEndpointGroup"
TYPE = "GCE_VM_IP_PORT"
MAX_ENDPOINTS = 10000  # GCE's limit per zonal GCE_VM_IP_PORT group
MAX_PER_CALL = 500  # endpoints per attach or detach request
_ORDER = ("kind", "id", "creationTimestamp", "selfLink", "name", "description", "networkEndpointType", "size",
          "zone", "network", "subnetwork", "defaultPort", "annotations")


def _scope(zone: ZoneInfo) -> str:
    return f"zones/{zone.name}"


def insert(call: Call, zone: ZoneInfo, body: Body) -> Operation:
    scope = _scope(zone)
    name = lb_common.new_name(call, COLLECTION, scope, body)
    kind = body.get("networkEndpointType") or TYPE
    if kind != TYPE:
        raise Invalid("resource.networkEndpointType", kind, f"gstack supports zonal network endpoint groups of "
                                                            f"type {TYPE} only.")
    network = vpc.network(call, body.get("network") or "global/networks/default", lock=True)
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    fields.update(networkEndpointType=TYPE, size=0, zone=scope_url(call.project, scope),
                  network=vpc.network_url(network))
    if body.get("subnetwork"):
        region = f"regions/{zone.region.name}"
        ref = vpc.reference(call, body["subnetwork"], "resource.subnetwork", "subnetworks", region)
        if ref.scope != region:
            raise Invalid("resource.subnetwork", body["subnetwork"], f"The subnetwork must be in region "
                                                                     f"'{zone.region.name}', the region of the "
                                                                     "group's zone.")
        subnet = store.find(call.session, ref.project, "subnetworks", ref.scope, ref.name)
        if store.body_of(subnet)["network"] != fields["network"]:
            raise Invalid("resource.subnetwork", body["subnetwork"], "The subnetwork must belong to the group's "
                                                                     "network.")
        fields["subnetwork"] = vpc.url(subnet)
    if body.get("defaultPort") is not None:
        fields["defaultPort"] = vpc.integer(body["defaultPort"], "resource.defaultPort", 1, 65535, 0)
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise Invalid("resource.annotations", annotations, "Must be a map of strings.")
    if annotations:
        fields["annotations"] = annotations
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind=KIND, region=zone.region.name, body=fields)
    store.save(res, {k: store.body_of(res)[k] for k in _ORDER if k in store.body_of(res)})
    store.new_resource(call.session, project=call.project, collection=ENDPOINTS, scope=scope, name=name,
                       kind="gstack#networkEndpoints", body={"endpoints": []})
    return lb_common.begin(call, res, "insert")


def delete(call: Call, zone: ZoneInfo, name: str) -> Operation:
    """Delete the group and its endpoints; refused while a backend service uses it."""
    scope = _scope(zone)
    res = lb_common.find(call, COLLECTION, scope, name)
    users = lb_common.users(call.session, call.project, res, ("backendServices",))
    if users:
        raise ResourceInUse("network_endpoint_group", vpc.path(res), vpc.path(users[0]))
    op = lb_common.begin(call, res, "delete")
    private = store.find_optional(call.session, call.project, ENDPOINTS, scope, name)
    if private is not None:
        call.session.delete(private)
    call.session.delete(res)
    call.session.flush()
    return op


def _stored(call: Call, group: Resource) -> tuple[Resource, list[Body]]:
    private = projects.find_for_update(call.session, group.project, ENDPOINTS, group.scope, group.name)
    return private, list(store.body_of(private).get("endpoints") or [])


def _endpoint(call: Call, group: Resource, item: object, field: str) -> Body:
    """An endpoint as stored: the instance's name, its address in the group's network, the port."""
    if not isinstance(item, dict):
        raise Invalid(field, item, "Must be an object.")
    body = store.body_of(group)
    if item.get("instance") in (None, ""):
        raise Required(f"{field}.instance")
    given = item["instance"]  # GCE takes the instance's name (the group's zone) or its URL
    if isinstance(given, str) and "/" not in given:
        given = f"{group.scope}/instances/{store.validate_name(given, f'{field}.instance')}"
    ref = vpc.reference(call, given, f"{field}.instance", "instances", group.scope)
    if ref.scope != group.scope:
        raise Invalid(f"{field}.instance", item["instance"], "The instance must be in the zone of the network "
                                                             "endpoint group.")
    inst = store.find(call.session, ref.project, "instances", ref.scope, ref.name)
    nic = next((n for n in store.body_of(inst).get("networkInterfaces") or []
                if n.get("network") == body["network"] and
                (not body.get("subnetwork") or n.get("subnetwork") == body["subnetwork"])), None)
    if nic is None:
        raise Invalid(f"{field}.instance", item["instance"], "The instance has no network interface in the network "
                                                             "endpoint group's network"
                                                             f"{' and subnetwork' if body.get('subnetwork') else ''}.")
    ip = nic.get("networkIP")
    if item.get("ipAddress") not in (None, ""):
        try:
            given = str(ipaddress.IPv4Address(item["ipAddress"]))
        except ValueError:
            raise Invalid(f"{field}.ipAddress", item["ipAddress"], "Must be an IPv4 address.") from None
        aliases = [ipaddress.IPv4Network(r["ipCidrRange"], strict=False) for r in nic.get("aliasIpRanges") or []
                   if isinstance(r.get("ipCidrRange"), str) and r["ipCidrRange"][:1].isdigit()]
        if given != ip and not any(ipaddress.IPv4Address(given) in a for a in aliases):
            raise Invalid(f"{field}.ipAddress", given, f"The IP address must be the primary address or in an alias "
                                                       f"range of instance '{inst.name}'.")
        ip = given
    port = item.get("port", body.get("defaultPort"))
    if port is None:
        raise Invalid(f"{field}.port", "", "The port is required: the network endpoint group has no defaultPort.")
    return {"instance": inst.name, "ipAddress": ip, "port": vpc.integer(port, f"{field}.port", 1, 65535, 0)}


def _endpoints(call: Call, group: Resource, body: Body) -> list[Body]:
    given = body.get("networkEndpoints")
    if not isinstance(given, list) or not given:
        raise Required("networkEndpoints")
    if len(given) > MAX_PER_CALL:
        raise Invalid("networkEndpoints", len(given), f"At most {MAX_PER_CALL} network endpoints per request.")
    return [_endpoint(call, group, item, f"networkEndpoints[{i}]") for i, item in enumerate(given)]


def _describe(e: Body) -> str:
    return f"{e['instance']} {e['ipAddress']}:{e['port']}"


def change(call: Call, zone: ZoneInfo, name: str, body: Body, attach: bool) -> Operation:
    """attachNetworkEndpoints and detachNetworkEndpoints: all the request's endpoints, or none."""
    group = lb_common.find(call, COLLECTION, _scope(zone), name)
    private, current = _stored(call, group)
    for i, e in enumerate(_endpoints(call, group, body)):
        present = e in current
        if attach and present:
            raise Invalid(f"networkEndpoints[{i}]", _describe(e), "The network endpoint is already in the network "
                                                                 "endpoint group.")
        if not attach and not present:
            raise Invalid(f"networkEndpoints[{i}]", _describe(e), "The network endpoint is not in the network "
                                                                 "endpoint group.")
        if attach:
            current.append(e)
        else:
            current.remove(e)
    if len(current) > MAX_ENDPOINTS:
        raise Invalid("networkEndpoints", len(current), f"A network endpoint group holds at most {MAX_ENDPOINTS} "
                                                        "network endpoints.")
    before = lb_common.networks_in_use(call.session, call.project)
    store.save(private, {**store.body_of(private), "endpoints": current})
    stored = store.body_of(group)
    stored["size"] = len(current)
    store.save(group, stored)
    lb_common.notify(call.session, call.project, before)
    return lb_common.begin(call, group, "attachNetworkEndpoints" if attach else "detachNetworkEndpoints")


def forget_instance(session: Session, instance: Resource) -> None:
    """Detach every endpoint of an instance being deleted, in the caller's transaction (which holds the
    instance's row lock; then each group's and its endpoints', the order attach and detach take)."""
    needle = f'"instance":"{instance.name}"'
    names = list(session.scalars(select(Resource.name).where(
        Resource.project == instance.project, Resource.collection == ENDPOINTS, Resource.scope == instance.scope,
        Resource.body.contains(needle, autoescape=True)).order_by(Resource.name)))
    for name in names:
        try:
            group = projects.find_for_update(session, instance.project, COLLECTION, instance.scope, name)
            private = projects.find_for_update(session, instance.project, ENDPOINTS, instance.scope, name)
        except NotFound:
            continue  # the group was deleted meanwhile, with its endpoints
        body = store.body_of(private)
        kept = [e for e in body.get("endpoints") or [] if e.get("instance") != instance.name]
        store.save(private, {**body, "endpoints": kept})
        stored = store.body_of(group)
        stored["size"] = len(kept)
        store.save(group, stored)


def list_endpoints(call: Call, zone: ZoneInfo, name: str, body: Body) -> list[Body]:
    """listNetworkEndpoints' items: the endpoints in attach order, with (``healthStatus: SHOW``) their
    health as each backend service using the group checks it."""
    group = store.find(call.session, call.project, COLLECTION, _scope(zone), name)
    show = (body.get("healthStatus") or "SKIP") == "SHOW"
    if body.get("healthStatus") not in (None, "SHOW", "SKIP"):
        raise Invalid("healthStatus", body["healthStatus"], "Must be SHOW or SKIP.")
    services = lb_common.users(call.session, call.project, group, ("backendServices",)) if show else []
    pairs = health.members(call.session, group)
    items = []
    for (e, _), ok in zip(pairs, health.healthy(call.session, pairs), strict=True):
        item: Body = {"networkEndpoint": dict(e)}
        if show:
            item["healths"] = [_status(s, ok) for s in services]
        items.append(item)
    return items


def _status(service: Resource, ok: bool) -> Body:
    checks = store.body_of(service).get("healthChecks") or []
    out: Body = {"backendService": {"backendService": vpc.url(service)}}
    if checks:
        out["healthCheck"] = {"healthCheck": checks[0]}
    out["healthState"] = health.HEALTHY if ok else health.UNHEALTHY
    return out


def endpoint_health(session: Session, group: Resource) -> list[Body]:
    """backendServices.getHealth of a group: each endpoint's instance URL, address, port and health."""
    pairs = health.members(session, group)
    return [{"healthState": health.HEALTHY if ok else health.UNHEALTHY,
             "instance": url_of(inst.project, inst.scope, "instances", inst.name), "ipAddress": e["ipAddress"],
             "port": e["port"]} for (e, inst), ok in zip(pairs, health.healthy(session, pairs), strict=True)]


def is_group_url(value: object) -> bool:
    ref = parse_ref(value, project="") if isinstance(value, str) else None
    return ref is not None and ref.collection == COLLECTION
