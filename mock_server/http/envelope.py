"""The `{code, message, data}` envelope, the HTTP status policy, and the one error handler for everything."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from mock_server import jsonbytes
from mock_server.domain.errors import (
    BAD_REQUEST,
    BAD_TOKEN,
    CODE_REUSE,
    INTERNAL,
    NOT_FOUND,
    OK,
    UNKNOWN_INSTANCE,
    UNKNOWN_PLAN,
    VALIDATION,
    DomainError,
)
from mock_server.http.exchange import MASK, secret_values
from mock_server.settings import Settings

log = logging.getLogger("dpa_mock.http")

# Business codes that are also HTTP statuses travel as that status in "mirror" mode; 997/998/999 as 200.
_HTTP_CODES = frozenset({200, 400, 403, 404, 500, 503})


def status_for(code: int, mode: str) -> int:
    """The HTTP status a business code travels with under the `http_status` setting alone."""
    if mode == "always200":
        return 200
    return code if code in _HTTP_CODES else 200


ADMIN_PREFIX = "/__admin"


class Policy:
    """What the settings (a profile, docs/profiles.md) chose where the document is silent, applied in one place
    for every door (Flask, the fast lane, the RSGI gate): the code of each kind of error, the HTTP status of
    each code, the success messages, and whether error envelopes carry `data`. The admin API is the emulator's
    own: only the HTTP status policy reaches it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._kinds = {
            UNKNOWN_PLAN: settings.unknown_plan_code,
            UNKNOWN_INSTANCE: settings.unknown_instance_code,
            VALIDATION: settings.validation_code,
            BAD_TOKEN: settings.bad_token_code,
            CODE_REUSE: settings.code_reuse_code,
        }
        self._statuses = {code: self._status(code) for code in (*_HTTP_CODES, 997, 998, 999, 405)}
        self._error_data = settings.error_data != "absent"

    def _status(self, code: int) -> int:
        if self.settings.http_status == "always200":
            return 200
        return self.settings.http_status_by_code.get(code, status_for(code, "mirror"))

    def status(self, code: int) -> int:
        status = self._statuses.get(code)
        return self._status(code) if status is None else status

    def code_of(self, exc: DomainError, path: str) -> int:
        """The business code an error is answered with: its kind's, as chosen, on the vendor API."""
        if exc.kind is None or path.startswith(ADMIN_PREFIX):
            return exc.code
        return self._kinds.get(exc.kind, exc.code)

    def kind_code(self, kind: str, path: str, default: int) -> int:
        return default if path.startswith(ADMIN_PREFIX) else self._kinds.get(kind, default)

    def success_message(self, path: str, oauth: bool = False) -> str:
        if path.startswith(ADMIN_PREFIX):
            return "success"
        return self.settings.oauth_success_message if oauth else self.settings.success_message

    def body(self, code: int, message: str, data: Any, path: str) -> bytes:
        if code != OK and not self._error_data and not path.startswith(ADMIN_PREFIX):
            return jsonbytes.dumps({"code": code, "message": message})
        return jsonbytes.dumps({"code": code, "message": message, "data": data})

    def wrong_method(self) -> tuple[int, int, bool]:
        """(business code, HTTP status, whether to send Allow) of a known path asked with another method."""
        s = self.settings
        code = s.wrong_method_code
        if s.http_status == "always200":
            return code, 200, s.wrong_method_allow
        return code, s.wrong_method_http_status or self.status(code), s.wrong_method_allow

    def unknown_path(self) -> tuple[int, int]:
        s = self.settings
        code = s.unknown_path_code
        if s.http_status == "always200":
            return code, 200
        return code, s.unknown_path_http_status or self.status(code)


def policy() -> Policy:
    """The current app's policy, made once per app."""
    found = current_app.extensions.get("dpa_policy")
    if found is None:
        found = current_app.extensions["dpa_policy"] = Policy(current_app.config["DPA_SETTINGS"])
    return found


def http_status_for(code: int) -> int:
    return policy().status(code)


def envelope_bytes(code: int, message: str, data: Any = None) -> bytes:
    return jsonbytes.dumps({"code": code, "message": message, "data": data})


def envelope(
    code: int, message: str, data: Any = None, *, status: int | None = None, headers: dict[str, str] | None = None
) -> Response:
    g.dpa_code = code  # for the request journal
    rules = policy()
    return Response(
        rules.body(code, message, data, request.path),
        status=rules.status(code) if status is None else status,
        content_type="application/json; charset=utf-8",
        headers=headers,
    )


def ok(data: Any, message: str | None = None, *, oauth: bool = False) -> Response:
    """A success envelope; its message is the policy's unless given."""
    return envelope(OK, policy().success_message(request.path, oauth) if message is None else message, data)


def _http_error(exc: HTTPException) -> Response:
    rules = policy()
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
        # By default HTTP 405 with an Allow header (as HTTP requires) and the document's 404 (D13).
        code, status, allow = rules.wrong_method()
        if request.path.startswith(ADMIN_PREFIX):  # the emulator's own API keeps its own answer
            code, status, allow = NOT_FOUND, 200 if rules.settings.http_status == "always200" else 405, True
        return envelope(
            code,
            f"method {request.method} is not supported on {request.path}; allowed: {', '.join(allowed)}",
            status=status,
            headers={"Allow": ", ".join(allowed)} if allow else None,
        )
    if isinstance(exc, NotFound):
        return unknown_path_envelope()
    code, message, _ = http_error_parts(exc, request.path, rules)
    return envelope(code, message)


def http_error_parts(exc: HTTPException, path: str, rules: Policy) -> tuple[int, str, None]:
    """(code, message, no status override) of werkzeug's refusal of a request (a body too large, a bad Host)."""
    validation = rules.kind_code(VALIDATION, path, BAD_REQUEST)
    if isinstance(exc, RequestEntityTooLarge):
        return validation, f"request body is larger than the {rules.settings.max_body_bytes}-byte limit", None
    if exc.code is not None and 400 <= exc.code < 500:
        return validation, f"bad request: {exc.description or exc.name}", None
    return INTERNAL, f"{exc.name}", None


def unknown_path_envelope() -> Response:
    code, status = policy().unknown_path()
    if request.path.startswith(ADMIN_PREFIX):
        code, status = NOT_FOUND, policy().status(NOT_FOUND)
    return envelope(code, f"no such path: {request.method} {request.path}", status=status)


def error_code_and_message(exc: Exception, method: str, path: str, rules: Policy | None = None) -> tuple[int, str]:
    """A domain error's code (its kind's, by the policy) and message; anything else is logged and answered
    as a 500."""
    if isinstance(exc, DomainError):
        return (exc.code if rules is None else rules.code_of(exc, path)), exc.message
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return INTERNAL, f"internal error: {type(exc).__name__}"


def without_request_secrets(message: str) -> str:
    """The message with any secret this Flask request carried masked (see mask_secrets)."""
    args = None
    with contextlib.suppress(UnicodeDecodeError):  # such a query is refused anyway; it holds nothing readable
        args = request.args
    return mask_secrets(message, g.get("dpa_body"), args, request.headers.get("Authorization", ""))


def mask_secrets(message: str, body: Any, args: MultiDict[str, str] | None, authorization: str) -> str:
    """The message with any secret the request carried (body or query field, bearer token) masked: a last
    guard, as every message is meant to name a field and its problem, never a secret's value."""
    values = set(secret_values(body))
    if args is not None:
        values |= secret_values(args.to_dict())
    token = authorization.strip().partition(" ")[2].strip()
    if token:
        values.add(token)
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4 and value in message:  # shorter ones would mask ordinary words and numbers
            message = message.replace(value, MASK)
    return message


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        code, message = error_code_and_message(exc, request.method, request.path, policy())
        return envelope(code, without_request_secrets(message))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _http_error(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        return envelope(*error_code_and_message(exc, request.method, request.path))
