"""`create_app(settings)`: the Flask app around one Platform, behind the fast lane, with journal, faults, errors."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from mock_server.domain.callbacks import Transport
from mock_server.domain.clock import Clock, make_clock
from mock_server.domain.errors import DOCUMENTED_CODES
from mock_server.domain.platform import Platform
from mock_server.domain.store import Store
from mock_server.fixtures import load_catalog
from mock_server.http import admin, oauth, plans, runs, scenes, ui
from mock_server.http.envelope import envelope, install_error_handlers
from mock_server.http.exchange import opaque, record_exchange, redact
from mock_server.http.fastlane import FastLane
from mock_server.http.limits import loads
from mock_server.http.routing import check_form_keys, decode_query, json_limits
from mock_server.http.spec import vendor_contract
from mock_server.settings import Settings
from mock_server.sqlite_store import SqliteStore
from mock_server.transport import HttpTransport, SelfCallShortcut


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               transport: Transport | None = None, store: Store | None = None, start_engine: bool = True) -> Flask:
    settings = settings or Settings()
    catalog = load_catalog(settings.fixtures, settings.timezone)
    clock = clock or make_clock(settings.clock)
    if store is None and settings.state:
        store = SqliteStore(settings.state, lease_ttl=settings.lease_ttl)
    outbound = transport or HttpTransport(settings.callback_workers)
    shortcut = None if transport else SelfCallShortcut(outbound, settings.host, settings.port)
    platform = Platform(settings, catalog, clock, shortcut or outbound, store)

    app = Flask(__name__, static_folder=None)
    app.url_map.merge_slashes = False  # the document's `//` paths are served as written
    app.url_map.strict_slashes = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config.update(DPA_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.extensions["dpa_platform"] = platform
    install_error_handlers(app)
    for module in (oauth, plans, runs, scenes):
        app.register_blueprint(module.bp, single_slash=settings.single_slash_paths)
    if settings.admin:
        app.register_blueprint(admin.bp)
        app.register_blueprint(ui.bp)

    @app.before_request
    def _before() -> Response | None:
        g.dpa_started = time.perf_counter()
        decode_query(request.environ.get("QUERY_STRING", ""))  # raw bytes that are not UTF-8: a 400, not a 500
        if request.path.startswith("/__admin"):
            return None
        endpoint = request.url_rule.endpoint if request.url_rule is not None else ""
        fault = platform.take_fault(request.method, request.path, endpoint.rpartition(".")[2] or None)
        if fault is None:
            return None
        if fault.latency_ms > 0:
            time.sleep(fault.latency_ms / 1000)  # real latency on the wire, whatever the emulator clock
        if fault.code is None and fault.http_status is None:
            return None
        code = fault.code if fault.code is not None else _code_for_status(int(fault.http_status or 500))
        return envelope(code, fault.message, status=fault.http_status)

    @app.after_request
    def _after(response: Response) -> Response:
        elapsed = (time.perf_counter() - g.get("dpa_started", time.perf_counter())) * 1000
        record_exchange(platform, settings.log_requests, method=request.method, path=request.path,
                        query=_redacted_query(), status=response.status_code, code=g.get("dpa_code"),
                        elapsed_ms=elapsed, body=_redacted_body(), remote_addr=request.remote_addr)
        return response

    app.wsgi_app = FastLane(app.wsgi_app, platform, settings, vendor_contract())  # type: ignore[method-assign]
    if shortcut is not None:
        shortcut.bind(app)  # no callback can be due before the engine starts
    if start_engine:
        platform.start()
    return app


def _code_for_status(status: int) -> int:
    """A fault given only an HTTP status still answers a documented business code."""
    if status in DOCUMENTED_CODES:
        return status
    return 500 if status >= 500 else (400 if status >= 400 else 200)


def _redacted_query() -> dict[str, Any]:
    try:
        return redact(request.args.to_dict())
    except UnicodeDecodeError:  # refused with a 400 by _before; nothing readable to keep
        return {}


def _redacted_body() -> Any:
    """The body, parsed once by the view within the limits, with secrets masked; anything the view did not
    parse is parsed here within the same limits, or kept only as its size and hash."""
    if "dpa_body" in g and isinstance(g.dpa_body, (dict, list)):
        return redact(g.dpa_body)
    if not request.content_length and "Transfer-Encoding" not in request.headers:
        return None  # the usual GET: nothing to read, and reading costs a tenth of the request
    try:
        data = request.get_data(cache=True)
    except HTTPException:  # e.g. over max_body_bytes: the body was refused, so it is not kept either
        return f"<{request.content_length or 0} bytes, not read>"
    if not data:
        return None
    try:
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = request.form
            check_form_keys(form, json_limits())
            return redact(form.to_dict())
        parsed = loads(data.decode("utf-8"), json_limits())
    except Exception:  # noqa: BLE001 - not JSON, too deep, too big...: a secret could be anywhere in it
        return opaque(data)
    # A bare string or number has no field names to tell a secret by.
    return redact(parsed) if isinstance(parsed, (dict, list)) else opaque(data)
