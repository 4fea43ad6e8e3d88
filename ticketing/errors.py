"""Domain errors. The API maps each to an HTTP status and the one error shape; nothing is half-written."""

from __future__ import annotations

from typing import Any


class TicketingError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class InvalidInput(TicketingError):
    status = 422
    code = "invalid_input"


class NotFound(TicketingError):
    status = 404
    code = "not_found"


class Conflict(TicketingError):
    """The action does not fit the current state (e.g. replying to a returned sub-order)."""

    status = 409
    code = "conflict"


class PermissionDenied(TicketingError):
    status = 403
    code = "forbidden"
