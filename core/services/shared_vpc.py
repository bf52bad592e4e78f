"""Shared VPC (GCE's XPN): a *host* project lends its networks to attached *service* projects, whose
instances then take NICs on the host's subnetworks (and the host's firewall rules and router serve
them, since both follow the network).

State lives in the projects' settings rows (:func:`core.services.projects.settings`): ``xpnHost`` on
the host, ``xpnHostProject`` on each service project. GCE asks for organization-level roles here;
gstack has no organizations, so enabling a host needs write access to it, and attaching a service
project write access to both. Using a host's subnetwork needs the service project attached and any
role on the host (GCE's ``compute.networkUser``); :func:`check_network_use` is that check, made
wherever a body names a network or subnetwork of another project.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import BadRequest, Forbidden, Invalid, NotFound, Required
from core.identity import access
from core.links import CANONICAL_BASE
from core.models import Operation, Project, Resource
from core.resources import operations
from core.resources.context import Call
from core.resources.store import Body
from core.services import projects


def host_of(session: Session, project: str) -> str | None:
    """The host project ``project`` is attached to, if any."""
    host = projects.settings(session, project).get("xpnHostProject")
    return str(host) if host else None


def is_host(session: Session, project: str) -> bool:
    return bool(projects.settings(session, project).get("xpnHost"))


def service_projects(session: Session, host: str) -> list[str]:
    """The projects attached to ``host``, by name."""
    rows = session.scalars(select(Resource).where(Resource.collection == projects.SETTINGS,
                                                  Resource.body.contains(f'"xpnHostProject":"{host}"')))
    return sorted(r.project for r in rows)


def check_network_use(call: Call, project: str, field: str, value: object) -> None:
    """A body names a network or subnetwork of ``project``: fine in the caller's own project; in
    another only when that is the Shared VPC host of the caller's, and the caller may use it."""
    if project == call.project:
        return
    if host_of(call.session, call.project) != project:
        raise Invalid(field, value, f"Project '{call.project}' is not a Shared VPC service project of "
                                    f"'{project}': networks of another project cannot be used.")
    if not access.may_call_as(call.session, call.user, project, read_only=True):
        raise Forbidden(f"Required 'compute.subnetworks.use' permission for '{value}'")


def _operation(call: Call, p: Project, method: str) -> Operation:
    return operations.begin(call, scope="global", op_type=method, target_path=f"projects/{p.name}",
                            target_id=p.number)


def enable_host(call: Call) -> Operation:
    p = projects.get(call.session, call.project, lock=True)
    if host_of(call.session, p.name):
        raise BadRequest(f"Project '{p.name}' is a service project of '{host_of(call.session, p.name)}': a "
                         "service project cannot be a Shared VPC host.")
    projects.update_settings(call.session, p.name, xpnHost=True)
    return _operation(call, p, "enableXpnHost")


def disable_host(call: Call) -> Operation:
    p = projects.get(call.session, call.project, lock=True)
    attached = service_projects(call.session, p.name)
    if attached:
        raise BadRequest(f"The Shared VPC host project '{p.name}' still has service projects attached "
                         f"({', '.join(attached)}): detach them first.")
    projects.update_settings(call.session, p.name, xpnHost=None)
    return _operation(call, p, "disableXpnHost")


def _service(call: Call, body: Body) -> Project:
    res = body.get("xpnResource")
    if not isinstance(res, dict) or not res.get("id"):
        raise Required("xpnResource.id")
    if res.get("type", "PROJECT") != "PROJECT":
        raise Invalid("xpnResource.type", res.get("type"), "Must be PROJECT.")
    try:
        service = projects.get(call.session, str(res["id"]), lock=True)
    except NotFound:
        raise NotFound(f"projects/{res['id']}") from None
    if not access.may_call_as(call.session, call.user, service.name, read_only=False):
        raise Forbidden(f"Required 'compute.organizations.enableXpnResource' permission for "
                        f"'projects/{service.name}'")
    return service


def enable_resource(call: Call, body: Body) -> Operation:
    """Attach a service project to this host."""
    host = projects.get(call.session, call.project, lock=True)
    if not is_host(call.session, host.name):
        raise BadRequest(f"Project '{host.name}' is not a Shared VPC host project: enableXpnHost first.")
    service = _service(call, body)
    if service.name == host.name or is_host(call.session, service.name):
        raise BadRequest(f"Project '{service.name}' is a Shared VPC host project and cannot be a service project.")
    current = host_of(call.session, service.name)
    if current not in (None, host.name):
        raise BadRequest(f"Project '{service.name}' is already a service project of '{current}'.")
    projects.update_settings(call.session, service.name, xpnHostProject=host.name)
    return _operation(call, host, "enableXpnResource")


def disable_resource(call: Call, body: Body) -> Operation:
    """Detach a service project; refused while its instances still use the host's networks."""
    host = projects.get(call.session, call.project, lock=True)
    service = _service(call, body)
    if host_of(call.session, service.name) != host.name:
        raise BadRequest(f"Project '{service.name}' is not a service project of '{host.name}'.")
    marker = f"/projects/{host.name}/global/networks/"
    user = call.session.scalar(select(Resource.name).where(
        Resource.project == service.name, Resource.collection == "instances",
        Resource.body.contains(marker, autoescape=True)).limit(1))
    if user is not None:
        raise BadRequest(f"Instance '{user}' of project '{service.name}' still uses a network of '{host.name}': "
                         "delete it before detaching the service project.")
    projects.update_settings(call.session, service.name, xpnHostProject=None)
    return _operation(call, host, "disableXpnResource")


def get_host(call: Call) -> Body:
    """The host project of this service project, or an empty body when it has none."""
    host = host_of(call.session, call.project)
    if host is None:
        return {}
    return projects.to_json(call.session, projects.get(call.session, host))


def get_resources(call: Call) -> Body:
    projects.get(call.session, call.project)
    items = [{"id": name, "type": "PROJECT"} for name in service_projects(call.session, call.project)]
    return {"kind": "compute#projectsGetXpnResources", **({"resources": items} if items else {})}


def list_hosts(call: Call) -> Body:
    """The host projects the caller can read (gstack has no organizations to list them by)."""
    rows = call.session.scalars(select(Resource.project).where(
        Resource.collection == projects.SETTINGS, Resource.body.contains('"xpnHost":true')))
    hosts = sorted(name for name in set(rows) if access.may_call_as(call.session, call.user, name, read_only=True))
    items = [projects.to_json(call.session, projects.get(call.session, h)) for h in hosts]
    self_link = f"{CANONICAL_BASE}projects/{call.project}/listXpnHosts"
    return {"kind": "compute#xpnHostList", "selfLink": self_link, **({"items": items} if items else {})}
