"""The machine type catalog: each family's published shapes, the zones that lack a family, and the
rules a custom shape must meet (with the reason GCE gives when it does not)."""

from __future__ import annotations

import pytest

from core.catalog import (
    ABSENT_FAMILIES,
    MACHINE_TYPES,
    InvalidShape,
    machine_type,
    machine_types_in,
    offered,
    stable_id,
)

GB = 1024


def shapes(prefix: str) -> dict[int, int]:
    """vCPUs → memory MB of the predefined types named ``prefix-N``."""
    out = {}
    for name, mt in MACHINE_TYPES.items():
        head, _, size = name.rpartition("-")
        if head == prefix:
            assert mt.guest_cpus == int(size), name
            out[mt.guest_cpus] = mt.memory_mb
    return out


@pytest.mark.parametrize("series, sizes, mb_per_vcpu", [
    ("n1-standard", (1, 2, 4, 8, 16, 32, 64, 96), 3.75 * GB),
    ("n1-highmem", (2, 4, 8, 16, 32, 64, 96), 6.5 * GB),
    ("n1-highcpu", (2, 4, 8, 16, 32, 64, 96), 0.9 * GB),
    ("n2-standard", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128), 4 * GB),
    ("n2-highcpu", (2, 4, 8, 16, 32, 48, 64, 80, 96), 1 * GB),
    ("n2d-standard", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224), 4 * GB),
    ("n2d-highmem", (2, 4, 8, 16, 32, 48, 64, 80, 96), 8 * GB),
    ("n2d-highcpu", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 224), 1 * GB),
    ("e2-standard", (2, 4, 8, 16, 32), 4 * GB),
    ("e2-highmem", (2, 4, 8, 16), 8 * GB),
    ("e2-highcpu", (2, 4, 8, 16, 32), 1 * GB),
    ("c2-standard", (4, 8, 16, 30, 60), 4 * GB),
    ("c2d-standard", (2, 4, 8, 16, 32, 56, 112), 4 * GB),
    ("c2d-highmem", (2, 4, 8, 16, 32, 56, 112), 8 * GB),
    ("c2d-highcpu", (2, 4, 8, 16, 32, 56, 112), 2 * GB),
    ("c3-standard", (4, 8, 22, 44, 88, 176), 4 * GB),
    ("c3-highmem", (4, 8, 22, 44, 88, 176), 8 * GB),
    ("c3-highcpu", (4, 8, 22, 44, 88, 176), 2 * GB),
    ("t2d-standard", (1, 2, 4, 8, 16, 32, 48, 60), 4 * GB),
    ("n4-standard", (2, 4, 8, 16, 32, 48, 64, 80), 4 * GB),
    ("n4-highmem", (2, 4, 8, 16, 32, 48, 64, 80), 8 * GB),
    ("n4-highcpu", (2, 4, 8, 16, 32, 48, 64, 80), 2 * GB),
])
def test_family_shapes(series, sizes, mb_per_vcpu):
    assert shapes(series) == {n: round(n * mb_per_vcpu) for n in sizes}


def test_written_out_shapes():
    expect = {
        "f1-micro": (1, 614, True), "g1-small": (1, 1740, True), "e2-micro": (2, 1024, True),
        "e2-small": (2, 2048, True), "e2-medium": (2, 4096, True), "n2-highmem-128": (128, 864 * GB, False),
        "m1-ultramem-40": (40, 961 * GB, False), "m1-megamem-96": (96, 1468006, False),
    }
    for name, (cpus, memory, shared) in expect.items():
        mt = MACHINE_TYPES[name]
        assert (mt.guest_cpus, mt.memory_mb, mt.shared_cpu) == (cpus, memory, shared), name
    assert shapes("n2-highmem")[96] == 768 * GB


def test_descriptions_and_disk_limits():
    assert MACHINE_TYPES["n1-standard-1"].describe() == "1 vCPU, 3.75 GB RAM"
    assert MACHINE_TYPES["n1-highmem-2"].describe() == "2 vCPUs, 13 GB RAM"
    assert MACHINE_TYPES["n1-highcpu-96"].describe() == "96 vCPUs, 86.4 GB RAM"
    assert MACHINE_TYPES["e2-micro"].describe() == "Efficient Instance, 2 vCPU (1/4 shared physical core) and 1 GB RAM"
    assert MACHINE_TYPES["g1-small"].describe() == "1 vCPU (shared physical core) and 1.7 GB RAM"
    for mt in MACHINE_TYPES.values():
        assert (mt.max_disks, mt.max_disks_size_gb) == ((16, "3072") if mt.shared_cpu else (128, "263168"))
    assert stable_id("machineTypes", "n1-standard-1") == stable_id("machineTypes", "n1-standard-1")
    assert len({stable_id("machineTypes", n) for n in MACHINE_TYPES}) == len(MACHINE_TYPES)


def test_zone_availability():
    everywhere = machine_types_in("us-central1-a")
    assert tuple(MACHINE_TYPES.values()) == everywhere  # a zone the table does not name offers all
    sparse = machine_types_in("europe-west1-b")
    assert {mt.family for mt in everywhere} - {mt.family for mt in sparse} == ABSENT_FAMILIES["europe-west1-b"]
    assert not offered("c3", "europe-west1-b") and offered("c3", "some-new-zone-a")
    assert machine_types_in("europe-west1-b") is sparse  # computed once


@pytest.mark.parametrize("name, family, cpus, memory", [
    ("custom-1-1024", "n1", 1, 1024),
    ("custom-2-4096", "n1", 2, 4096),
    ("n1-custom-96-638976", "n1", 96, 638976),
    ("custom-2-20480-ext", "n1", 2, 20480),
    ("n2-custom-2-1024", "n2", 2, 1024),
    ("n2-custom-36-36864", "n2", 36, 36864),
    ("n2-custom-80-655360", "n2", 80, 655360),
    ("n2-custom-2-65536-ext", "n2", 2, 65536),
    ("n2d-custom-16-131072", "n2d", 16, 131072),
    ("n2d-custom-48-49152", "n2d", 48, 49152),
    ("e2-custom-32-131072", "e2", 32, 131072),
    ("n4-custom-4-16384", "n4", 4, 16384),
])
def test_custom_accepted(name, family, cpus, memory):
    mt = machine_type(name)
    assert mt is not None
    assert (mt.name, mt.family, mt.guest_cpus, mt.memory_mb, mt.shared_cpu) == (name, family, cpus, memory, False)


@pytest.mark.parametrize("name, why", [
    ("custom-3-4096", "Number of vCPUs of N1 custom machine types should be 1 or an even number, while 3 is requested"),
    ("custom-0-1024", "Custom Machine type with name 'custom-0-1024' does not exist."),
    ("custom-98-102400", "Custom Machine type with name 'custom-98-102400' does not exist."),
    ("n1-custom-1-921", "Memory should be a multiple of 256MiB, while 921MiB is requested"),
    ("custom-2-1536", "Memory should be between 2048MiB and 13312MiB for 2 vCPUs, while 1536MiB is requested"),
    ("custom-2-14336", "Memory should be between 2048MiB and 13312MiB for 2 vCPUs, while 14336MiB is requested "
                       "(more needs extended memory: 'custom-2-14336-ext')"),
    ("custom-2-1048576-ext", "Extended memory should be at most 638976MiB, while 1048576MiB is requested"),
    ("n2-custom-34-34816", "Number of vCPUs of N2 custom machine types should be a multiple of 2 up to 32, then a "
                           "multiple of 4 up to 80, while 34 is requested"),
    ("n2-custom-84-86016", "Custom Machine type with name 'n2-custom-84-86016' does not exist."),
    ("n2d-custom-24-24576", "Number of vCPUs of N2D custom machine types should be 2, 4, 8, 16, or a multiple of 16 "
                            "up to 96, while 24 is requested"),
    ("e2-custom-1-1024", "Number of vCPUs of E2 custom machine types should be an even number from 2 to 32, while 1 "
                         "is requested"),
    ("e2-custom-4-16384-ext", "Extended memory is not supported for E2 custom machine types"),
    ("e2-custom-32-135168", "Memory should be between 16384MiB and 131072MiB for 32 vCPUs, while 135168MiB is "
                            "requested"),
])
def test_custom_refused(name, why):
    with pytest.raises(InvalidShape) as caught:
        machine_type(name)
    assert caught.value.why == why
    assert caught.value.message == f"Invalid value for field 'machineType': '{name}'. {why}"


def test_not_a_machine_type():
    for name in ("n9-mega-1", "custom-2", "c3-custom-4-8192", "n1-standard-3", "custom-2-4096-extended"):
        assert machine_type(name) is None
