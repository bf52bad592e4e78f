"""GCE's predefined machine types, generated from each family's published shapes, and the rule that
says which families a zone offers.

A family is a table row (vCPU counts, GB per vCPU, GCE's description wording) rather than hundreds of
literal entries: the shapes are GCE's, the arithmetic is the same for every size. Types whose memory is
not a plain ratio (the shared-core types, m1, n2-highmem-128) are written out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache


def stable_id(*parts: str) -> int:
    """A deterministic uint63 id for catalog entries, so ids survive restarts and match across zones."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1 or 1


@dataclass(frozen=True)
class MachineType:
    name: str
    guest_cpus: int
    memory_mb: int
    shared_cpu: bool = False
    description: str = ""
    family: str = ""

    @property
    def max_disks(self) -> int:
        """GCE lets a shared-core VM attach 16 persistent disks, any other 128."""
        return 16 if self.shared_cpu else 128

    @property
    def max_disks_size_gb(self) -> str:
        """The total persistent disk a VM may attach (an int64 string, as GCE sends it)."""
        return "3072" if self.shared_cpu else "263168"

    def describe(self) -> str:
        if self.description:
            return self.description
        return f"{self.guest_cpus} vCPU{'s' if self.guest_cpus > 1 else ''}, {self.memory_mb / 1024:g} GB RAM"


@dataclass(frozen=True)
class _Shape:
    """One predefined series of a family: ``{family}-{kind}-{N}`` for each N in ``sizes``."""

    family: str
    kind: str
    gb_per_vcpu: float
    sizes: tuple[int, ...]
    wording: str = "{cpus}, {gb} GB RAM"  # GCE's description, per family


_N2_SIZES = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)
_N2D_SIZES = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224)
_C2D_SIZES = (2, 4, 8, 16, 32, 56, 112)
_C3_SIZES = (4, 8, 22, 44, 88, 176)
_N4_SIZES = (2, 4, 8, 16, 32, 48, 64, 80)
_N1_WIDE = (2, 4, 8, 16, 32, 64, 96)
_E2 = "Efficient Instance, {cpus}, {gb} GB RAM"
_N2 = "{cpus} {gb} GB RAM"
_C2 = "Compute Optimized: {cpus}, {gb} GB RAM"

SHAPES: tuple[_Shape, ...] = (
    _Shape("n1", "standard", 3.75, (1, *_N1_WIDE)),
    _Shape("n1", "highmem", 6.5, _N1_WIDE),
    _Shape("n1", "highcpu", 0.9, _N1_WIDE),
    _Shape("n2", "standard", 4, _N2_SIZES, _N2),
    _Shape("n2", "highmem", 8, _N2_SIZES, _N2),
    _Shape("n2", "highcpu", 1, _N2_SIZES[:-1], _N2),
    _Shape("n2d", "standard", 4, _N2D_SIZES, _N2),
    _Shape("n2d", "highmem", 8, _N2D_SIZES[:-2], _N2),
    _Shape("n2d", "highcpu", 1, _N2D_SIZES, _N2),
    _Shape("e2", "standard", 4, (2, 4, 8, 16, 32), _E2),
    _Shape("e2", "highmem", 8, (2, 4, 8, 16), _E2),
    _Shape("e2", "highcpu", 1, (2, 4, 8, 16, 32), _E2),
    _Shape("c2", "standard", 4, (4, 8, 16, 30, 60), _C2),
    _Shape("c2d", "standard", 4, _C2D_SIZES, _C2),
    _Shape("c2d", "highmem", 8, _C2D_SIZES, _C2),
    _Shape("c2d", "highcpu", 2, _C2D_SIZES, _C2),
    _Shape("c3", "standard", 4, _C3_SIZES),
    _Shape("c3", "highmem", 8, _C3_SIZES),
    _Shape("c3", "highcpu", 2, _C3_SIZES),
    _Shape("t2d", "standard", 4, (1, 2, 4, 8, 16, 32, 48, 60)),
    _Shape("n4", "standard", 4, _N4_SIZES),
    _Shape("n4", "highmem", 8, _N4_SIZES),
    _Shape("n4", "highcpu", 2, _N4_SIZES),
)

# (name, family, vCPUs, memory MB, shared core, GCE's description): the shapes no ratio describes.
_WRITTEN_OUT: tuple[tuple[str, str, int, int, bool, str], ...] = (
    ("f1-micro", "n1", 1, 614, True, "1 vCPU (shared physical core) and 0.6 GB RAM"),
    ("g1-small", "n1", 1, 1740, True, "1 vCPU (shared physical core) and 1.7 GB RAM"),
    ("e2-micro", "e2", 2, 1024, True, "Efficient Instance, 2 vCPU (1/4 shared physical core) and 1 GB RAM"),
    ("e2-small", "e2", 2, 2048, True, "Efficient Instance, 2 vCPU (1/2 shared physical core) and 2 GB RAM"),
    ("e2-medium", "e2", 2, 4096, True, "Efficient Instance, 2 vCPU (1 shared physical core) and 4 GB RAM"),
    ("n2-highmem-128", "n2", 128, 884736, False, "128 vCPUs 864 GB RAM"),
    ("m1-ultramem-40", "m1", 40, 984064, False, "40 vCPUs, 961 GB RAM"),
    ("m1-ultramem-80", "m1", 80, 1968128, False, "80 vCPUs, 1922 GB RAM"),
    ("m1-megamem-96", "m1", 96, 1468006, False, "96 vCPUs, 1.4 TB RAM"),
    ("m1-ultramem-160", "m1", 160, 3936256, False, "160 vCPUs, 3844 GB RAM"),
)


def _series(shape: _Shape) -> list[MachineType]:
    out = []
    for n in shape.sizes:
        gb = shape.gb_per_vcpu * n
        cpus = f"{n} vCPU{'s' if n > 1 else ''}"
        out.append(MachineType(f"{shape.family}-{shape.kind}-{n}", n, round(gb * 1024), False,
                               shape.wording.format(cpus=cpus, gb=f"{gb:g}"), shape.family))
    return out


def _catalog() -> dict[str, MachineType]:
    types = {mt.name: mt for shape in SHAPES for mt in _series(shape)}
    for name, family, cpus, memory, shared, description in _WRITTEN_OUT:
        types[name] = MachineType(name, cpus, memory, shared, description, family)
    return dict(sorted(types.items()))


MACHINE_TYPES: dict[str, MachineType] = _catalog()
FAMILIES: frozenset[str] = frozenset(mt.family for mt in MACHINE_TYPES.values())

# Which families a zone lacks. GCE brings its newest series (C3, N4) and the memory-optimized M1 to a
# region zone by zone; gstack's seeded europe-west1-b plays such a zone. A zone not named here (every
# zone an operator adds) offers every family.
ABSENT_FAMILIES: dict[str, frozenset[str]] = {
    "europe-west1-b": frozenset({"c3", "n4", "m1"}),
}


def offered(family: str, zone_name: str) -> bool:
    """Whether the zone offers the family's types, predefined and custom alike."""
    return family not in ABSENT_FAMILIES.get(zone_name, frozenset())


@lru_cache(maxsize=256)
def machine_types_in(zone_name: str) -> tuple[MachineType, ...]:
    """The predefined types a zone lists, by name: computed once per zone, the catalog never changes."""
    return tuple(mt for mt in MACHINE_TYPES.values() if offered(mt.family, zone_name))
