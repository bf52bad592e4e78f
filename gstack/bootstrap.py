"""First-run credentials, so the embedded default needs no set-up: an administrator user (for the
sign-in page) and an owner service account of demo-project with its JSON key file."""

from __future__ import annotations

import json
import os
import secrets

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import identity
from core.models import Principal, Project, ServiceAccountKey
from core.services.seed import DEMO_PROJECT, ensure_project

ADMIN_SA = "gstack-admin"
ADMIN_USER = "admin@gstack.local"
ADMIN_PASSWORD_FILE = "admin-password.txt"


def project_admin(session: Session, project_name: str) -> Principal:
    """The project's ``gstack-admin`` service account (owner), created on first use."""
    project = identity.find_project(session, project_name)
    email = identity.service_account_email(project_name, ADMIN_SA)
    sa = session.scalar(select(Principal).where(Principal.email == email))
    if sa is None:
        sa = identity.create_service_account(session, project, ADMIN_SA, "gstack administrator", "roles/owner")
    return sa


def write_private(path: str, text: str) -> None:
    """Write a file only its owner can read (it holds a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_key(path: str, key: dict) -> None:
    write_private(path, json.dumps(key, indent=2))


def admin_password_path(data_dir: str) -> str:
    return os.path.join(data_dir, ADMIN_PASSWORD_FILE)


def ensure_admin_user(session: Session, data_dir: str) -> str | None:
    """On the first run (no administrator user yet) create one, owner of demo-project, and write its
    password to ``admin-password.txt`` in the data directory. Returns that path when it was created."""
    if session.scalar(select(Principal.id).where(Principal.kind == "user", Principal.admin.is_(True))) is not None:
        return None
    password = secrets.token_urlsafe(18)
    user = identity.create_user(session, ADMIN_USER, password, display_name="gstack administrator", admin=True)
    identity.grant(session, identity.find_project(session, DEMO_PROJECT), user, "roles/owner")
    os.makedirs(data_dir, exist_ok=True)
    path = admin_password_path(data_dir)
    write_private(path, f"email: {ADMIN_USER}\npassword: {password}\n")
    return path


def ensure_demo_credentials(session: Session, data_dir: str, token_uri: str,
                            universe_domain: str = "googleapis.com") -> str:
    """Path of demo-project's key file, creating the account and key if they are missing (or naming
    another token URL or universe); on the first run also the administrator user (and says where
    its password is)."""
    ensure_project(session, DEMO_PROJECT)
    created = ensure_admin_user(session, data_dir)
    if created:
        click.echo(f"created the administrator {ADMIN_USER}; its password is in {created}", err=True)
    sa = project_admin(session, DEMO_PROJECT)
    path = os.path.join(data_dir, f"{DEMO_PROJECT}-key.json")
    valid = False
    if os.path.exists(path):
        with open(path) as f:
            key = json.load(f)
        valid = (key.get("token_uri"), key.get("universe_domain")) == (token_uri, universe_domain) and session.scalar(
            select(ServiceAccountKey).where(ServiceAccountKey.key_id == key.get("private_key_id"),
                                            ServiceAccountKey.disabled.is_(False))) is not None
    if not valid:
        project = session.scalars(select(Project).where(Project.name == DEMO_PROJECT)).one()
        os.makedirs(data_dir, exist_ok=True)
        write_key(path, identity.create_key(session, sa, project, token_uri, universe_domain))
    return path
