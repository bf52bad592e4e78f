"""regionDisks: disks replicated in two zones of a region, attachable to instances in either.

A regional disk is a disk row like any other (collection ``disks``, scope ``regions/R``, so its links
are GCE's ``.../regions/R/disks/NAME``): the disk use cases and the disk state table serve it
(:func:`core.services.disks.delete_in`, ``resize_in``, ``set_labels_in``, the ``disks.insert`` job,
:func:`core.services.snapshots.create_from_disk_in`). This module adds what is regional: the replica
zones, the regional disk type, GCE's 200 GB floor for regional pd-standard, and whether an instance
of a zone may attach it.

One machine has no second copy to keep: the bytes live in a storage pool of the first replica zone
(pools are zone-wide and this is one host's storage), which both zones' instances reach.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core import quotas
from core.errors import Invalid, NotFound, Required
from core.links import Ref, last_segment, parse_ref, path_of, scope_url, url_of
from core.models import Operation
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import disks, projects, resource_policies, topology, vpc
from core.services.topology import ZoneInfo

MIN_STANDARD_GB = 200  # GCE's smallest regional pd-standard disk


def _replica_zones(call: Call, region: str, value: object) -> list[ZoneInfo]:
    field = "resource.replicaZones"
    if value in (None, []):
        raise Required(field)
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) and v for v in value):
        raise Invalid(field, value if not isinstance(value, list) else ",".join(map(str, value)),
                      "A regional disk must have exactly two replica zones.")
    zones: list[ZoneInfo] = []
    for i, ref in enumerate(value):
        try:
            zone = topology.zone(call.session, call.project, last_segment(ref))
        except NotFound:
            raise Invalid(f"{field}[{i}]", ref, "The zone does not exist.") from None
        if zone.region.name != region:
            raise Invalid(f"{field}[{i}]", ref, f"Replica zones must be in the disk's region '{region}'.")
        zones.append(zone)
    if zones[0].name == zones[1].name:
        raise Invalid(field, ",".join(value), "The two replica zones must be different.")
    return zones


def _disk_type(call: Call, region: str, value: object) -> str | None:
    if value in (None, ""):
        return None
    ref = parse_ref(value, project=call.project, scope=f"regions/{region}") if isinstance(value, str) else None
    if ref is None and isinstance(value, str) and "/" not in value:
        return value
    if ref is None or ref.collection != "diskTypes":
        raise Invalid("resource.type", value, "The URL is malformed.")
    if ref.scope != f"regions/{region}":
        raise Invalid("resource.type", value, f"Disk type must be in region '{region}'.")
    return ref.name


def insert(call: Call, region: str, body: Body, source_image_param: str | None = None) -> Operation:
    scope = vpc.region_scope(call.session, call.project, region)
    if body.get("name") in (None, ""):
        raise Required("resource.name")
    zones = _replica_zones(call, region, body.get("replicaZones"))
    spec = disks.build(call, zones[0], name=body.get("name"), size_gb=body.get("sizeGb"),
                       disk_type=_disk_type(call, region, body.get("type")),
                       source_image=body.get("sourceImage") or source_image_param,
                       source_snapshot=body.get("sourceSnapshot"), labels=body.get("labels"),
                       description=body.get("description", ""))
    if spec["subtype"] == "pd-standard" and spec["size_gb"] < MIN_STANDARD_GB:
        raise Invalid("resource.sizeGb", spec["size_gb"], f"Disk size cannot be smaller than {MIN_STANDARD_GB} GB.")
    disk = spec["body"]
    disk.pop("zone")
    disk.update(region=scope_url(call.project, scope), type=url_of(call.project, scope, "diskTypes", spec["subtype"]),
                replicaZones=[scope_url(call.project, f"zones/{z.name}") for z in zones])
    policies = resource_policies.links_for_new(call, region, body.get("resourcePolicies"),
                                               "resource.resourcePolicies", "disks")
    if policies:
        disk["resourcePolicies"] = policies
    project = projects.get(call.session, call.project, lock=True)
    quotas.check_region(call.session, project, region, disks.quota_demand([spec]))
    res = store.new_resource(call.session, project=call.project, collection="disks", scope=scope, name=spec["name"],
                             kind="compute#disk", body=disk, status="CREATING", region=region,
                             size_gb=spec["size_gb"], subtype=spec["subtype"])
    quotas.recheck_region(call.session, project, region, disks.quota_demand([spec]))  # an instance's at once
    return operations.begin(call, scope=scope, op_type="insert", target_path=path_of(call.project, scope, "disks", res.name),
                            target_id=res.uid, job="disks.insert", params={"uids": [res.uid], "zone_id": zones[0].id})


def attachable_in(session: Session, ref: Ref, zone: str) -> bool:
    """Whether the disk ``ref`` names is a regional disk with a replica in ``zone`` (an instance there
    may attach it)."""
    if not ref.scope.startswith("regions/"):
        return False
    res = store.find_optional(session, ref.project, "disks", ref.scope, ref.name)
    if res is None:
        return False
    return any(last_segment(z) == zone for z in store.body_of(res).get("replicaZones", []))
