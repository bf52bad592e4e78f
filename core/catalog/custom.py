"""Custom machine types (``custom-4-8192``, ``n2-custom-8-32768-ext``): a name that is its own shape,
accepted when GCE's rules for its family allow that many vCPUs and that much memory.

The rules are GCE's published limits per family; the wording of each refusal follows GCE's own
("Memory should be a multiple of 256MiB, while 921MiB is requested").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from core.catalog.machines import MachineType
from core.errors import Invalid

MEMORY_STEP_MB = 256
_NAME = re.compile(r"^(?:(n1|n2|n2d|e2|n4)-)?custom-(\d{1,4})-(\d{1,8})(-ext)?$")


class InvalidShape(Invalid):
    """A custom name GCE's rules refuse; ``why`` is the reason, for the caller to quote its own field."""

    def __init__(self, name: str, why: str):
        super().__init__("machineType", name, why)
        self.why = why


@dataclass(frozen=True)
class CustomRule:
    """What a family allows a custom type: which vCPU counts, and memory per vCPU (GB) or in all (MB)."""

    family: str
    cpus_ok: Callable[[int], bool]
    cpus_rule: str
    max_cpus: int
    min_gb_per_vcpu: float
    max_gb_per_vcpu: float
    extended_max_mb: int | None = None  # None: the family has no extended memory
    max_total_mb: int | None = None

    def memory_range(self, cpus: int) -> tuple[int, int]:
        """The smallest and largest memory (MB, multiples of 256) a custom type of ``cpus`` vCPUs may have."""
        low = math.ceil(self.min_gb_per_vcpu * cpus * 1024 / MEMORY_STEP_MB) * MEMORY_STEP_MB
        high = math.floor(self.max_gb_per_vcpu * cpus * 1024 / MEMORY_STEP_MB) * MEMORY_STEP_MB
        if self.max_total_mb is not None:
            high = min(high, self.max_total_mb)
        return low, high


def _even_then_fours(n: int, switch: int, top: int) -> bool:
    return 2 <= n <= top and (n % 2 == 0 if n <= switch else n % 4 == 0)


RULES: dict[str, CustomRule] = {
    "n1": CustomRule("n1", lambda n: n == 1 or (n % 2 == 0 and n <= 96), "1 or an even number", 96,
                     0.9, 6.5, extended_max_mb=624 * 1024),
    "n2": CustomRule("n2", lambda n: _even_then_fours(n, 32, 80),
                     "a multiple of 2 up to 32, then a multiple of 4 up to 80", 80, 0.5, 8,
                     extended_max_mb=864 * 1024),
    "n2d": CustomRule("n2d", lambda n: n in (2, 4, 8, 16) or (n % 16 == 0 and 16 <= n <= 96),
                      "2, 4, 8, 16, or a multiple of 16 up to 96", 96, 0.5, 8, extended_max_mb=768 * 1024),
    "e2": CustomRule("e2", lambda n: n % 2 == 0 and 2 <= n <= 32, "an even number from 2 to 32", 32, 0.5, 8,
                     max_total_mb=128 * 1024),
    "n4": CustomRule("n4", lambda n: _even_then_fours(n, 16, 80),
                     "a multiple of 2 up to 16, then a multiple of 4 up to 80", 80, 2, 8),
}


def is_custom(name: str) -> bool:
    return _NAME.match(name) is not None


def custom_machine_type(name: str) -> MachineType | None:
    """The shape a custom name asks for; None when the name is not a custom one at all.

    Raises InvalidShape when the family's rules refuse the shape, checked in GCE's order: the vCPU
    count, memory granularity, memory per vCPU, then extended memory.
    """
    m = _NAME.match(name)
    if m is None:
        return None
    rule = RULES[m.group(1) or "n1"]
    cpus, memory, extended = int(m.group(2)), int(m.group(3)), m.group(4) is not None
    if cpus > rule.max_cpus or cpus < 1:
        raise InvalidShape(name, f"Custom Machine type with name '{name}' does not exist.")
    if not rule.cpus_ok(cpus):
        raise InvalidShape(name, f"Number of vCPUs of {rule.family.upper()} custom machine types should be "
                                 f"{rule.cpus_rule}, while {cpus} is requested")
    if memory % MEMORY_STEP_MB:
        raise InvalidShape(name, f"Memory should be a multiple of 256MiB, while {memory}MiB is requested")
    _check_memory(name, rule, cpus, memory, extended)
    return MachineType(name, cpus, memory, False, "Custom created machine type.", rule.family)


def _check_memory(name: str, rule: CustomRule, cpus: int, memory: int, extended: bool) -> None:
    low, high = rule.memory_range(cpus)
    if extended and rule.extended_max_mb is None:
        raise InvalidShape(name, f"Extended memory is not supported for {rule.family.upper()} custom machine types")
    if memory < low:
        raise InvalidShape(name, f"Memory should be between {low}MiB and {high}MiB for {cpus} vCPUs, "
                                 f"while {memory}MiB is requested")
    if extended and rule.extended_max_mb is not None and memory > rule.extended_max_mb:
        raise InvalidShape(name, f"Extended memory should be at most {rule.extended_max_mb}MiB, "
                                 f"while {memory}MiB is requested")
    if memory > high and not extended:
        hint = f" (more needs extended memory: '{name}-ext')" if rule.extended_max_mb is not None else ""
        raise InvalidShape(name, f"Memory should be between {low}MiB and {high}MiB for {cpus} vCPUs, "
                                 f"while {memory}MiB is requested{hint}")
