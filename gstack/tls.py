"""HTTPS for ``gstack serve``: a local certificate authority in the data directory, and the server
certificate it signs.

Clients that talk to a universe other than Google's (``universe_domain``) insist on HTTPS with a
certificate they trust, and so do the libraries that will not send a token over plain HTTP. An
operator trusts one CA once (``gstack admin ca export`` prints it for ``REQUESTS_CA_BUNDLE``,
``NODE_EXTRA_CA_CERTS`` or gcloud's ``core/custom_ca_certs_file``) instead of a new self-signed
certificate at every start. The CA's key never leaves the data directory (mode 0600); the server
certificate is reissued when the names it must carry change or it nears its end. Every file is
0600, as all of the data directory is (gstack/datadir.py). An operator's own
certificate and key (``GSTACK_TLS_CERT``/``GSTACK_TLS_KEY``) replace both.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gstack import universe as universes
from gstack.bootstrap import write_private

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CA_DAYS = 3650
SERVER_DAYS = 397  # the longest validity browsers and Apple's TLS stack accept for a leaf
RENEW_BEFORE = datetime.timedelta(days=30)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Certificate:
    """Paths of a PEM certificate (chain) and its private key."""

    cert: str
    key: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ensure_ca(data_dir: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The data directory's CA, created on first use (its key written 0600 before anything else)."""
    cert_path, key_path = os.path.join(data_dir, CA_CERT), os.path.join(data_dir, CA_KEY)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not the EC key gstack writes")
        return cert, key
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(key_path, _key_pem(key))
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gstack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"gstack local CA {os.urandom(4).hex()}")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private(cert_path, _cert_pem(cert))
    return cert, key


def ca_pem(data_dir: str) -> str:
    """The CA certificate (created if missing), what clients are told to trust."""
    return _cert_pem(ensure_ca(data_dir)[0])


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _current(path: str, ca: x509.Certificate, names: set[x509.GeneralName]) -> bool:
    """Does the server certificate at ``path`` exist, come from this CA, carry exactly ``names`` and
    stay valid beyond the renewal margin?"""
    if not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return (cert.issuer == ca.subject and sans == names
            and cert.not_valid_after_utc - RENEW_BEFORE > _now())


def ensure_server_certificate(data_dir: str, names: Iterable[str], prefix: str = "tls") -> Certificate:
    """A certificate for ``names`` (host names and addresses) signed by the data directory's CA;
    the one from the last start when it still fits. ``prefix`` names its files (``PREFIX-cert.pem``,
    ``PREFIX-key.pem``): each listener with names of its own keeps its own pair."""
    ca, ca_key = ensure_ca(data_dir)
    wanted = list(dict.fromkeys(names))
    general = [_general_name(n) for n in wanted]
    paths = Certificate(os.path.join(data_dir, f"{prefix}-cert.pem"), os.path.join(data_dir, f"{prefix}-key.pem"))
    if _current(paths.cert, ca, set(general)) and os.path.exists(paths.key):
        return paths
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(general), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(paths.key, _key_pem(key))
    write_private(paths.cert, _cert_pem(cert) + _cert_pem(ca))
    return paths


def server_names(host: str, universe: str = "") -> list[str]:
    """What the server certificate names: this machine's loopback names, the address or name it
    listens on (unless that is every address), and the universe's service hosts."""
    names = list(LOCAL_NAMES)
    if host and host not in ("0.0.0.0", "::"):
        names.append(host)
    if universe:
        names += universes.hosts(universe)
    return names


def server_context(certificate: Certificate) -> ssl.SSLContext:
    """A server-side context on ``certificate``, TLS 1.2 or later."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate.cert, certificate.key)
    return context
