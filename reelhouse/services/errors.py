"""Errors a use case raises; entry points turn them into HTTP problems or CLI messages."""
from __future__ import annotations

from typing import Any, Optional


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: Optional[str] = None, code: Optional[str] = None,
                 status: Optional[int] = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "code": self.code, "title": self.message}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class BadRequest(ServiceError):
    status, code = 400, "bad_request"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class PreconditionFailed(ServiceError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(ServiceError):
    status, code = 413, "too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ServiceError):
    status, code = 422, "unprocessable"


class Locked(ServiceError):
    status, code = 423, "locked"


class TooManyRequests(ServiceError):
    """``retry_after_s`` (in the problem too): when the budget will hold the request."""
    status, code = 429, "rate_limited"


class ChecksumMismatch(ServiceError):
    status, code = 460, "checksum_mismatch"  # tus checksum extension
