"""First-run credentials: an owner service account for demo-project and its JSON key file."""

from __future__ import annotations

import json
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import identity
from core.models import Principal, Project, ServiceAccountKey
from core.seed import DEMO_PROJECT, ensure_project

ADMIN_SA = "gstack-admin"


def project_admin(session: Session, project_name: str) -> Principal:
    """The project's ``gstack-admin`` service account (owner), created on first use."""
    project = session.scalar(select(Project).where(Project.name == project_name))
    if project is None:
        raise identity.IdentityError(f"project {project_name} does not exist")
    email = identity.service_account_email(project_name, ADMIN_SA)
    sa = session.scalar(select(Principal).where(Principal.email == email))
    if sa is None:
        sa = identity.create_service_account(session, project, ADMIN_SA, "gstack administrator", "roles/owner")
    return sa


def write_key(path: str, key: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key, f, indent=2)


def ensure_demo_credentials(session: Session, data_dir: str, token_uri: str) -> str:
    """Path of demo-project's key file, creating the account and key if they are missing."""
    ensure_project(session, DEMO_PROJECT)
    sa = project_admin(session, DEMO_PROJECT)
    path = os.path.join(data_dir, f"{DEMO_PROJECT}-key.json")
    valid = False
    if os.path.exists(path):
        with open(path) as f:
            key = json.load(f)
        valid = key.get("token_uri") == token_uri and session.scalar(
            select(ServiceAccountKey).where(ServiceAccountKey.key_id == key.get("private_key_id"),
                                            ServiceAccountKey.disabled.is_(False))) is not None
    if not valid:
        project = session.scalar(select(Project).where(Project.name == DEMO_PROJECT))
        os.makedirs(data_dir, exist_ok=True)
        write_key(path, identity.create_key(session, sa, project, token_uri))
    return path
