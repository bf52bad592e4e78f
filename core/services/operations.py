"""Operations as a collection of their own: deleting one the caller no longer wants to see."""

from __future__ import annotations

from core.errors import BadRequest
from core.resources import operations
from core.resources.context import Call


def delete(call: Call, scope: str, name: str) -> None:
    """Forget a finished Operation; a running one is still doing its job and stays."""
    op = operations.find(call, scope, name)
    if op.status != "DONE":
        raise BadRequest(f"The operation '{op.name}' is still running and cannot be deleted.")
    call.session.delete(op)
