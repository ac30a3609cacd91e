"""`create_app(settings)`: one Platform, its request pipeline, and its two doors: the fast lane and Flask."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider

from mock_server.domain.callbacks import Transport
from mock_server.domain.clock import Clock, make_clock
from mock_server.domain.errors import ValidationError
from mock_server.domain.platform import Platform
from mock_server.domain.store import Store
from mock_server.fixtures import load_catalog
from mock_server.http import admin, oauth, plans, runs, scenes, ui
from mock_server.http.envelope import envelope, install_error_handlers
from mock_server.http.fastlane import FastLane
from mock_server.http.pipeline import HANDLERS, Pipeline, Seen, decode_query
from mock_server.http.routing import flask_call
from mock_server.http.spec import vendor_contract
from mock_server.settings import Settings
from mock_server.sqlite_store import SqliteStore
from mock_server.transport import HttpTransport, SelfCallShortcut


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    transport: Transport | None = None,
    store: Store | None = None,
    start_engine: bool = True,
) -> Flask:
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
    json_provider = app.json
    assert isinstance(json_provider, DefaultJSONProvider)  # Flask's default: json_provider_class is not changed
    json_provider.ensure_ascii = False
    json_provider.sort_keys = False
    app.config.update(DPA_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.extensions["dpa_platform"] = platform
    install_error_handlers(app)
    for module in (oauth, plans, runs, scenes):
        app.register_blueprint(module.bp, single_slash=settings.single_slash_paths)
    if settings.admin:
        app.register_blueprint(admin.bp)
        app.register_blueprint(ui.bp)

    pipeline = Pipeline(platform, settings, vendor_contract())
    app.extensions["dpa_pipeline"] = pipeline

    @app.before_request
    def _before() -> Response | None:
        g.dpa_started = time.perf_counter()
        if request.url_rule is not None and request.url_rule.endpoint.rpartition(".")[2] in HANDLERS:
            return None  # a vendor operation: its door runs the whole pipeline, query and faults included
        # Whatever else Flask answers (the admin API, unknown paths, wrong methods) meets the same steps.
        decode_query(request.environ.get("QUERY_STRING", ""))  # raw bytes that are not UTF-8: a 400, not a 500
        if request.path.startswith("/__admin"):
            return None
        endpoint = request.url_rule.endpoint if request.url_rule is not None else ""
        faulted = pipeline.fault(request.method, request.path, endpoint.rpartition(".")[2] or None)
        if faulted is None:
            return None
        code, message, status = faulted
        return envelope(code, message, status=status)

    @app.after_request
    def _after(response: Response) -> Response:
        if not g.get("dpa_journalled"):
            try:
                args = decode_query(request.environ.get("QUERY_STRING", ""))
            except ValidationError:  # refused with a 400 by _before; nothing readable to keep
                args = None
            seen = Seen(args, g.get("dpa_body"), "dpa_body" in g)
            pipeline.journal(flask_call(), seen, response.status_code, g.get("dpa_code"))
        return response

    app.wsgi_app = FastLane(app.wsgi_app, pipeline)  # type: ignore[method-assign]  # Flask's documented middleware hook
    if shortcut is not None:
        shortcut.bind(app)  # no callback can be due before the engine starts
    if start_engine:
        platform.start()
    return app
