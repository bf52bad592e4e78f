"""Projects, principals, service-account keys and access tokens.

Tokens are random 256-bit strings stored as SHA-256 digests; service-account keys keep only
their public half (the private key goes to the caller once, in Google's JSON key format).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AccessToken, Membership, Principal, Project, ServiceAccountKey

ROLES = ("roles/owner", "roles/editor", "roles/viewer")
TOKEN_TTL = 3600


class IdentityError(Exception):
    """A refused identity operation (bad name, unknown project, duplicate ...)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_project(session: Session, name: str, *, public: bool = False, number: int | None = None) -> Project:
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise IdentityError(f"project {name} already exists")
    if number is None:
        number = secrets.randbelow(9 * 10**11) + 10**11  # 12 digits, like GCE project numbers
    p = Project(name=name, number=number, created=time.time(), public=public, common_metadata="[]",
                metadata_fingerprint="", quota_limits="{}")
    session.add(p)
    session.flush()
    return p


def service_account_email(project: str, name: str) -> str:
    return f"{name}@{project}.iam.gserviceaccount.com"


def create_service_account(session: Session, project: Project, name: str, display_name: str = "",
                           role: str = "roles/editor") -> Principal:
    email = service_account_email(project.name, name)
    if session.scalar(select(Principal).where(Principal.email == email)) is not None:
        raise IdentityError(f"service account {email} already exists")
    sa = Principal(kind="serviceAccount", email=email, display_name=display_name or name, project_id=project.id,
                   created=time.time())
    session.add(sa)
    session.flush()
    grant(session, project, sa, role)
    return sa


def grant(session: Session, project: Project, principal: Principal, role: str) -> None:
    if role not in ROLES:
        raise IdentityError(f"unknown role {role}; use one of {', '.join(ROLES)}")
    m = session.scalar(select(Membership).where(Membership.project_id == project.id,
                                                Membership.principal_id == principal.id))
    if m is None:
        session.add(Membership(project_id=project.id, principal_id=principal.id, role=role))
    else:
        m.role = role
    session.flush()


def create_key(session: Session, sa: Principal, project: Project, token_uri: str) -> dict:
    """A new RSA key for the service account, returned as Google's JSON key file content."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = secrets.token_hex(20)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    session.add(ServiceAccountKey(key_id=key_id, principal_id=sa.id, public_pem=public_pem, created=time.time()))
    session.flush()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    return {
        "type": "service_account", "project_id": project.name, "private_key_id": key_id,
        "private_key": private_pem, "client_email": sa.email, "client_id": str(10**20 + sa.id),
        "auth_uri": token_uri.rsplit("/token", 1)[0] + "/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": token_uri.rsplit("/token", 1)[0] + "/oauth2/v1/certs",
        "client_x509_cert_url": token_uri.rsplit("/token", 1)[0] + f"/robot/v1/metadata/x509/{sa.email}",
        "universe_domain": "googleapis.com",
    }


def issue_token(session: Session, principal: Principal, scopes: list[str], *, client_id: str = "",
                ttl: int = TOKEN_TTL) -> tuple[str, int]:
    token = "ya29." + secrets.token_urlsafe(48)
    session.add(AccessToken(token_hash=digest(token), principal_id=principal.id, client_id=client_id,
                            scopes=" ".join(scopes), expires=time.time() + ttl, revoked=False, created=time.time()))
    session.flush()
    return token, ttl


def key_json(key: dict) -> str:
    return json.dumps(key, indent=2)
