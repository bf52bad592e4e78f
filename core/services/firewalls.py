"""Firewall rules of a network (VPC firewall rules): validation, insert/patch/update/delete, and the
rules that apply to an instance. Every change is pushed to the network's virtual router."""

from __future__ import annotations

import ipaddress
import re

from sqlalchemy.orm import Session

from core import quotas
from core.errors import AlreadyExists, Invalid, Required
from core.links import path_of
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects, vpc
from core.services.metadata import validate_tags

PROTOCOLS = ("tcp", "udp", "icmp", "esp", "ah", "ipip", "sctp", "all")
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "all")
DIRECTIONS = ("INGRESS", "EGRESS")
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Fields a user sets; patch merges into them and update replaces them.
WRITABLE = ("description", "network", "priority", "direction", "allowed", "denied", "sourceRanges",
            "destinationRanges", "sourceTags", "targetTags", "sourceServiceAccounts", "targetServiceAccounts",
            "disabled", "logConfig")


def _rules(value: object, field: str) -> list[Body]:
    if not isinstance(value, list) or not value:
        raise Invalid(field, value, "Must be a non-empty list of rules.")
    out = []
    for i, rule in enumerate(value):
        item = f"{field}[{i}]"
        if not isinstance(rule, dict):
            raise Invalid(item, rule, "Must be an object.")
        proto = rule.get("IPProtocol")
        if proto in (None, ""):
            raise Required(f"{item}.IPProtocol")
        proto = str(proto).lower()
        if proto not in PROTOCOLS and not (proto.isdigit() and 0 <= int(proto) <= 255):
            raise Invalid(f"{item}.IPProtocol", rule.get("IPProtocol"), "Must be one of tcp, udp, icmp, esp, ah, ipip, "
                          "sctp, all, or an IP protocol number between 0 and 255.")
        entry: Body = {"IPProtocol": proto}
        ports = rule.get("ports")
        if ports:
            if proto not in PORT_PROTOCOLS:
                raise Invalid(f"{item}.ports", ports, "Ports may only be specified for tcp, udp, sctp and all.")
            entry["ports"] = [_port_range(p, f"{item}.ports[{j}]") for j, p in enumerate(ports)]
        out.append(entry)
    return out


def _port_range(value: object, field: str) -> str:
    m = _PORT.match(value) if isinstance(value, str) else None
    low, high = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (-1, -1)
    if m is None or not isinstance(value, str) or not 0 <= low <= high <= 65535:
        raise Invalid(field, value, "Must be a port number or a range of port numbers (e.g. 80 or 8000-8080) "
                                    "between 0 and 65535.")
    return value


def _ranges(value: object, field: str) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(field, value, "Must be a list of CIDR ranges.")
    for i, block in enumerate(value):
        try:
            if not isinstance(block, str):
                raise TypeError(block)
            ipaddress.ip_network(block, strict=False)
        except (TypeError, ValueError):
            raise Invalid(f"{field}[{i}]", block, "Must be an IP address or a CIDR range.") from None
    return list(value)


def _accounts(value: object, field: str) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(field, value, "Must be a list of service account emails.")
    for i, email in enumerate(value):
        if not isinstance(email, str) or not _EMAIL.match(email):
            raise Invalid(f"{field}[{i}]", email, "Must be a service account email address.")
    return list(value)


def _validated(call: Call, given: Body) -> tuple[Resource, Body]:
    """(network, the rule's writable fields) from a full request body, defaults filled in as GCE does."""
    net = vpc.network(call, given.get("network") or "global/networks/default", lock=True)
    out: Body = {}
    if given.get("description"):
        out["description"] = given["description"]
    out["network"] = vpc.network_url(net)
    out["priority"] = vpc.integer(given.get("priority"), "resource.priority", 0, 65535, 1000)
    direction = given.get("direction") or "INGRESS"
    if direction not in DIRECTIONS:
        raise Invalid("resource.direction", direction, "Must be INGRESS or EGRESS.")
    out["direction"] = direction
    allowed, denied = given.get("allowed"), given.get("denied")
    if bool(allowed) == bool(denied):
        raise Invalid("resource", "", message="Invalid value for field 'resource': ''. Exactly one of 'allowed' "
                                              "or 'denied' must be specified.")
    if allowed:
        out["allowed"] = _rules(allowed, "resource.allowed")
    else:
        out["denied"] = _rules(denied, "resource.denied")
    for key in ("sourceTags", "targetTags"):
        if given.get(key):
            out[key] = validate_tags(given[key], f"resource.{key}")
    for key in ("sourceServiceAccounts", "targetServiceAccounts"):
        if given.get(key):
            out[key] = _accounts(given[key], f"resource.{key}")
    for key in ("sourceRanges", "destinationRanges"):
        if given.get(key):
            out[key] = _ranges(given[key], f"resource.{key}")
    _check_combinations(out)
    if direction == "INGRESS" and not any(out.get(k) for k in ("sourceRanges", "sourceTags", "sourceServiceAccounts")):
        out["sourceRanges"] = ["0.0.0.0/0"]
    if direction == "EGRESS" and not out.get("destinationRanges"):
        out["destinationRanges"] = ["0.0.0.0/0"]
    out["disabled"] = bool(given.get("disabled", False))
    log = given.get("logConfig") or {}
    if not isinstance(log, dict):
        raise Invalid("resource.logConfig", log, "Must be an object.")
    out["logConfig"] = {"enable": bool(log.get("enable", False))}
    if log.get("metadata"):
        if not log.get("enable"):
            raise Invalid("resource.logConfig.metadata", log["metadata"], "Logging metadata can only be set when "
                                                                          "logging is enabled.")
        if log["metadata"] not in ("EXCLUDE_ALL_METADATA", "INCLUDE_ALL_METADATA"):
            raise Invalid("resource.logConfig.metadata", log["metadata"],
                          "Must be EXCLUDE_ALL_METADATA or INCLUDE_ALL_METADATA.")
        out["logConfig"]["metadata"] = log["metadata"]
    return net, out


def _check_combinations(rule: Body) -> None:
    if rule["direction"] == "EGRESS":
        for key in ("sourceTags", "sourceServiceAccounts"):
            if rule.get(key):
                raise Invalid(f"resource.{key}", rule[key], f"{key} may not be specified for an EGRESS rule.")
    pairs = [("sourceTags", "sourceServiceAccounts"), ("targetTags", "targetServiceAccounts"),
             ("sourceTags", "targetServiceAccounts"), ("sourceServiceAccounts", "targetTags")]
    for a, b in pairs:
        if rule.get(a) and rule.get(b):
            raise Invalid(f"resource.{b}", rule[b], f"{a} and {b} may not be specified together: rules match "
                                                    "either network tags or service accounts.")


def insert(call: Call, body: Body) -> Operation:
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    name = store.validate_name(body.get("name"))
    project = projects.get(call.session, call.project, lock=True)
    net, fields = _validated(call, body)
    if store.find_optional(call.session, call.project, "firewalls", "global", name):
        raise AlreadyExists(path_of(call.project, "global", "firewalls", name))
    quotas.check_global(call.session, project, "FIREWALLS")
    res = store.new_resource(call.session, project=call.project, collection="firewalls", scope="global", name=name,
                             kind="compute#firewall", body=fields)
    vpc.notify_router(call.session, call.project, fields["network"])
    return operations.begin(call, scope="global", op_type="insert", target_path=vpc.path(res), target_id=res.uid)


def _replace(call: Call, name: str, body: Body, op_type: str, merge: bool) -> Operation:
    res = projects.find_for_update(call.session, call.project, "firewalls", "global", name)
    current = store.body_of(res)
    if body.get("name") not in (None, res.name):
        raise Invalid("resource.name", body["name"], "The name of a firewall rule cannot be changed.")
    mine = {k: current[k] for k in WRITABLE if k in current}
    given = {k: v for k, v in body.items() if k in WRITABLE}
    wanted = vpc.merge_patch(mine, given) if merge else {"network": current["network"], **given}
    if merge:
        # a rule is an allow or a deny rule: the other list is dropped when one is set
        for key, other in (("allowed", "denied"), ("denied", "allowed")):
            if given.get(key) and other not in given:
                wanted.pop(other, None)
    net, fields = _validated(call, wanted)
    if fields["network"] != current["network"]:
        raise Invalid("resource.network", body.get("network"), "The network of a firewall rule cannot be changed.")
    if fields["direction"] != current["direction"]:
        raise Invalid("resource.direction", fields["direction"], "The direction of a firewall rule cannot be "
                                                                 "changed: delete the rule and create a new one.")
    if ("allowed" in fields) != ("allowed" in current):
        key = "allowed" if "allowed" in fields else "denied"
        raise Invalid(f"resource.{key}", fields[key], "A firewall rule cannot change between allowing and denying "
                                                      "traffic: delete the rule and create a new one.")
    store.save(res, {**{k: v for k, v in current.items() if k not in WRITABLE}, **fields})
    vpc.notify_router(call.session, call.project, fields["network"])
    return operations.begin(call, scope="global", op_type=op_type, target_path=vpc.path(res), target_id=res.uid)


def patch(call: Call, name: str, body: Body) -> Operation:
    """JSON merge patch: the given fields change, the others stay."""
    return _replace(call, name, body, "patch", merge=True)


def update(call: Call, name: str, body: Body) -> Operation:
    """PUT: the rule becomes the body (omitted fields take their defaults); name and network stay."""
    return _replace(call, name, body, "update", merge=False)


def delete(call: Call, name: str) -> Operation:
    res = projects.find_for_update(call.session, call.project, "firewalls", "global", name)
    network = store.body_of(res)["network"]
    op = operations.begin(call, scope="global", op_type="delete", target_path=vpc.path(res), target_id=res.uid)
    call.session.delete(res)
    vpc.notify_router(call.session, call.project, network)
    return op


def of_network(session: Session, project: str, net_url: str) -> list[Body]:
    """The network's rules, in evaluation order (priority, then name)."""
    rules = [store.body_of(r) for r in vpc.referring(session, project, "network", net_url, ["firewalls"])]
    return sorted(rules, key=lambda r: (r.get("priority", 1000), r["name"]))


def applies_to(rule: Body, tags: set[str], accounts: set[str]) -> bool:
    """Whether an enabled rule targets an instance with these network tags and service accounts."""
    if rule.get("disabled"):
        return False
    if rule.get("targetTags"):
        return bool(tags & set(rule["targetTags"]))
    if rule.get("targetServiceAccounts"):
        return bool(accounts & set(rule["targetServiceAccounts"]))
    return True


def for_instance(call: Call, zone: str, name: str, nic_name: str | None) -> Body:
    """instances.getEffectiveFirewalls: the rules of the interface's network that target the instance."""
    if not nic_name:
        raise Required("networkInterface")
    inst = store.body_of(store.find(call.session, call.project, "instances", f"zones/{zone}", name))
    nic = next((n for n in inst.get("networkInterfaces", []) if n.get("name") == nic_name), None)
    if nic is None:
        raise Invalid("networkInterface", nic_name, "The instance has no network interface of that name.")
    tags = set(inst.get("tags", {}).get("items", []))
    accounts = {sa["email"] for sa in inst.get("serviceAccounts", [])}
    return {"firewalls": [r for r in of_network(call.session, call.project, nic["network"])
                          if applies_to(r, tags, accounts)]}
