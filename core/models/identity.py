"""Projects, principals (users and service accounts), their keys, memberships and tokens.

Secrets never sit here in clear: tokens are stored as SHA-256 digests (they are random and long),
passwords with scrypt, service-account keys as public keys only.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    created: Mapped[float] = mapped_column(Float)
    # Public image projects (debian-cloud ...) are readable by every authenticated caller.
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    common_metadata: Mapped[str] = mapped_column(Text, default="[]")
    metadata_fingerprint: Mapped[str] = mapped_column(String(16), default="")
    quota_limits: Mapped[str] = mapped_column(Text, default="{}")


class Principal(Base):
    __tablename__ = "principals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # user | serviceAccount
    email: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    # Cloud administrators (the operator) reach every project, like an organization admin.
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)


class ServiceAccountKey(Base):
    __tablename__ = "service_account_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    public_pem: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)
    principal: Mapped[Principal] = relationship()


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "principal_id", name="uq_membership"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))  # roles/owner | roles/editor | roles/viewer


class OAuthClient(Base):
    """An OAuth client registered by the operator. Installed (native) clients may redirect to any port of
    a registered loopback URI (RFC 8252 section 7.3); every other redirect URI must match exactly."""

    __tablename__ = "oauth_clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255), unique=True)
    # SHA-256 of the secret (a random 256-bit string we generated); NULL for a public client.
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="installed")  # installed | web
    redirect_uris: Mapped[str] = mapped_column(Text, default="")  # one per line
    created: Mapped[float] = mapped_column(Float)


class RefreshToken(Base):
    """A refresh token, stored as its SHA-256 digest. Like Google's, it is not rotated on use.

    ``grant`` is the digest of the authorization or device code it came from: a code presented
    twice revokes everything issued from it (RFC 6749 section 4.1.2)."""

    __tablename__ = "refresh_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(Text)
    grant: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)


class AccessToken(Base):
    __tablename__ = "access_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(255), default="")
    scopes: Mapped[str] = mapped_column(Text)
    expires: Mapped[float] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)
    # The refresh token it was issued with or from; revoking either revokes both, as Google does.
    refresh_token_id: Mapped[int | None] = mapped_column(ForeignKey("refresh_tokens.id"), nullable=True, index=True)
    grant: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class AuthorizationCode(Base):
    """An authorization code (its digest): single use, short-lived, bound to the client, the exact
    redirect URI and the PKCE challenge of the request that produced it."""

    __tablename__ = "authorization_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(255))
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    offline: Mapped[bool] = mapped_column(Boolean, default=True)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    expires: Mapped[float] = mapped_column(Float, index=True)
    created: Mapped[float] = mapped_column(Float)


class DeviceAuthorization(Base):
    """A pending device-flow authorization (RFC 8628): the device polls with ``device_code`` while a
    user approves ``user_code`` in a browser. Both are stored as digests."""

    __tablename__ = "device_authorizations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(Text)
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|authorized|denied|consumed
    interval: Mapped[int] = mapped_column(Integer, default=5)
    last_poll: Mapped[float] = mapped_column(Float, default=0.0)
    expires: Mapped[float] = mapped_column(Float, index=True)
    created: Mapped[float] = mapped_column(Float)


class BrowserSession(Base):
    """A signed-in browser on the login and consent pages; the cookie holds the token, we its digest."""

    __tablename__ = "browser_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    expires: Mapped[float] = mapped_column(Float, index=True)
    created: Mapped[float] = mapped_column(Float)


class UsedAssertion(Base):
    """Digests of accepted JWT-bearer assertions, kept until they expire, so none is replayed."""

    __tablename__ = "used_assertions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires: Mapped[float] = mapped_column(Float, index=True)


class SigningKey(Base):
    """The server's own RSA key for the ID tokens it issues (published at /oauth2/v3/certs).

    A private key cannot be hashed; it is the one secret kept in the database, readable only by
    whoever can read the database itself.
    """

    __tablename__ = "signing_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)
