"""The operator's view of who is who: users, projects and service accounts listed with their counts,
and the keys of service accounts switched on and off (``gstack admin``)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.identity import IdentityError, find_key
from core.models import Membership, Principal, Project


def users_with_project_counts(session: Session) -> list[tuple[Principal, int]]:
    """Every user, by email, with the number of projects it is a member of."""
    projects = func.count(Membership.id)
    rows = session.execute(select(Principal, projects).outerjoin(Membership, Membership.principal_id == Principal.id)
                           .where(Principal.kind == "user").group_by(Principal.id).order_by(Principal.email))
    return [(user, count) for user, count in rows]


def projects_with_member_counts(session: Session) -> list[tuple[Project, int]]:
    """Every project (public image projects included), by name, with its number of members."""
    count = func.count(Membership.id)
    rows = session.execute(select(Project, count).outerjoin(Membership, Membership.project_id == Project.id)
                           .group_by(Project.id).order_by(Project.name))
    return [(project, members) for project, members in rows]


def service_accounts(session: Session, project: Project | None = None) -> list[Principal]:
    """Service accounts by email: all of them, or those of one project."""
    q = select(Principal).where(Principal.kind == "serviceAccount").order_by(Principal.email)
    if project is not None:
        q = q.where(Principal.project_id == project.id)
    return list(session.scalars(q))


def service_account(session: Session, email: str) -> Principal | None:
    """The principal with exactly this email (service-account emails are made, never typed, so no folding)."""
    return session.scalar(select(Principal).where(Principal.email == email))


def home_project(session: Session, account: Principal) -> Project:
    """The project a service account belongs to; IdentityError for a user (who belongs to none)."""
    project = session.get(Project, account.project_id) if account.project_id is not None else None
    if project is None:
        raise IdentityError(f"{account.email} is not a service account of a project")
    return project


def set_key(session: Session, key_id: str, *, disabled: bool | None) -> None:
    """Disable or enable a service-account key, or delete it (``disabled`` None); IdentityError if unknown."""
    key = find_key(session, key_id)
    if disabled is None:
        session.delete(key)
    else:
        key.disabled = disabled

