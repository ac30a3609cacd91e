"""Errors that carry the platform's business code, rendered by the single HTTP error handler."""

from __future__ import annotations

# The document's business codes (响应状态码说明).
OK = 200
BAD_REQUEST = 400
FORBIDDEN = 403
NOT_FOUND = 404
INTERNAL = 500
UNAVAILABLE = 503
UNKNOWN = 997
USER_NOT_FOUND = 998
BUSINESS = 999

DOCUMENTED_CODES = frozenset({OK, BAD_REQUEST, FORBIDDEN, NOT_FOUND, INTERNAL, UNAVAILABLE, UNKNOWN, USER_NOT_FOUND, BUSINESS})


class DomainError(Exception):
    """An error the platform answers with an envelope: a business code and a human message."""

    code: int = INTERNAL

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ValidationError(DomainError):
    code = BAD_REQUEST


class AuthError(DomainError):
    code = FORBIDDEN


class NotFound(DomainError):
    code = NOT_FOUND


class UserNotFound(DomainError):
    code = USER_NOT_FOUND


class IllegalTransition(RuntimeError):
    """A programming error: the run engine tried a transition its table does not allow."""
