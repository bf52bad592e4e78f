"""sslCertificates and regionSslCertificates (the private key is never returned)."""

from core.services import lb_common, ssl_certificates
from gstack.api import common
from gstack.api.addresses import aggregated_with_global
from gstack.api.registry import ApiRequest, handles

C = ssl_certificates.COLLECTION


@handles("compute.sslCertificates.get", "compute.regionSslCertificates.get")
def get(req: ApiRequest, sslCertificate: str, region: str | None = None):
    return common.get(req, C, lb_common.scope_of(req.call, region), sslCertificate)


@handles("compute.sslCertificates.list", "compute.regionSslCertificates.list")
def list_certificates(req: ApiRequest, region: str | None = None):
    return common.list_scope(req, C, lb_common.scope_of(req.call, region), "compute#sslCertificateList",
                             "SslCertificate")


@handles("compute.sslCertificates.aggregatedList")
def aggregated(req: ApiRequest):
    return aggregated_with_global(req, C, "compute#sslCertificateAggregatedList", "SslCertificate")


@handles("compute.sslCertificates.insert", "compute.regionSslCertificates.insert")
def insert(req: ApiRequest, region: str | None = None):
    return ssl_certificates.insert(req.call, region, req.body)


@handles("compute.sslCertificates.delete", "compute.regionSslCertificates.delete")
def delete(req: ApiRequest, sslCertificate: str, region: str | None = None):
    return ssl_certificates.delete(req.call, region, sslCertificate)
