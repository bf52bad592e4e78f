"""Forged and self-signed JWTs for the auth refusal tests and the chaos suite's attack matrix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import CLOUD_PLATFORM

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def other_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def forge(key: dict, how: str, claims: dict) -> str:
    """A JWT that claims to be the service account's without its private key."""
    kid = key["private_key_id"]
    if how == "wrong-key":
        return jwt.encode(claims, other_private_key(), algorithm="RS256", headers={"kid": kid})
    if how == "wrong-kid":
        return jwt.encode(claims, key["private_key"], algorithm="RS256", headers={"kid": uuid.uuid4().hex})
    if how == "alg-none":
        return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}."
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"  # HS256 keyed with the public key
    return signing_input + "." + b64(hmac.new(public_pem(key), signing_input.encode(), hashlib.sha256).digest())


def self_signed_claims(key: dict) -> dict:
    now = int(time.time())
    return {"iss": key["client_email"], "sub": key["client_email"], "iat": now, "exp": now + 3600,
            "scope": CLOUD_PLATFORM}


def assertion_claims(key: dict, **over) -> dict:
    now = int(time.time())
    return {"iss": key["client_email"], "aud": GOOGLE_TOKEN_URI, "iat": now, "exp": now + 3600,
            "scope": CLOUD_PLATFORM, **over}


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def public_pem(key: dict) -> bytes:
    private = serialization.load_pem_private_key(key["private_key"].encode(), None)
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
