"""Who may call what on which project: the role a principal holds there, and what that role allows.

The HTTP layer asks these questions on every API call; the answers (and the SQL behind them) live
here so that every front door (the API, the console proxy's tickets) decides the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Membership, Principal, Project

# Roles that may change a project's resources; any role (or a public project) may read them.
WRITE_ROLES = frozenset({"roles/owner", "roles/editor"})
# A project number is a positive 64-bit integer: longer digit strings can only be names.
_MAX_PROJECT_NUMBER = 2**63


@dataclass(frozen=True)
class ProjectAccess:
    """A principal's standing on one project: its role (None: not a member) and whether the project
    is public (the image projects everyone reads)."""

    role: str | None
    public: bool

    def allows(self, read_only: bool) -> bool:
        """Readers need any role or a public project; writers need owner or editor."""
        if read_only and (self.public or self.role is not None):
            return True
        return self.role in WRITE_ROLES


NO_ACCESS = ProjectAccess(None, False)


def project_access(session: Session, principal_id: int, project: str) -> ProjectAccess:
    """The principal's role on the project named ``project`` (no access when there is no such project)."""
    row = session.execute(select(Project.id, Project.public).where(Project.name == project)).first()
    if row is None:
        return NO_ACCESS
    role = session.scalar(select(Membership.role).where(Membership.project_id == row.id,
                                                        Membership.principal_id == principal_id))
    return ProjectAccess(role, bool(row.public))


def may_call(admin: bool, access: ProjectAccess, read_only: bool) -> bool:
    """Cloud administrators reach every project; anyone else what their access allows."""
    return admin or access.allows(read_only)


def permission(resource: str, method: str) -> str:
    """The IAM permission Google names in a refusal: ``compute.instances.create`` for instances.insert."""
    verb = {"insert": "create", "aggregatedList": "list"}.get(method, method)
    return f"compute.{resource}.{verb}"


def project_name(session: Session, ref: str) -> str:
    """The project a path names: a project number names it too (``projects/123456789012``); any other
    reference, or a number no project has, is taken as the name itself."""
    if not ref.isdigit() or int(ref) >= _MAX_PROJECT_NUMBER:
        return ref
    return session.scalar(select(Project.name).where(Project.number == int(ref))) or ref


def may_call_as(session: Session, email: str, project: str, read_only: bool) -> bool:
    """:func:`may_call` for a principal known by email: what a use case asks when a request reaches
    into a second project (a Shared VPC host's subnetwork, a service project to attach)."""
    row = session.execute(select(Principal.id, Principal.admin).where(Principal.email == email)).first()
    if row is None:
        return False
    return may_call(bool(row.admin), project_access(session, row.id, project), read_only)
