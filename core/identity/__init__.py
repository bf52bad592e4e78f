"""Projects, principals (users and service accounts), OAuth clients, keys, codes and tokens.

Secrets are never stored in clear: tokens, codes and client secrets are random 256-bit strings
stored as SHA-256 digests; passwords are hashed with scrypt; service-account keys keep only their
public half (the private key goes to the caller once, in Google's JSON key format).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import ColumnElement, CursorResult, Executable, delete, or_, select, update
from sqlalchemy.orm import Session

from core.models import AccessToken, Membership, Principal, Project, ServiceAccountKey
from core.models.identity import (
    AuthorizationCode,
    BrowserSession,
    DeviceAuthorization,
    OAuthClient,
    RefreshToken,
)

ROLES = ("roles/owner", "roles/editor", "roles/viewer")
TOKEN_TTL = 3600
CODE_TTL = 300  # authorization codes: single use, five minutes
SESSION_TTL = 12 * 3600
# OWASP's scrypt parameters (N=2^15, r=8, p=3: 32 MiB, about a quarter second); stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 3
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class IdentityError(Exception):
    """A refused identity operation (bad name, unknown project, duplicate ...)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(secret: str, stored_digest: str | None) -> bool:
    """Constant-time check of a presented secret against a stored digest."""
    return stored_digest is not None and hmac.compare_digest(digest(secret), stored_digest)


def subject_id(principal: Principal) -> str:
    """The principal's numeric unique id (21 digits, like Google's ``sub`` and service-account ids)."""
    return str(10**20 + principal.id)


# --------------------------------------------------------------------------- passwords

def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=128 * 1024 * 1024, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


# A hash of a password nobody knows (it was random and thrown away), checked against when there is no
# account, so that an unknown email takes as long to refuse as a wrong password.
_DUMMY_HASH = "scrypt$32768$8$3$5a5bR6/7IH7puyCTpVKR5Q==$PeC7lKh382YYSFVgs1BVDaZ5tP27nE1ff+20gdHf0l0="


def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; without a stored hash, False after the same work."""
    try:
        scheme, n, r, p, salt, key = (stored or _DUMMY_HASH).split("$")
        derived = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                 maxmem=128 * 1024 * 1024, dklen=len(base64.b64decode(key)))
    except (ValueError, TypeError):
        return False
    return stored is not None and scheme == "scrypt" and hmac.compare_digest(derived, base64.b64decode(key))


def check_password_strength(password: str) -> None:
    if len(password) < 8:
        raise IdentityError("the password must be at least 8 characters long")


# --------------------------------------------------------------------------- projects and principals

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


def find_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise IdentityError(f"project {name} does not exist")
    return project


def find_principal(session: Session, email: str) -> Principal | None:
    return session.scalar(select(Principal).where(Principal.email == email.strip().lower()))


def require_principal(session: Session, email: str) -> Principal:
    principal = find_principal(session, email)
    if principal is None:
        raise IdentityError(f"no user or service account {email}")
    return principal


def create_user(session: Session, email: str, password: str, *, display_name: str = "",
                admin: bool = False) -> Principal:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise IdentityError(f"{email!r} is not an email address")
    if email.endswith(".iam.gserviceaccount.com"):
        raise IdentityError("user emails may not end in .iam.gserviceaccount.com (that is a service account)")
    if find_principal(session, email) is not None:
        raise IdentityError(f"{email} already exists")
    check_password_strength(password)
    user = Principal(kind="user", email=email, display_name=display_name or email.split("@")[0],
                     password_hash=hash_password(password), admin=admin, created=time.time())
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: Principal, password: str) -> None:
    if user.kind != "user":
        raise IdentityError(f"{user.email} is not a user")
    check_password_strength(password)
    user.password_hash = hash_password(password)
    session.execute(delete(BrowserSession).where(BrowserSession.principal_id == user.id))
    session.flush()


def authenticate_user(session: Session, email: str, password: str) -> Principal | None:
    """The enabled user with this email and password, else None (in the same time either way)."""
    user = find_principal(session, email)
    stored = user.password_hash if user is not None and user.kind == "user" and not user.disabled else None
    return user if verify_password(stored, password) else None


def delete_principal(session: Session, principal: Principal) -> None:
    """Remove a principal with everything that lets it in: tokens, codes, sessions, keys, memberships."""
    pid = principal.id
    session.execute(delete(AccessToken).where(AccessToken.principal_id == pid))
    session.execute(delete(RefreshToken).where(RefreshToken.principal_id == pid))
    session.execute(delete(AuthorizationCode).where(AuthorizationCode.principal_id == pid))
    session.execute(delete(DeviceAuthorization).where(DeviceAuthorization.principal_id == pid))
    session.execute(delete(BrowserSession).where(BrowserSession.principal_id == pid))
    session.execute(delete(ServiceAccountKey).where(ServiceAccountKey.principal_id == pid))
    session.execute(delete(Membership).where(Membership.principal_id == pid))
    session.delete(principal)
    session.flush()


def service_account_email(project: str, name: str) -> str:
    return f"{name}@{project}.iam.gserviceaccount.com"


_SA_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$")


def create_service_account(session: Session, project: Project, name: str, display_name: str = "",
                           role: str | None = "roles/editor") -> Principal:
    if not _SA_NAME.match(name):
        raise IdentityError(f"invalid service account name {name!r}: 6-30 characters, lowercase letters, digits "
                            "and hyphens, starting with a letter")
    email = service_account_email(project.name, name)
    if session.scalar(select(Principal).where(Principal.email == email)) is not None:
        raise IdentityError(f"service account {email} already exists")
    sa = Principal(kind="serviceAccount", email=email, display_name=display_name or name, project_id=project.id,
                   created=time.time())
    session.add(sa)
    session.flush()
    if role:
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


def _rowcount(session: Session, statement: Executable) -> int:
    """The rows a DELETE or UPDATE touched (``Session.execute`` is typed for SELECTs, which have no count)."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def revoke_membership(session: Session, project: Project, principal: Principal) -> None:
    found = _rowcount(session, delete(Membership).where(Membership.project_id == project.id,
                                                        Membership.principal_id == principal.id))
    if not found:
        raise IdentityError(f"{principal.email} is not a member of {project.name}")


def members(session: Session, project: Project) -> list[tuple[Principal, str]]:
    rows = session.execute(select(Principal, Membership.role).join(Membership, Membership.principal_id == Principal.id)
                           .where(Membership.project_id == project.id).order_by(Principal.email))
    return [(p, role) for p, role in rows]


# --------------------------------------------------------------------------- service-account keys

def create_key(session: Session, sa: Principal, project: Project, token_uri: str,
               universe_domain: str = "googleapis.com") -> dict[str, str]:
    """A new RSA key for the service account, returned as Google's JSON key file content. Clients
    take the universe (and with it every API host they derive) from the key's ``universe_domain``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = secrets.token_hex(20)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    session.add(ServiceAccountKey(key_id=key_id, principal_id=sa.id, public_pem=public_pem, created=time.time()))
    session.flush()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    base = token_uri.rsplit("/token", 1)[0]
    return {
        "type": "service_account", "project_id": project.name, "private_key_id": key_id,
        "private_key": private_pem, "client_email": sa.email, "client_id": subject_id(sa),
        "auth_uri": base + "/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": base + "/oauth2/v1/certs",
        "client_x509_cert_url": base + f"/robot/v1/metadata/x509/{sa.email}",
        "universe_domain": universe_domain,
    }


def keys_of(session: Session, sa: Principal) -> list[ServiceAccountKey]:
    return list(session.scalars(select(ServiceAccountKey).where(ServiceAccountKey.principal_id == sa.id)
                                .order_by(ServiceAccountKey.created)))


def find_key(session: Session, key_id: str) -> ServiceAccountKey:
    key = session.scalar(select(ServiceAccountKey).where(ServiceAccountKey.key_id == key_id))
    if key is None:
        raise IdentityError(f"no service-account key {key_id}")
    return key


def key_json(key: dict[str, str]) -> str:
    return json.dumps(key, indent=2)


# --------------------------------------------------------------------------- OAuth clients

def create_client(session: Session, name: str, redirect_uris: Iterable[str], *, kind: str = "installed",
                  public: bool = False, client_id: str | None = None) -> tuple[OAuthClient, str | None]:
    """Register a client; returns it with its secret (None for a public client), shown only now."""
    if kind not in ("installed", "web"):
        raise IdentityError("the client type is installed or web")
    uris = [u.strip() for u in redirect_uris if u.strip()]
    for uri in uris:
        if not re.match(r"^[a-z][a-z0-9+.-]*://[^\s#]+$", uri, re.IGNORECASE):
            raise IdentityError(f"redirect URI {uri!r} must be absolute, without a fragment")
    if kind == "web" and not uris:
        raise IdentityError("a web client needs at least one --redirect-uri")
    client_id = client_id or f"{secrets.randbelow(9 * 10**11) + 10**11}-{secrets.token_hex(16)}.apps.gstack.local"
    if session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id)) is not None:
        raise IdentityError(f"client {client_id} already exists")
    secret = None if public else "GOCSPX-" + secrets.token_urlsafe(24)
    client = OAuthClient(client_id=client_id, secret_hash=digest(secret) if secret else None, name=name, kind=kind,
                         redirect_uris="\n".join(uris), created=time.time())
    session.add(client)
    session.flush()
    return client, secret


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def registered_clients(session: Session) -> list[OAuthClient]:
    """The clients an operator registered, oldest first."""
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.created)))


# --------------------------------------------------------------------------- tokens

def new_access_token() -> str:
    return "ya29." + secrets.token_urlsafe(48)


def new_refresh_token() -> str:
    return "1//" + secrets.token_urlsafe(48)


def issue_token(session: Session, principal: Principal, scopes: list[str], *, client_id: str = "",
                ttl: int = TOKEN_TTL) -> tuple[str, int]:
    token = new_access_token()
    store_access_token(session, token, principal.id, client_id, scopes, ttl)
    return token, ttl


def store_access_token(session: Session, token: str, principal_id: int, client_id: str, scopes: Iterable[str],
                       ttl: int, *, refresh_token_id: int | None = None, grant: str | None = None) -> None:
    now = time.time()
    session.add(AccessToken(token_hash=digest(token), principal_id=principal_id, client_id=client_id,
                            scopes=" ".join(scopes), expires=now + ttl, revoked=False, created=now,
                            refresh_token_id=refresh_token_id, grant=grant))
    session.flush()


def store_refresh_token(session: Session, token: str, principal_id: int, client_id: str, scopes: Iterable[str],
                        grant: str | None) -> RefreshToken:
    row = RefreshToken(token_hash=digest(token), principal_id=principal_id, client_id=client_id,
                       scopes=" ".join(scopes), grant=grant, revoked=False, created=time.time())
    session.add(row)
    session.flush()
    return row


def find_refresh_token(session: Session, token: str) -> RefreshToken | None:
    """A live refresh token: not revoked, its principal enabled."""
    row = session.execute(select(RefreshToken, Principal.disabled).join(Principal)
                          .where(RefreshToken.token_hash == digest(token))).first()
    if row is None or row[0].revoked or row[1]:
        return None
    return row[0]


def _revoke_access(session: Session, *conditions: ColumnElement[bool]) -> list[str]:
    hashes = list(session.scalars(select(AccessToken.token_hash).where(or_(*conditions),
                                                                        AccessToken.revoked.is_(False))))
    if hashes:
        session.execute(update(AccessToken).where(AccessToken.token_hash.in_(hashes)).values(revoked=True))
    return hashes


def revoke_token(session: Session, token: str) -> list[str] | None:
    """Revoke an access or refresh token together with its counterpart (Google revokes the refresh token
    of a revoked access token, and every access token of a revoked refresh token). Returns the digests
    of the access tokens revoked, or None when the token is unknown or already revoked."""
    key = digest(token)
    refresh = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == key))
    if refresh is None:
        access = session.scalar(select(AccessToken).where(AccessToken.token_hash == key))
        if access is None or access.revoked:
            return None
        access.revoked = True
        refresh = session.get(RefreshToken, access.refresh_token_id) if access.refresh_token_id is not None else None
        if refresh is None:
            session.flush()
            return [key]
    elif refresh.revoked:
        return None
    refresh.revoked = True
    revoked = _revoke_access(session, AccessToken.refresh_token_id == refresh.id)
    session.flush()
    return sorted(set(revoked) | {key})


def revoke_grant(session: Session, grant: str) -> list[str]:
    """Revoke everything issued from one authorization or device code."""
    session.execute(update(RefreshToken).where(RefreshToken.grant == grant).values(revoked=True))
    refresh_ids = select(RefreshToken.id).where(RefreshToken.grant == grant)
    revoked = _revoke_access(session, AccessToken.grant == grant, AccessToken.refresh_token_id.in_(refresh_ids))
    session.flush()
    return revoked


def token_details(session: Session, token: str) -> tuple[AccessToken, Principal] | None:
    """A live access token and its principal (for tokeninfo and userinfo)."""
    row = session.execute(select(AccessToken, Principal).join(Principal)
                          .where(AccessToken.token_hash == digest(token))).first()
    if row is None or row[0].revoked or row[1].disabled or row[0].expires < time.time():
        return None
    return row[0], row[1]


# --------------------------------------------------------------------------- authorization codes

def create_code(session: Session, code: str, *, client_id: str, principal_id: int, redirect_uri: str,
                scopes: Iterable[str], challenge: str | None, method: str | None, nonce: str | None,
                offline: bool, ttl: int = CODE_TTL) -> None:
    now = time.time()
    session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires < now - 86400))
    session.add(AuthorizationCode(code_hash=digest(code), client_id=client_id, principal_id=principal_id,
                                  redirect_uri=redirect_uri, scopes=" ".join(scopes), code_challenge=challenge,
                                  code_challenge_method=method, nonce=nonce, offline=offline, used=False,
                                  expires=now + ttl, created=now))
    session.flush()


def find_code(session: Session, code: str) -> AuthorizationCode | None:
    return session.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == digest(code)))


def redeem_code(session: Session, row: AuthorizationCode) -> bool:
    """Mark the code used; False if it was used already (by this or a concurrent request)."""
    return _rowcount(session, update(AuthorizationCode).where(AuthorizationCode.id == row.id,
                                                              AuthorizationCode.used.is_(False)).values(used=True)) == 1


# --------------------------------------------------------------------------- device authorizations

def normalize_user_code(user_code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", user_code.upper())


def create_device_authorization(session: Session, device_code: str, user_code: str, client_id: str,
                                scopes: Iterable[str], ttl: int, interval: int) -> None:
    now = time.time()
    session.execute(delete(DeviceAuthorization).where(DeviceAuthorization.expires < now - 86400))
    session.add(DeviceAuthorization(device_code_hash=digest(device_code),
                                    user_code_hash=digest(normalize_user_code(user_code)), client_id=client_id,
                                    scopes=" ".join(scopes), status="pending", interval=interval, last_poll=0.0,
                                    expires=now + ttl, created=now))
    session.flush()


def find_device_by_user_code(session: Session, user_code: str) -> DeviceAuthorization | None:
    row = session.scalar(select(DeviceAuthorization).where(
        DeviceAuthorization.user_code_hash == digest(normalize_user_code(user_code))))
    if row is None or row.status != "pending" or row.expires < time.time():
        return None
    return row


def decide_device(session: Session, row: DeviceAuthorization, principal: Principal | None) -> None:
    """Approve the device for ``principal``, or deny it (None)."""
    row.principal_id = principal.id if principal is not None else None
    row.status = "authorized" if principal is not None else "denied"
    session.flush()


def find_device(session: Session, device_code: str) -> DeviceAuthorization | None:
    return session.scalar(select(DeviceAuthorization).where(
        DeviceAuthorization.device_code_hash == digest(device_code)))


def consume_device(session: Session, row: DeviceAuthorization) -> bool:
    """Mark an authorized device code consumed; False if another poll got there first."""
    return _rowcount(session, update(DeviceAuthorization).where(DeviceAuthorization.id == row.id,
                                                                DeviceAuthorization.status == "authorized")
                     .values(status="consumed")) == 1


# --------------------------------------------------------------------------- browser sessions

def create_browser_session(session: Session, principal: Principal, ttl: int = SESSION_TTL) -> str:
    token = secrets.token_urlsafe(32)
    now = time.time()
    session.execute(delete(BrowserSession).where(BrowserSession.expires < now))
    session.add(BrowserSession(token_hash=digest(token), principal_id=principal.id, expires=now + ttl, created=now))
    session.flush()
    return token


def session_principal(session: Session, token: str) -> Principal | None:
    row = session.execute(select(BrowserSession.expires, Principal).join(Principal)
                          .where(BrowserSession.token_hash == digest(token))).first()
    if row is None or row[0] < time.time() or row[1].disabled:
        return None
    return row[1]


def end_browser_session(session: Session, token: str) -> None:
    session.execute(delete(BrowserSession).where(BrowserSession.token_hash == digest(token)))
    session.flush()
