"""Flask's door: a vendor operation's routes into the pipeline (vendor_operation), and the admin API's views
(operation), which share the pipeline's auth and body checks."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState

from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.limits import JsonLimits
from mock_server.http.pipeline import HANDLERS, JSON_TYPE, Call, Domain, Handler, Seen, principal_from_header
from mock_server.http.pipeline import read_body as pipeline_read_body
from mock_server.http.spec import Contract, Operation
from mock_server.settings import Settings


def current_platform() -> Platform:
    platform: Platform = current_app.extensions["dpa_platform"]  # create_app puts it there
    return platform


def bearer_principal() -> Principal:
    return principal_from_header(request.headers.get("Authorization", ""), current_platform())


def json_limits() -> JsonLimits:
    limits = current_app.extensions.get("dpa_json_limits")
    if limits is None:
        limits = current_app.extensions["dpa_json_limits"] = JsonLimits.of(current_app.config["DPA_SETTINGS"])
    return limits


def flask_call() -> Call:
    """Flask's request as the pipeline sees it."""
    return Call(
        request.method,
        request.path,
        request.environ.get("QUERY_STRING", ""),
        request.headers.get("Authorization", ""),
        request.mimetype or "",
        request.content_length,
        "Transfer-Encoding" in request.headers,
        request.remote_addr,
        lambda: request.get_data(cache=True),
        lambda: request.form,
        g.get("dpa_started") or time.perf_counter(),
    )


def read_body(op: Operation, defaults: dict[str, Any] | None = None) -> Any:
    """The Flask request's body as the operation's schema sees it (pipeline.read_body), kept for the journal."""
    seen = Seen()
    try:
        return pipeline_read_body(op, flask_call(), json_limits(), seen, defaults)
    finally:
        if seen.parsed:
            g.dpa_body = seen.body


def vendor_operation(
    bp: Blueprint,
    contract: Contract,
    op_id: str,
    *,
    oauth: bool = False,
    body_defaults: Callable[[Settings, dict[str, str]], dict[str, Any]] | None = None,
) -> Callable[[Domain], Domain]:
    """Register a vendor operation's domain step for the pipeline, and Flask's door to it at the operation's
    path(s) (the single-slash form of a `//` path unless registered with `single_slash=False`)."""
    op = contract.operations[op_id]

    def decorate(domain: Domain) -> Domain:
        HANDLERS[op_id] = Handler(domain, oauth, body_defaults)

        def door(**params: str) -> Response:
            answer = current_app.extensions["dpa_pipeline"].run(op, params, flask_call())
            g.dpa_journalled = True  # the pipeline journalled it; after_request must not again
            return Response(answer.body, status=answer.status, content_type=JSON_TYPE)

        door.__name__ = domain.__name__
        _route(bp, op, door)
        return domain

    return decorate


def _route(bp: Blueprint, op: Operation, view: Callable[..., Any]) -> None:
    """Route `view` at the operation's path(s): the single-slash form of a `//` path too, unless the blueprint
    is registered with `single_slash=False` (setting single_slash_paths)."""

    def register(state: BlueprintSetupState) -> None:
        for rule in op.rules if state.options.get("single_slash", True) else op.rules[:1]:
            state.add_url_rule(
                rule, op.id, view, methods=[op.method], merge_slashes=False, provide_automatic_options=False
            )

    bp.record(register)


def operation(
    bp: Blueprint,
    contract: Contract,
    op_id: str,
    guard: Callable[[], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An admin API view at the operation's path(s), called with principal, query, body and path params."""
    op = contract.operations[op_id]

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handler(**path: str) -> Any:
            if guard is not None:
                guard()
            principal = bearer_principal() if op.secured else None
            query = op.check_query(request.args)
            body = read_body(op)
            return view(principal=principal, query=query, body=body, **path)

        _route(bp, op, handler)
        return handler

    return decorate
