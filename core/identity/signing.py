"""The server's signing keys: ID tokens and the JWKS that lets clients verify them.

A key is made on first use and kept in the database, so every API process signs with the same one.
"""

from __future__ import annotations

import base64
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import SigningKey


def current_key(session: Session) -> SigningKey:
    key = session.scalar(select(SigningKey).order_by(SigningKey.created.desc()))
    if key is None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        key = SigningKey(kid=secrets.token_hex(20), private_pem=pem, created=time.time())
        session.add(key)
        session.commit()
    return key


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode().rstrip("=")


def _public_key(key: SigningKey) -> rsa.RSAPublicKey:
    """The public half of a stored key; every key is RSA (``current_key`` makes no other kind)."""
    private = serialization.load_pem_private_key(key.private_pem.encode(), None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise TypeError(f"signing key {key.kid} is not RSA")
    return private.public_key()


def jwks(session: Session) -> dict[str, list[dict[str, str]]]:
    keys = []
    for key in session.scalars(select(SigningKey)):
        numbers = _public_key(key).public_numbers()
        keys.append({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": key.kid, "n": _b64(numbers.n),
                     "e": _b64(numbers.e)})
    return {"keys": keys}


def sign(session: Session, claims: dict[str, object]) -> str:
    """An RS256 JWT signed with the current key, its ``kid`` in the header (clients find it in the JWKS)."""
    key = current_key(session)
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


def sign_id_token(session: Session, issuer: str, subject: str, email: str, audience: str, ttl: int = 3600,
                  **extra: object) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "aud": audience, "azp": email, "email": email,
              "email_verified": True, "iat": now, "exp": now + ttl, **extra}
    return sign(session, claims)


def verify(session: Session, token: str, audience: str | None = None) -> dict[str, object] | None:
    """The claims of a JWT we signed (any of our keys, RS256 only), or None."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    key = session.scalar(select(SigningKey).where(SigningKey.kid == str(kid)))
    if key is None:
        return None
    public = _public_key(key)
    try:
        return jwt.decode(token, public, algorithms=["RS256"], audience=audience,
                          options={"verify_aud": audience is not None})
    except jwt.PyJWTError:
        return None
