"""GPU types (GCE's acceleratorTypes): the published names, descriptions and the most cards one VM
may have. A zone offers a type when one of its hosts declares cards of it (host option ``gpus``,
e.g. ``{"nvidia-tesla-t4": 4}``), so a cloud without GPUs lists none, as a GCE zone without them does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AcceleratorType:
    name: str
    description: str
    maximum_cards_per_instance: int


ACCELERATOR_TYPES: dict[str, AcceleratorType] = {a.name: a for a in (
    AcceleratorType("nvidia-tesla-t4", "NVIDIA T4", 4),
    AcceleratorType("nvidia-tesla-t4-vws", "NVIDIA Tesla T4 Virtual Workstation", 4),
    AcceleratorType("nvidia-tesla-p4", "NVIDIA Tesla P4", 4),
    AcceleratorType("nvidia-tesla-p100", "NVIDIA Tesla P100", 4),
    AcceleratorType("nvidia-tesla-v100", "NVIDIA V100", 8),
    AcceleratorType("nvidia-l4", "NVIDIA L4", 8),
    AcceleratorType("nvidia-tesla-a100", "NVIDIA A100 40GB", 16),
    AcceleratorType("nvidia-a100-80gb", "NVIDIA A100 80GB", 8),
    AcceleratorType("nvidia-h100-80gb", "NVIDIA H100 80GB", 8),
)}
