"""gcloud: a proxy-only subnetwork (networks subnets create --purpose REGIONAL_MANAGED_PROXY --role)
and an allocated range for private services access (addresses create --global --purpose VPC_PEERING)."""

from __future__ import annotations

import ipaddress

from tests.conftest import unique
from tests.e2e.conftest import describe

REGION = "us-central1"


def test_proxy_only_subnetwork_and_allocated_range(gcloud):
    net, proxy, rng = unique("pnet"), unique("proxy"), unique("psa")
    gcloud("compute", "networks", "create", net, "--subnet-mode", "custom")
    try:
        gcloud("compute", "networks", "subnets", "create", proxy, "--network", net, "--region", REGION,
               "--range", "10.129.0.0/23", "--purpose", "REGIONAL_MANAGED_PROXY", "--role", "ACTIVE")
        got = describe(gcloud, "compute", "networks", "subnets", "describe", proxy, "--region", REGION)
        assert (got["purpose"], got["role"], got["state"]) == ("REGIONAL_MANAGED_PROXY", "ACTIVE", "READY")
        gcloud("compute", "addresses", "create", rng, "--global", "--purpose", "VPC_PEERING", "--prefix-length", "16",
               "--network", net)
        addr = describe(gcloud, "compute", "addresses", "describe", rng, "--global")
        assert (addr["purpose"], addr["prefixLength"], addr["addressType"]) == ("VPC_PEERING", 16, "INTERNAL")
        block = ipaddress.ip_network(f"{addr['address']}/16")
        assert not block.overlaps(ipaddress.ip_network("10.129.0.0/23"))
        refused = gcloud("compute", "networks", "subnets", "create", unique("s"), "--network", net, "--region", REGION,
                         "--range", str(block), check=False)
        assert refused.returncode != 0 and f"allocated range '{rng}'" in refused.stderr
        gcloud("compute", "addresses", "delete", rng, "--global")
        gcloud("compute", "networks", "subnets", "delete", proxy, "--region", REGION)
    finally:
        gcloud("compute", "networks", "delete", net, check=False)
