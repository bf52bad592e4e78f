"""The ``computeMetadata/v1`` tree of one instance, built from its :class:`GuestView`.

Names and shapes follow GCE's metadata server: references are ``projects/NUMBER/...`` (the
project's number, not its name), flags are ``TRUE``/``FALSE`` strings, ``tags`` is a JSON array,
``scopes`` one per line. ``token`` and ``identity`` are listed but made only when asked for
(:mod:`gstack.metadata.accounts`).
"""

from __future__ import annotations

from typing import Any

from core.ipam import mac_for
from core.services.instance_metadata import GuestView, NicView
from gstack.metadata.render import Dir, Leaf, Node

DNS_SERVER = "169.254.169.254"  # the metadata server answers DNS too, as on GCE
MTU = "1460"
UNIVERSE = "googleapis.com"


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _flag(value: object) -> Leaf:
    return Leaf("TRUE" if value else "FALSE")


def _numbered(entries: list[Node]) -> Dir:
    return Dir({str(i): entry for i, entry in enumerate(entries)}, "list")


def _access_config(ac: dict[str, Any]) -> Node:
    return Dir({"external-ip": Leaf(ac.get("natIP", "")), "type": Leaf(ac.get("type", "ONE_TO_ONE_NAT"))})


def _nic(view: GuestView, nic: NicView) -> Node:
    body = nic.body
    ip = body.get("networkIP", "")
    aliases = [r.get("ipCidrRange", "") for r in body.get("aliasIpRanges", [])]
    return Dir({
        "access-configs": _numbered([_access_config(ac) for ac in body.get("accessConfigs", [])]),
        "dns-servers": Leaf(DNS_SERVER),
        "forwarded-ips": Dir({}, "list"),
        "gateway": Leaf(nic.gateway),
        "ip": Leaf(ip),
        "ip-aliases": _numbered([Leaf(a) for a in aliases]),
        "mac": Leaf(mac_for(ip) if ip else ""),
        "mtu": Leaf(MTU),
        "network": Leaf(f"projects/{view.project_number}/networks/{_last(body.get('network', ''))}"),
        "subnetmask": Leaf(nic.netmask),
        "target-instance-ips": Dir({}, "list"),
    })


def _disk(disk: dict[str, Any]) -> Node:
    return Dir({"device-name": Leaf(disk.get("deviceName", "")), "index": Leaf(int(disk.get("index", 0))),
                "interface": Leaf(disk.get("interface", "SCSI")), "mode": Leaf(disk.get("mode", "READ_WRITE")),
                "type": Leaf(disk.get("type", "PERSISTENT"))})


def account_dir(email: str, scopes: list[str]) -> Dir:
    return Dir({"aliases": Leaf(["default"], text="default"), "email": Leaf(email),
                "identity": Leaf("", hidden=True), "scopes": Leaf(list(scopes), text="".join(s + "\n" for s in scopes)),
                "token": Leaf("", hidden=True)})


def _service_accounts(body: dict[str, Any]) -> Dir:
    accounts: dict[str, Node] = {}
    for sa in body.get("serviceAccounts", []):
        entry = account_dir(sa["email"], sa.get("scopes", []))
        accounts["default"] = entry
        accounts[sa["email"]] = entry
    return Dir(accounts, "map")


def _guest_attributes(view: GuestView) -> Dir:
    namespaces: dict[str, dict[str, Node]] = {}
    for namespace, key, value in view.guest_attributes:
        namespaces.setdefault(namespace, {})[key] = Leaf(value)
    return Dir({ns: Dir(keys, "map") for ns, keys in namespaces.items()}, "map")


def _scheduling(body: dict[str, Any]) -> Dir:
    sched = body.get("scheduling", {})
    return Dir({"automatic-restart": _flag(sched.get("automaticRestart", True)),
                "on-host-maintenance": Leaf(sched.get("onHostMaintenance", "MIGRATE")),
                "preemptible": _flag(sched.get("preemptible", False))})


def instance_dir(view: GuestView) -> Dir:
    body = view.body
    return Dir({
        "attributes": Dir({key: Leaf(value) for key, value in view.items.items()}, "map"),
        "cpu-platform": Leaf(body.get("cpuPlatform", "")),
        "description": Leaf(body.get("description", "")),
        "disks": _numbered([_disk(d) for d in body.get("disks", [])]),
        "guest-attributes": _guest_attributes(view),
        "hostname": Leaf(body.get("hostname") or f"{body.get('name')}.{view.zone}.c.{view.project}.internal"),
        "id": Leaf(view.uid),
        "image": Leaf(view.image),
        "machine-type": Leaf(f"projects/{view.project_number}/machineTypes/{_last(body.get('machineType', ''))}"),
        "maintenance-event": Leaf("NONE"),
        "name": Leaf(body.get("name", "")),
        "network-interfaces": _numbered([_nic(view, nic) for nic in view.nics]),
        "preempted": Leaf("FALSE"),
        "scheduling": _scheduling(body),
        "service-accounts": _service_accounts(body),
        "tags": Leaf(list(body.get("tags", {}).get("items", [])), json_alone=True),
        "zone": Leaf(f"projects/{view.project_number}/zones/{view.zone}"),
    })


def project_dir(view: GuestView) -> Dir:
    return Dir({"attributes": Dir({key: Leaf(value) for key, value in view.project_items.items()}, "map"),
                "numeric-project-id": Leaf(view.project_number), "project-id": Leaf(view.project)})


def metadata_tree(view: GuestView) -> Dir:
    """``computeMetadata/v1/`` of the instance."""
    return Dir({"instance": instance_dir(view), "project": project_dir(view),
                "universe": Dir({"universe-domain": Leaf(UNIVERSE)})})
