"""Autoscalers (zonal ``autoscalers`` and ``regionAutoscalers``): the use cases (:mod:`.configs`),
the policy and its defaults (:mod:`.policy`), the decision (:mod:`.decide`) and the rounds that
sample the CPU signal and resize groups (:mod:`.rounds`)."""

from core.services.autoscalers.configs import delete, insert, patch, update
from core.services.autoscalers.rounds import AutoscalerRounds, start_autoscaler

__all__ = ["AutoscalerRounds", "delete", "insert", "patch", "start_autoscaler", "update"]
