"""The auth attack matrix: every kind of bad credential against every surface that takes one (a
read, a write, a batch part, the token endpoint), with the status and envelope Google answers; then
brute force from one address, which must lock out neither a valid credential from that address nor
another address.

Each attack speaks from an address of its own (the suite's server trusts 127.0.0.1 as a proxy and
reads X-Forwarded-For), and every bad credential is used fewer times than the server's failure limit
(5), so only the brute-force test meets the limit.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable

import jwt
import pytest
import requests

from tests.auth.conftest import cli
from tests.chaos.conftest import assert_google_error, check_envelope
from tests.conftest import PROJECT, ZONE, Server, unique
from tests.helpers.batch import parse_multipart
from tests.helpers.forgery import assertion_claims, forge, other_private_key, self_signed_claims

pytestmark = [pytest.mark.chaos, pytest.mark.xdist_group("chaos")]  # one worker: one chaos_server

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


def admin_token(server: Server, *args: str) -> str:
    result = cli(server, "token", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def self_signed(key: dict, how: str) -> str:
    """A self-signed service-account JWT (the credential google-auth sends without /token), valid
    or forged ``how``."""
    claims = self_signed_claims(key)
    if how == "valid":
        return jwt.encode({**claims, "aud": "https://compute.googleapis.com/"}, key["private_key"],
                          algorithm="RS256", headers={"kid": key["private_key_id"]})
    if how == "wrong-aud":  # signed with the real key, but meant for another service
        return jwt.encode({**claims, "aud": "https://evil.example/"}, key["private_key"], algorithm="RS256",
                          headers={"kid": key["private_key_id"]})
    if how == "no-kid-wrong-key":
        return jwt.encode(claims, other_private_key(), algorithm="RS256")
    return forge(key, how, claims)


@pytest.fixture(scope="module")
def credentials(chaos_server) -> dict[str, Callable[[], str | None]]:
    """Credential makers by case: each call makes a fresh credential where one can be made, so that
    no single bad credential meets the per-credential failure limit."""
    server = chaos_server
    other = unique("other")
    assert cli(server, "project", "create", other).exit_code == 0
    fixed = {"expired": admin_token(server, "--project", PROJECT, "--lifetime", "0"),
             "wrong-scope": admin_token(server, "--project", PROJECT, "--scope", "compute.readonly"),
             "other-project": admin_token(server, "--project", other)}
    key = server.key()
    return {
        "none": lambda: None,
        "garbage": lambda: f"ya29.{uuid.uuid4().hex}",
        "malformed-jwt": lambda: "eyJhbGciOi.eyJpc3Mi.c2ln",
        **{name: (lambda name=name: fixed[name]) for name in fixed},
        **{f"jwt-{how}": (lambda how=how: self_signed(key, how))
           for how in ("valid", "wrong-aud", "no-kid-wrong-key", "alg-none", "wrong-key", "wrong-kid",
                       "hs256-public-key")},
    }


def _headers(credential: str | None) -> dict[str, str]:
    headers = {"X-Forwarded-For": next(_addresses)}
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    return headers


def read(server: Server, credential: str | None) -> tuple[int, bytes, str]:
    r = requests.get(f"{server.api}projects/{PROJECT}/zones", headers=_headers(credential), timeout=30)
    return r.status_code, r.content, r.headers.get("Content-Type", "")


def write(server: Server, credential: str | None) -> tuple[int, bytes, str]:
    # An invalid name: a credential that got through is answered 400 and nothing is made.
    r = requests.post(f"{server.api}projects/{PROJECT}/zones/{ZONE}/disks", json={"name": "Not_A_Name"},
                      headers=_headers(credential), timeout=30)
    return r.status_code, r.content, r.headers.get("Content-Type", "")


def batch_part(server: Server, credential: str | None) -> tuple[int, bytes, str]:
    """The credential in a batch part's own headers (the outer request carries none)."""
    auth = f"Authorization: Bearer {credential}\r\n" if credential is not None else ""
    body = (f"--b\r\nContent-Type: application/http\r\nContent-ID: <p1>\r\n\r\n"
            f"GET /compute/v1/projects/{PROJECT}/zones HTTP/1.1\r\n{auth}\r\n\r\n--b--\r\n")
    r = requests.post(server.base + "/batch/compute/v1", data=body.encode(), timeout=30,
                      headers={"Content-Type": "multipart/mixed; boundary=b", **_headers(None)})
    assert r.status_code == 200, r.text
    (_, code, headers, content), = parse_multipart(r)
    return code, content, headers.get("Content-Type", "")


SURFACES = {"read": read, "write": write, "batch": batch_part}
UNAUTHENTICATED = (401, "UNAUTHENTICATED")
# What each credential gets on each surface: (status, google status) or 200 / 400 (it got through).
EXPECTED: dict[str, dict[str, tuple[int, str] | int]] = {
    "none": dict.fromkeys(SURFACES, (401, "UNAUTHENTICATED")),
    "jwt-valid": {"read": 200, "write": 400, "batch": 200},
    "wrong-scope": {"read": 200, "write": (403, "PERMISSION_DENIED"), "batch": 200},
    "other-project": dict.fromkeys(SURFACES, (403, "PERMISSION_DENIED")),
    **{case: dict.fromkeys(SURFACES, UNAUTHENTICATED)
       for case in ("garbage", "malformed-jwt", "expired", "jwt-wrong-aud", "jwt-no-kid-wrong-key", "jwt-alg-none",
                    "jwt-wrong-key", "jwt-wrong-kid", "jwt-hs256-public-key")},
}
REASONS = {401: {"required", "authError"}, 403: {"forbidden", "insufficientPermissions"}}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_attack_matrix(chaos_server, credentials, case):
    for surface, call in SURFACES.items():
        code, body, ctype = call(chaos_server, credentials[case]())
        expected = EXPECTED[case][surface]
        where = f"{case} on {surface}: {code} {body[:300]!r}"
        if isinstance(expected, int):
            assert code == expected, where
            continue
        assert ctype.startswith("application/json"), where
        error = check_envelope(code, body, where, expected[0])
        assert error["status"] == expected[1], where
        assert {e["reason"] for e in error["errors"]} <= REASONS[code], where


def _grant(server: Server, assertion: str, addr: str | None = None) -> requests.Response:
    return requests.post(server.base + "/token", data={"grant_type": JWT_GRANT, "assertion": assertion},
                         headers={"X-Forwarded-For": addr or next(_addresses)}, timeout=30)


@pytest.mark.parametrize("how", ["wrong-aud", "no-kid-wrong-key", "alg-none", "wrong-key", "wrong-kid", "expired"])
def test_forged_assertions_at_the_token_endpoint(chaos_server, how):
    """The token endpoint speaks RFC 6749: a forged JWT-bearer assertion is ``invalid_grant``."""
    key = chaos_server.key()
    claims = assertion_claims(key, jti=uuid.uuid4().hex)
    if how == "wrong-aud":
        assertion = jwt.encode({**claims, "aud": "https://evil.example/token"}, key["private_key"],
                               algorithm="RS256", headers={"kid": key["private_key_id"]})
    elif how == "expired":
        past = int(time.time()) - 7200
        assertion = jwt.encode({**claims, "iat": past, "exp": past + 3600}, key["private_key"], algorithm="RS256",
                               headers={"kid": key["private_key_id"]})
    elif how == "no-kid-wrong-key":
        assertion = jwt.encode(claims, other_private_key(), algorithm="RS256")
    else:
        assertion = forge(key, how, claims)
    r = _grant(chaos_server, assertion)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json"), r.text
    assert r.json()["error"] == "invalid_grant" and r.json()["error_description"], r.text


def test_brute_force_locks_out_only_the_attack(chaos_server, credentials):
    """Twelve bad credentials of every kind from one address: the address is refused (429 in
    Google's envelope) once it passes the limit, and still a valid token and a valid self-signed JWT
    from that same address are served (behind a proxy every client shares it), as are other
    addresses, whose own bad credentials are not yet refused."""
    zones = f"{chaos_server.api}projects/{PROJECT}/zones"
    attacker, bystander = next(_addresses), next(_addresses)
    kinds = itertools.cycle(["garbage", "jwt-wrong-aud", "jwt-alg-none", "jwt-wrong-key", "jwt-no-kid-wrong-key"])
    codes = []
    for kind in itertools.islice(kinds, 12):
        r = requests.get(zones, headers={"Authorization": f"Bearer {credentials[kind]()}",
                                         "X-Forwarded-For": attacker}, timeout=30)
        assert_google_error(r)
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    refused = assert_google_error(r, 429)
    assert refused["errors"][0]["reason"] == "rateLimitExceeded"
    valid = admin_token(chaos_server, "--project", PROJECT)
    for addr, credential in ((attacker, valid), (attacker, credentials["jwt-valid"]()), (bystander, valid)):
        r = requests.get(zones, headers={"Authorization": f"Bearer {credential}", "X-Forwarded-For": addr},
                         timeout=30)
        assert r.status_code == 200, r.text
    r = requests.get(zones, headers={"Authorization": f"Bearer {credentials['garbage']()}",
                                     "X-Forwarded-For": bystander}, timeout=30)
    assert_google_error(r, 401)
