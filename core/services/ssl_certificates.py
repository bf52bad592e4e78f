"""sslCertificates and regionSslCertificates: the certificates a target HTTPS proxy presents.

A SELF_MANAGED certificate arrives as PEM with its private key; both are parsed (``cryptography``)
and must match, and the body reports what the certificate says (``subjectAlternativeNames``,
``expireTime``). The private key is never returned: GET passes the stored body through, so the key
lives in a private row of its own (collection :data:`KEYS`, same project, scope and name, never
routed), which the virtual router reads to write the PEM beside its HAProxy configuration.

A MANAGED certificate is PROVISIONING when made and ACTIVE a moment later (a durable job, as GCE's
provisioning is asynchronous). gstack cannot obtain a publicly trusted certificate, so provisioning
issues a self-signed one for the domains, which the router serves (docs/architecture.rst).
"""

from __future__ import annotations

import datetime
import time

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Invalid, Required
from core.ids import rfc3339
from core.jobs import JobContext, job
from core.links import scope_url
from core.models import Operation, Resource
from core.resources import operations, store
from core.resources.context import Call
from core.resources.store import Body
from core.services import lb_common, vpc
from core.systemvms.vms import SYSTEM_PROJECT

COLLECTION = "sslCertificates"
KEYS = "sslCertificateKeys"  # private: never routed, never listed
KIND = "compute#sslCertificate"
PROVISION = "sslCertificates.provision"
PROVISION_DELAY = 1.0  # seconds a managed certificate stays PROVISIONING
MAX_DOMAINS = 100


def _bad(field: str, what: str) -> Invalid:
    # the PEM is not echoed: a private key must not end up in an error message or a log
    return Invalid(field, message=f"Invalid value for field '{field}': {what}")


def _self_managed(body: Body) -> tuple[Body, str, str]:
    """(body fields, certificate PEM, private key PEM) of a SELF_MANAGED certificate."""
    given: Body = body["selfManaged"] if isinstance(body.get("selfManaged"), dict) else {}
    cert_pem, key_pem = body.get("certificate") or given.get("certificate"), body.get("privateKey") or \
        given.get("privateKey")
    if not cert_pem:
        raise Required("resource.certificate")
    if not key_pem:
        raise Required("resource.privateKey")
    if not isinstance(cert_pem, str) or not isinstance(key_pem, str):
        raise _bad("resource.certificate", "The SSL certificate could not be parsed.")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise _bad("resource.certificate", "The SSL certificate could not be parsed.") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _bad("resource.privateKey", "The SSL key could not be parsed.") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _bad("resource.privateKey", "The SSL key must be an RSA or ECDSA key.")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise _bad("resource.privateKey", "RSA keys must be at least 2048 bits long.")
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(serialization.Encoding.PEM, raw) != \
            key.public_key().public_bytes(serialization.Encoding.PEM, raw):
        raise _bad("resource.privateKey", "The SSL certificate and key do not match.")
    cert_text = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    key_text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    fields = {"certificate": cert_text, "type": "SELF_MANAGED", **_described(chain[0])}
    return fields, cert_text, key_text


def _described(cert: x509.Certificate) -> Body:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    out: Body = {}
    if names:
        out["subjectAlternativeNames"] = list(names)
    out["expireTime"] = rfc3339(cert.not_valid_after_utc.timestamp())
    return out


def _managed(body: Body) -> Body:
    managed = body.get("managed")
    domains = managed.get("domains") if isinstance(managed, dict) else None
    if not domains:
        raise Required("resource.managed.domains")
    if not isinstance(domains, list) or len(domains) > MAX_DOMAINS or not all(
            isinstance(d, str) and d and len(d) <= 253 and all(p.isalnum() or p in "-." for p in d) for d in domains):
        raise Invalid("resource.managed.domains", domains, f"Must be up to {MAX_DOMAINS} domain names.")
    if body.get("certificate") or body.get("privateKey") or body.get("selfManaged"):
        raise Invalid("resource.type", "MANAGED", "A MANAGED certificate takes no certificate or private key.")
    return {"managed": {"domains": domains, "status": "PROVISIONING",
                        "domainStatus": {d: "PROVISIONING" for d in domains}},
            "type": "MANAGED", "subjectAlternativeNames": domains}


def insert(call: Call, region: str | None, body: Body) -> Operation:
    scope = lb_common.scope_of(call, region)
    name = lb_common.new_name(call, COLLECTION, scope, body)
    kind = body.get("type") or ("MANAGED" if body.get("managed") else "SELF_MANAGED")
    if kind not in ("SELF_MANAGED", "MANAGED"):
        raise Invalid("resource.type", kind, "Must be SELF_MANAGED or MANAGED.")
    if kind == "MANAGED" and region is not None:
        raise Invalid("resource.type", kind, "Google-managed certificates are global only.")
    fields: Body = {"description": body["description"]} if body.get("description") else {}
    secret: tuple[str, str] | None = None
    if kind == "SELF_MANAGED":
        parsed, cert_text, key_text = _self_managed(body)
        fields.update(parsed)
        secret = (cert_text, key_text)
    else:
        fields.update(_managed(body))
    if region is not None:
        fields["region"] = scope_url(call.project, scope)
    res = store.new_resource(call.session, project=call.project, collection=COLLECTION, scope=scope, name=name,
                             kind=KIND, region=region, body=fields)
    if secret is not None:
        _store_key(call.session, res, *secret)
    else:
        op = operations.begin(Call(call.session, SYSTEM_PROJECT, "system"), scope=scope,
                              op_type="compute.sslCertificates.provision", target_path=vpc.path(res),
                              target_id=res.uid, job=PROVISION, params={"uid": res.uid})
        op.lease_expiry = time.time() + PROVISION_DELAY
    return lb_common.begin(call, res, "insert")


def _store_key(session: Session, cert: Resource, cert_text: str, key_text: str) -> None:
    store.new_resource(session, project=cert.project, collection=KEYS, scope=cert.scope, name=cert.name,
                       kind="gstack#sslCertificateKey", body={"certificate": cert_text, "privateKey": key_text})


def delete(call: Call, region: str | None, name: str) -> Operation:
    scope = lb_common.scope_of(call, region)
    res = lb_common.find(call, COLLECTION, scope, name)
    lb_common.refuse_if_used(call.session, "ssl_certificate", res, ("targetHttpsProxies",))
    op = lb_common.begin(call, res, "delete")
    key = store.find_optional(call.session, call.project, KEYS, scope, name)
    if key is not None:
        call.session.delete(key)
    call.session.delete(res)
    return op


def _self_signed(domains: list[str]) -> tuple[str, str]:
    """A certificate for the domains, signed by its own P-256 key, valid 90 days (a managed
    certificate's lifetime)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


@job(PROVISION)
def _provision(ctx: JobContext) -> None:
    """PROVISIONING -> ACTIVE, with the certificate the router serves. Idempotent: a certificate
    already ACTIVE, or deleted meanwhile, is left as it is."""
    with ctx.write() as s:
        res = s.scalar(select(Resource).where(Resource.uid == ctx.params["uid"]).with_for_update())
        if res is not None and store.body_of(res).get("managed", {}).get("status") == "PROVISIONING":
            body = store.body_of(res)
            domains = body["managed"]["domains"]
            cert_text, key_text = _self_signed(domains)
            cert = x509.load_pem_x509_certificate(cert_text.encode())
            body["managed"].update(status="ACTIVE", domainStatus={d: "ACTIVE" for d in domains})
            body["expireTime"] = _described(cert)["expireTime"]
            order = ("kind", "id", "creationTimestamp", "name", "description", "selfLink", "managed", "type",
                     "subjectAlternativeNames", "expireTime")
            store.save(res, {k: body[k] for k in order if k in body})
            if store.find_optional(s, res.project, KEYS, res.scope, res.name) is None:
                _store_key(s, res, cert_text, key_text)
            lb_common.notify(s, res.project, set())
        ctx.complete(s)
