"""The errors a request can end in, each with its HTTP status and a stable machine-readable code.

Services raise these; the HTTP edge turns any of them into `{"error": {"code", "message"}}` with
the status, so the vocabulary lives in one place and no service knows about HTTP.
"""

from __future__ import annotations


class LmsError(Exception):
    status: int = 400
    code: str = "bad_request"
    # Seconds until a retry may succeed; the edge sends it as `Retry-After` when set.
    retry_after: float | None = None

    def __init__(self, message: str, *, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(LmsError):
    status = 422
    code = "invalid"


class Unauthenticated(LmsError):
    status = 401
    code = "unauthenticated"


class Forbidden(LmsError):
    status = 403
    code = "forbidden"


class NotFound(LmsError):
    status = 404
    code = "not_found"


class Conflict(LmsError):
    status = 409
    code = "conflict"


class Unavailable(LmsError):
    status = 503
    code = "unavailable"


class TooLarge(LmsError):
    status = 413
    code = "too_large"


class TooManyRequests(LmsError):
    status = 429
    code = "too_many_requests"


class RateLimited(TooManyRequests):
    """Over a rate limit: the edge answers with `Retry-After`, the whole seconds until the next
    request would be taken."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(LmsError):
    """The media volume is full (or its quota spent): nothing more was stored. Not the
    client's fault and not for good: the edge answers 507 with `Retry-After`."""

    status = 507
    code = "insufficient_storage"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
