"""Register a view for a spec operation: its paths from the spec, then auth, body and query checks."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, current_app, g, request
from flask.blueprints import BlueprintSetupState
from werkzeug.datastructures import MultiDict

from mock_server.domain.errors import BAD_TOKEN, AuthError, ValidationError
from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.envelope import ok
from mock_server.http.limits import JsonLimits, LimitExceeded, check, loads
from mock_server.http.spec import FORM_TYPES, Contract, Operation, form_to_dict


def current_platform() -> Platform:
    return current_app.extensions["dpa_platform"]


def bearer_principal() -> Principal:
    return principal_from_header(request.headers.get("Authorization", ""), current_platform())


def principal_from_header(header: str, platform: Platform) -> Principal:
    if not header.strip():
        raise AuthError("missing Authorization header: send 'Authorization: Bearer <access_token>'", kind=BAD_TOKEN)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <access_token>'", kind=BAD_TOKEN)
    return platform.oauth.verify(token.strip())


def decode_query(query_string: str) -> MultiDict[str, str]:
    """The query as werkzeug's `request.args` reads it from the WSGI environ; raw bytes that are not UTF-8
    are a 400 (werkzeug would raise, and every later look at `request.args` with it)."""
    try:
        text = query_string.encode("latin1").decode("utf-8")
    except UnicodeError:
        raise ValidationError("query string is not valid UTF-8: percent-encode its bytes") from None
    return MultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


def json_limits() -> JsonLimits:
    limits = current_app.extensions.get("dpa_json_limits")
    if limits is None:
        limits = current_app.extensions["dpa_json_limits"] = JsonLimits.of(current_app.config["DPA_SETTINGS"])
    return limits


def check_form_keys(form: MultiDict[str, str], limits: JsonLimits) -> None:
    """A form's field count and its bracketed keys' depth (`a[0][b]...`), within the JSON limits."""
    count = 0
    for key, values in form.lists():
        count += len(values)
        if count > limits.values:
            raise LimitExceeded(f"form body: more than the limit of {limits.values} fields "
                                "(setting json_max_values)")
        if key.count("[") + key.count(".") >= limits.depth:
            raise LimitExceeded(f"form body: the key {key[:40]!r}... nests deeper than the limit of {limits.depth} "
                                "levels (setting json_max_depth)")


def read_body(op: Operation, defaults: dict[str, Any] | None = None) -> Any:
    """The request body as the operation's schema sees it, or a 400 naming what is wrong; `defaults` fill
    fields a JSON object body leaves out, before the check."""
    if not op.bodies:
        return None
    raw = request.get_data(cache=True)
    media = request.mimetype or ""
    if not raw.strip() and not request.form:
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
        raise ValidationError(f"Content-Type {media or '(none)'!r} is not supported here; "
                              f"use {' or '.join(op.bodies)}")
    limits = json_limits()
    if media in FORM_TYPES:
        schema_media = next(m for m in op.bodies if m in FORM_TYPES)
        form = request.form if request.form else MultiDict()
        check_form_keys(form, limits)
        body = form_to_dict(form, op.bodies[schema_media].schema, lambda text: loads(text, limits))
        check(body, limits, "form body")
        g.dpa_body = body  # what the journal keeps (redacted): parsed once, within the limits
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
    g.dpa_body = body
    if isinstance(body, dict):
        # `"callbackUrl": null` means "not given", as a Java binder reads it.
        body = {k: v for k, v in body.items() if v is not None}
        if defaults:
            body = {**defaults, **body}
    op.check_body(media, body)
    return body


# Secured bodiless GETs without path parameters, by operationId: `read(platform, principal, query) -> data`.
# Flask serves them, and so does the fast lane (mock_server/http/fastlane.py) for plain requests.
Read = Callable[[Platform, Principal, dict[str, Any]], Any]
READS: dict[str, Read] = {}


def read_operation(bp: Blueprint, contract: Contract, op_id: str) -> Callable[[Read], Read]:
    op = contract.operations[op_id]
    if op.method != "GET" or not op.secured or op.bodies or "{" in op.path:
        raise ValueError(f"{op_id} is not a secured GET without body or path parameters")

    def decorate(read: Read) -> Read:
        READS[op_id] = read

        def view(principal: Principal, query: dict[str, Any], **_: Any) -> Any:
            return ok(read(current_platform(), principal, query))

        view.__name__ = read.__name__
        operation(bp, contract, op_id)(view)
        return read

    return decorate


def operation(bp: Blueprint, contract: Contract, op_id: str, guard: Callable[[], Any] | None = None,
              body_defaults: Callable[[dict[str, str]], dict[str, Any]] | None = None,
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Route `view` at the operation's path(s); it is called with principal, query, body and path params.
    The single-slash form of a `//` path is routed unless the blueprint is registered with
    `single_slash=False` (setting single_slash_paths)."""
    op = contract.operations[op_id]

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handler(**path: str) -> Any:
            if guard is not None:
                guard()
            principal = bearer_principal() if op.secured else None
            query = op.check_query(request.args)
            body = read_body(op, body_defaults(path) if body_defaults is not None else None)
            return view(principal=principal, query=query, body=body, **path)

        def register(state: BlueprintSetupState) -> None:
            for rule in op.rules if state.options.get("single_slash", True) else op.rules[:1]:
                state.add_url_rule(rule, op_id, handler, methods=[op.method], merge_slashes=False,
                                   provide_automatic_options=False)

        bp.record(register)
        return handler

    return decorate
