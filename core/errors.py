"""Typed errors raised by the core.

The HTTP layer renders each of them once (``gstack.gce.errors``) into Google's error envelope.
A job that raises one ends its Operation at once with the error's ``op_code`` (the UPPER_SNAKE
code of ``Operation.error.errors[].code``), its message and its HTTP status
(:meth:`ComputeError.as_failure`): a user's error is not retried, it would only repeat.
"""

from __future__ import annotations

NAME_REGEX = "(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)"


class ComputeError(Exception):
    """Base of every error a caller may see. ``status`` and ``reason`` follow Google's envelope;
    ``op_code`` is the code an Operation ending with it carries. Every subclass names its own."""

    status = 400
    reason = "invalid"
    op_code = "INVALID_FIELD_VALUE"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_failure(self) -> OperationFailure:
        """The error a job's Operation ends with when the job raised this one."""
        return OperationFailure(self.op_code, self.message, self.status)


class Invalid(ComputeError):
    """A value is malformed or not allowed in the resource's current state."""

    op_code = "INVALID_FIELD_VALUE"

    def __init__(self, field: str, value: object = None, why: str = "", message: str | None = None):
        if message is None:
            message = f"Invalid value for field '{field}': '{value}'."
            if why:
                message += f" {why}"
        super().__init__(message)
        self.field = field


class Required(ComputeError):
    reason = "required"
    op_code = "INVALID_FIELD_VALUE"  # GCE's required-field errors are of the invalid family (400)

    def __init__(self, field: str):
        super().__init__(f"Required field '{field}' not specified")
        self.field = field


class BadRequest(ComputeError):
    reason = "badRequest"
    op_code = "INVALID_FIELD_VALUE"


class NotFound(ComputeError):
    status = 404
    reason = "notFound"
    op_code = "RESOURCE_NOT_FOUND"

    def __init__(self, path: str):
        super().__init__(f"The resource '{path}' was not found")
        self.path = path


class AlreadyExists(ComputeError):
    status = 409
    reason = "alreadyExists"
    op_code = "RESOURCE_ALREADY_EXISTS"

    def __init__(self, path: str):
        super().__init__(f"The resource '{path}' already exists")


class ResourceInUse(ComputeError):
    reason = "resourceInUseByAnotherResource"
    op_code = "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE"

    def __init__(self, kind: str, path: str, user: str):
        super().__init__(f"The {kind} resource '{path}' is already being used by '{user}'")


class ResourceNotReady(ComputeError):
    reason = "resourceNotReady"
    op_code = "RESOURCE_NOT_READY"


class ResourceExhausted(ComputeError):
    status = 503
    reason = "resourceExhausted"
    op_code = "ZONE_RESOURCE_POOL_EXHAUSTED"


class ConditionNotMet(ComputeError):
    status = 412
    reason = "conditionNotMet"
    op_code = "CONDITION_NOT_MET"


class QuotaExceeded(ComputeError):
    status = 403
    reason = "quotaExceeded"
    op_code = "QUOTA_EXCEEDED"

    def __init__(self, metric: str, limit: float, region: str | None):
        where = f"in region {region}" if region else "globally"
        super().__init__(f"Quota '{metric}' exceeded.  Limit: {float(limit)} {where}.")
        self.metric = metric


class Forbidden(ComputeError):
    status = 403
    reason = "forbidden"
    op_code = "PERMISSIONS_ERROR"


class InsufficientPermissions(ComputeError):
    status = 403
    reason = "insufficientPermissions"
    op_code = "PERMISSIONS_ERROR"

    def __init__(self, message: str = "Request had insufficient authentication scopes."):
        super().__init__(message)


class Unauthenticated(ComputeError):
    status = 401
    reason = "authError"
    op_code = "PERMISSIONS_ERROR"


class RateLimited(ComputeError):
    status = 429
    reason = "rateLimitExceeded"
    op_code = "RATE_LIMIT_EXCEEDED"


class ProjectRateLimited(ComputeError):
    """A project sent more work than its share: GCE's per-project rate quota answer (403
    ``rateLimitExceeded``, domain ``usageLimits``), which Google's clients back off and retry on.
    ``details`` is the ``google.rpc.ErrorInfo`` Google adds to it."""

    status = 403
    reason = "rateLimitExceeded"
    op_code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, project_number: int):
        super().__init__(f"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service "
                         f"'compute.googleapis.com' for consumer 'project_number:{project_number}'.")
        self.details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
                         "domain": "googleapis.com",
                         "metadata": {"service": "compute.googleapis.com", "consumer": f"projects/{project_number}",
                                      "quota_metric": "compute.googleapis.com/default",
                                      "quota_limit": "defaultPerMinutePerProject"}}]


class NotImplementedMethod(ComputeError):
    status = 501
    reason = "notImplemented"
    op_code = "UNSUPPORTED_OPERATION"


class OperationFailure(Exception):
    """Raised inside a job: ends the Operation DONE with this error (no HTTP response involved)."""

    def __init__(self, code: str, message: str, http_status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def zone_exhausted(project: str, zone: str) -> OperationFailure:
    return OperationFailure(
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available to "
        "fulfill the request.  Try a different zone, or try again later.",
        503,
    )
