"""Domain errors. Raised by services and repositories, mapped to HTTP once in `problems`."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class; `status` and `title` say how the HTTP layer presents it."""

    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class InvalidInput(DomainError):
    """Malformed request: bad JSON, bad query parameter, bad id, tampered cursor."""

    status, title, slug = 400, "Bad Request", "invalid-input"


class ValidationFailed(DomainError):
    """The body parsed but breaks the schema; `errors` lists the fields."""

    status, title, slug = 422, "Unprocessable Content", "validation-failed"


class Forbidden(DomainError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(DomainError):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(DomainError):
    """A uniqueness rule or a state rule was violated; `field` names the culprit."""

    status, title, slug = 409, "Conflict", "conflict"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        errors = [{"field": field, "message": detail}] if field else None
        super().__init__(detail, errors=errors)
        self.field = field


class PayloadTooLarge(DomainError):
    status, title, slug = 413, "Content Too Large", "payload-too-large"


class UnsupportedMediaType(DomainError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class PreconditionFailed(DomainError):
    status, title, slug = 412, "Precondition Failed", "precondition-failed"


class Unavailable(DomainError):
    """A dependency cannot serve the request now; the client may retry after `retry_after`."""

    status, title, slug = 503, "Service Unavailable", "unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DeadlineExceeded(DomainError):
    status, title, slug = 504, "Gateway Timeout", "deadline-exceeded"
