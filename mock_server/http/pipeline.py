"""The one way through for every vendor operation — route from the spec → faults → auth → request checks → domain →
envelope → journal and access log — written once; Flask (routing.vendor_operation) and the fast door (fastlane.py,
gate.py) only turn their request into a `Call` and send back the `Answer`."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.formparser import FormDataParser
from werkzeug.http import HTTP_STATUS_CODES

from mock_server.domain.errors import BAD_TOKEN, DOCUMENTED_CODES, OK, AuthError, DomainError, ValidationError
from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.envelope import Policy, error_code_and_message, http_error_parts, mask_secrets
from mock_server.http.exchange import opaque, record_exchange, redact
from mock_server.http.limits import JsonLimits, LimitExceeded, check, loads
from mock_server.http.spec import FORM_TYPES, Contract, Operation, form_to_dict
from mock_server.settings import Settings

JSON_TYPE = "application/json; charset=utf-8"
# (platform, principal, checked query, checked body, path parameters) -> the envelope's data; the principal is a
# Principal for a secured operation (None otherwise), the body what its schema accepted (None without one).
Domain = Callable[[Platform, Any, dict[str, Any], Any, dict[str, str]], Any]


@dataclass(frozen=True)
class Handler:
    """A vendor operation's domain step: one Platform call, and what its success envelope says."""

    domain: Domain
    oauth: bool = False  # interface 1 answers with the setting oauth_success_message
    body_defaults: Callable[[Settings, dict[str, str]], dict[str, Any]] | None = None


# By operationId, filled by the blueprints (routing.vendor_operation) at import.
HANDLERS: dict[str, Handler] = {}


def _no_form() -> MultiDict[str, str]:
    return MultiDict()


@dataclass
class Call:
    """One request as the pipeline sees it, whichever door it came through. `data` reads the body (Flask's may
    raise 413); `form` is the body read as a form, as werkzeug reads one."""

    method: str
    path: str
    query_string: str  # the WSGI (latin-1) form
    authorization: str
    mimetype: str  # lower case, no parameters (werkzeug's `request.mimetype`)
    content_length: int | None  # None: no body announced
    chunked: bool
    remote_addr: str | None
    data: Callable[[], bytes]
    form: Callable[[], MultiDict[str, str]] = _no_form
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Answer:
    status: int
    code: int
    body: bytes

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTP_STATUS_CODES[self.status].upper()}"  # as werkzeug writes it

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", JSON_TYPE), ("Content-Length", str(len(self.body)))]


@dataclass
class Seen:
    """What the pipeline learnt of a request on its way: kept for error messages (secrets masked) and the journal."""

    args: MultiDict[str, str] | None = None  # None: the query was not UTF-8
    body: Any = None  # the body as parsed within the limits (before any defaults)
    parsed: bool = False


def decode_query(query_string: str) -> MultiDict[str, str]:
    """The query as werkzeug's `request.args` reads it from the WSGI environ; raw bytes that are not UTF-8
    are a 400 (werkzeug would raise, and every later look at `request.args` with it)."""
    try:
        text = query_string.encode("latin1").decode("utf-8")
    except UnicodeError:
        raise ValidationError("query string is not valid UTF-8: percent-encode its bytes") from None
    return MultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


# What a door passes for an Authorization header that was sent but whose value it cannot read: granian hands
# over no value for one holding bytes beyond visible ASCII (the RSGI gate), and "missing" would mislead.
UNREADABLE_HEADER = "\ufffd"


def principal_from_header(header: str, platform: Platform) -> Principal:
    if not header.strip():
        raise AuthError("missing Authorization header: send 'Authorization: Bearer <access_token>'", kind=BAD_TOKEN)
    if not header.isascii():  # WSGI's latin-1 text of other bytes, or a door's UNREADABLE_HEADER
        raise AuthError(
            "malformed Authorization header: it holds bytes beyond ASCII, so it is not 'Bearer <access_token>' "
            "(an access token is ASCII)",
            kind=BAD_TOKEN,
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <access_token>'", kind=BAD_TOKEN)
    return platform.oauth.verify(token.strip())


def check_form_keys(form: MultiDict[str, str], limits: JsonLimits) -> None:
    """A form's field count and its bracketed keys' depth (`a[0][b]...`), within the JSON limits."""
    count = 0
    for key, values in form.lists():
        count += len(values)
        if count > limits.values:
            raise LimitExceeded(f"form body: more than the limit of {limits.values} fields (setting json_max_values)")
        if key.count("[") + key.count(".") >= limits.depth:
            raise LimitExceeded(
                f"form body: the key {key[:40]!r}... nests deeper than the limit of {limits.depth} "
                "levels (setting json_max_depth)"
            )


def urlencoded_form(data: bytes) -> MultiDict[str, str]:
    """A url-encoded body read exactly as werkzeug reads `request.form` (its own parser, silent on bad bytes)."""
    return FormDataParser(cls=MultiDict).parse(io.BytesIO(data), FORM_TYPES[0], len(data), {})[1]


def read_body(op: Operation, call: Call, limits: JsonLimits, seen: Seen, defaults: dict[str, Any] | None = None) -> Any:
    """The request body as the operation's schema sees it, or a 400 naming what is wrong; `defaults` fill
    fields a JSON object body leaves out, before the check."""
    if not op.bodies:
        return None
    raw = call.data()
    media = call.mimetype
    if not raw.strip() and not call.form():
        if op.body_required:
            raise ValidationError(f"request body is required ({' or '.join(op.bodies)})")
        return None
    if media == "" and "application/json" in op.bodies:
        media = "application/json"  # a bare body without Content-Type is read as JSON when JSON is allowed
    accepted = set(op.bodies)
    # Spring reads multipart/form-data through the same binder as url-encoded forms.
    if accepted & set(FORM_TYPES):
        accepted |= set(FORM_TYPES)
    if media not in accepted:
        raise ValidationError(f"Content-Type {media or '(none)'!r} is not supported here; use {' or '.join(op.bodies)}")
    if media in FORM_TYPES:
        schema_media = next(m for m in op.bodies if m in FORM_TYPES)
        form = call.form() or MultiDict()
        check_form_keys(form, limits)
        body = form_to_dict(form, op.bodies[schema_media].schema, lambda text: loads(text, limits))
        check(body, limits, "form body")
        seen.body, seen.parsed = body, True  # what the journal keeps (redacted): parsed once, within the limits
        op.check_body(schema_media, body)
        return body
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"malformed JSON body: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        body = loads(text, limits)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"malformed JSON body: {exc}") from None
    seen.body, seen.parsed = body, True
    if isinstance(body, dict):
        # `"callbackUrl": null` means "not given", as a Java binder reads it.
        body = {k: v for k, v in body.items() if v is not None}
        if defaults:
            body = {**defaults, **body}
    op.check_body(media, body)
    return body


def journal_body(call: Call, seen: Seen, limits: JsonLimits) -> Any:
    """The body, parsed once by the checks within the limits, with secrets masked; anything the checks did not
    parse is parsed here within the same limits, or kept only as its size and hash."""
    if seen.parsed and isinstance(seen.body, (dict, list)):
        return redact(seen.body)
    if not call.content_length and not call.chunked:
        return None  # the usual GET: nothing to read, and reading costs a tenth of the request
    try:
        data = call.data()
    except HTTPException:  # e.g. over max_body_bytes: the body was refused, so it is not kept either
        return f"<{call.content_length or 0} bytes, not read>"
    if not data:
        return None
    try:
        if call.mimetype in FORM_TYPES:
            form = call.form()
            check_form_keys(form, limits)
            return redact(form.to_dict())
        parsed = loads(data.decode("utf-8"), limits)
    except Exception:  # noqa: BLE001 - not JSON, too deep, too big...: a secret could be anywhere in it
        return opaque(data)
    # A bare string or number has no field names to tell a secret by.
    return redact(parsed) if isinstance(parsed, (dict, list)) else opaque(data)


def code_for_status(status: int) -> int:
    """A fault given only an HTTP status still answers a documented business code."""
    if status in DOCUMENTED_CODES:
        return status
    return 500 if status >= 500 else (400 if status >= 400 else 200)


class Pipeline:
    """Every vendor operation's steps, for one Platform and its settings."""

    def __init__(self, platform: Platform, settings: Settings, contract: Contract) -> None:
        self.platform, self.settings = platform, settings
        self.policy = Policy(settings)
        self.limits = JsonLimits.of(settings)
        self._exact: dict[tuple[str, str], Operation] = {}
        self._patterns: list[tuple[str, re.Pattern[str], Operation]] = []
        for op in contract.operations.values():
            if op.id not in HANDLERS:
                continue
            # The same rules as Flask's (setting single_slash_paths: the spec's `//` form only).
            for rule in op.rules if settings.single_slash_paths else op.rules[:1]:
                if "<" in rule:  # werkzeug's default converter: one segment, at least one character
                    self._patterns.append((op.method, re.compile(re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", rule)), op))
                else:
                    self._exact[(op.method, rule)] = op

    # -- route ---------------------------------------------------------------------------------------
    def route(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation a method and path name, with the path's parameters, as Flask's URL map routes them."""
        op = self._exact.get((method, path))
        if op is not None:
            return op, {}
        for op_method, pattern, op in self._patterns:
            if op_method == method and (found := pattern.fullmatch(path)) is not None:
                return op, found.groupdict()
        return None

    # -- faults --------------------------------------------------------------------------------------
    def fault(self, method: str, path: str, op_id: str | None) -> tuple[int, str, int | None] | None:
        """A matching fault taken: its latency waited; (code, message, HTTP status) if it answers instead."""
        fault = self.platform.take_fault(method, path, op_id)
        if fault is None:
            return None
        if fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000)  # real latency on the wire, whatever the emulator clock
        if fault.code is None and fault.http_status is None:
            return None
        code = fault.code if fault.code is not None else code_for_status(int(fault.http_status or 500))
        return code, fault.message, fault.http_status

    # -- the whole way -------------------------------------------------------------------------------
    def run(self, op: Operation, params: dict[str, str], call: Call) -> Answer:
        """Answer one request to a vendor operation, and journal it."""
        handler = HANDLERS[op.id]
        seen = Seen()
        status: int | None = None
        data: Any = None
        try:
            seen.args = decode_query(call.query_string)
            faulted = self.fault(call.method, call.path, op.id)
            if faulted is not None:
                code, message, status = faulted
            else:
                principal = principal_from_header(call.authorization, self.platform) if op.secured else None
                query = op.check_query(seen.args)
                defaults = handler.body_defaults(self.settings, params) if handler.body_defaults else None
                body = read_body(op, call, self.limits, seen, defaults)
                data = handler.domain(self.platform, principal, query, body, params)
                code, message = OK, self.policy.success_message(call.path, handler.oauth)
        except DomainError as exc:
            code, message = error_code_and_message(exc, call.method, call.path, self.policy)
            message = mask_secrets(message, seen.body, seen.args, call.authorization)
        except HTTPException as exc:  # Flask's door only: a body over the limit (413) and the like
            code, message, status = http_error_parts(exc, call.path, self.policy)
        except Exception as exc:  # noqa: BLE001 - logged, and answered as a 500 envelope
            code, message = error_code_and_message(exc, call.method, call.path)
        if status is None:
            status = self.policy.status(code)
        answer = Answer(status, code, self.policy.body(code, message, data, call.path))
        self.journal(call, seen, status, code)
        return answer

    # -- journal and access log ----------------------------------------------------------------------
    def journal(self, call: Call, seen: Seen, status: int, code: int | None) -> None:
        query = {} if seen.args is None else redact(seen.args.to_dict())
        record_exchange(
            self.platform,
            self.settings.log_requests,
            method=call.method,
            path=call.path,
            query=query,
            status=status,
            code=code,
            elapsed_ms=(time.perf_counter() - call.started) * 1000,
            body=journal_body(call, seen, self.limits),
            remote_addr=call.remote_addr,
        )
