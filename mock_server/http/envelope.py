"""The `{code, message, data}` envelope, the HTTP status policy, and the one error handler for everything."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from mock_server import jsonbytes
from mock_server.domain.errors import BAD_REQUEST, INTERNAL, NOT_FOUND, DomainError
from mock_server.http.exchange import MASK, secret_values

log = logging.getLogger("dpa_mock.http")

# Business codes that are also HTTP statuses travel as that status in "mirror" mode; 997/998/999 as 200.
_HTTP_CODES = frozenset({200, 400, 403, 404, 500, 503})


def status_for(code: int, mode: str) -> int:
    """The HTTP status a business code travels with under the `http_status` setting."""
    if mode == "always200":
        return 200
    return code if code in _HTTP_CODES else 200


def http_status_for(code: int) -> int:
    return status_for(code, current_app.config["DPA_SETTINGS"].http_status)


def envelope_bytes(code: int, message: str, data: Any = None) -> bytes:
    return jsonbytes.dumps({"code": code, "message": message, "data": data})


def envelope(code: int, message: str, data: Any = None, *, status: int | None = None,
             headers: dict[str, str] | None = None) -> Response:
    g.dpa_code = code  # for the request journal
    return Response(envelope_bytes(code, message, data), status=http_status_for(code) if status is None else status,
                    content_type="application/json; charset=utf-8", headers=headers)


def ok(data: Any, message: str = "success") -> Response:
    return envelope(200, message, data)


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
        # HTTP 405 with an Allow header (as HTTP requires); the business code is the document's 404.
        status = 200 if current_app.config["DPA_SETTINGS"].http_status == "always200" else 405
        return envelope(NOT_FOUND, f"method {request.method} is not supported on {request.path}; "
                        f"allowed: {', '.join(allowed)}", status=status, headers={"Allow": ", ".join(allowed)})
    if isinstance(exc, NotFound):
        return envelope(NOT_FOUND, f"no such path: {request.method} {request.path}")
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config["DPA_SETTINGS"].max_body_bytes
        return envelope(BAD_REQUEST, f"request body is larger than the {limit}-byte limit")
    if exc.code is not None and 400 <= exc.code < 500:
        return envelope(BAD_REQUEST, f"bad request: {exc.description or exc.name}")
    return envelope(INTERNAL, f"{exc.name}")


def error_code_and_message(exc: Exception, method: str, path: str) -> tuple[int, str]:
    """A domain error's own code and message; anything else is logged and answered as a 500."""
    if isinstance(exc, DomainError):
        return exc.code, exc.message
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return INTERNAL, f"internal error: {type(exc).__name__}"


def without_request_secrets(message: str) -> str:
    """The message with any secret this request carried (body or query field, bearer token) masked: a last
    guard, as every message is meant to name a field and its problem, never a secret's value."""
    values = set(secret_values(g.get("dpa_body")))
    with contextlib.suppress(UnicodeDecodeError):  # such a query is refused anyway; it holds nothing readable
        values |= secret_values(request.args.to_dict())
    token = request.headers.get("Authorization", "").strip().partition(" ")[2].strip()
    if token:
        values.add(token)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4 and value in message:  # shorter ones would mask ordinary words and numbers
            message = message.replace(value, MASK)
    return message


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        code, message = error_code_and_message(exc, request.method, request.path)
        return envelope(code, without_request_secrets(message))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _http_error(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        return envelope(*error_code_and_message(exc, request.method, request.path))
