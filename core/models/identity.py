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
