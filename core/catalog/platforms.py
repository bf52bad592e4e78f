"""CPU platforms and their order, as GCE's minimum CPU platform reads them.

An instance asking for a minimum platform runs on that platform or a newer one of the same vendor
(GCE's "the instance may be scheduled on the specified or newer cpu/platform"): a host declares
its platform (``Host.cpu_platform``) and the planner places the instance only on a host at or above
the minimum.
"""

from __future__ import annotations

# Oldest first, per vendor.
INTEL = ("Intel Sandy Bridge", "Intel Ivy Bridge", "Intel Haswell", "Intel Broadwell", "Intel Skylake",
         "Intel Cascade Lake", "Intel Ice Lake", "Intel Sapphire Rapids")
AMD = ("AMD Rome", "AMD Milan", "AMD Genoa")
FAMILIES = (INTEL, AMD)
KNOWN = frozenset(INTEL + AMD)
AUTOMATIC = "Automatic"


def _rank(platform: str) -> tuple[int, int] | None:
    for vendor, family in enumerate(FAMILIES):
        if platform in family:
            return vendor, family.index(platform)
    return None


def satisfies(host_platform: str, minimum: str | None) -> bool:
    """Whether a host of ``host_platform`` may run an instance asking for ``minimum`` (None: any)."""
    if minimum is None:
        return True
    have, want = _rank(host_platform), _rank(minimum)
    if have is None or want is None:
        return host_platform == minimum
    return have[0] == want[0] and have[1] >= want[1]


def minimums_offered(host_platforms: set[str]) -> list[str]:
    """The minimum platforms an instance may ask for where hosts of ``host_platforms`` run: every
    platform some host is at or above, newest first (GCE lists a zone's "valid options" so)."""
    offered = [p for family in FAMILIES for p in family if any(satisfies(h, p) for h in host_platforms)]
    offered += sorted(p for p in host_platforms if p not in KNOWN)
    return sorted(offered, key=_newest_first)


def _newest_first(platform: str) -> tuple[int, int]:
    rank = _rank(platform)
    return (len(FAMILIES), 0) if rank is None else (rank[0], -rank[1])
