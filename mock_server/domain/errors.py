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

DOCUMENTED_CODES = frozenset(
    {OK, BAD_REQUEST, FORBIDDEN, NOT_FOUND, INTERNAL, UNAVAILABLE, UNKNOWN, USER_NOT_FOUND, BUSINESS}
)


# Kinds of error whose business code the document leaves open: the HTTP layer maps a kind to the code the
# settings (a profile, docs/profiles.md) chose; `code` is the emulator's default for it.
UNKNOWN_PLAN = "unknown-plan"
UNKNOWN_INSTANCE = "unknown-instance"
VALIDATION = "validation"
BAD_TOKEN = "bad-token"
CODE_REUSE = "code-reuse"


class DomainError(Exception):
    """An error the platform answers with an envelope: a business code, a human message, and maybe a kind."""

    code: int = INTERNAL
    kind: str | None = None

    def __init__(self, message: str, code: int | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind


class ValidationError(DomainError):
    code = BAD_REQUEST
    kind = VALIDATION


class AuthError(DomainError):
    code = FORBIDDEN


class NotFound(DomainError):
    code = NOT_FOUND


class UserNotFound(DomainError):
    code = USER_NOT_FOUND


class IllegalTransition(RuntimeError):
    """A programming error: the run engine tried a transition its table does not allow."""
