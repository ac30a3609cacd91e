"""A WSGI fast lane for the hottest reads: the Flask views' checks, domain calls, envelope and journal, without
Flask's per-request machinery. Anything out of the ordinary is handed to Flask."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict
from werkzeug.http import HTTP_STATUS_CODES

from mock_server.domain.platform import Platform
from mock_server.http.envelope import envelope_bytes, error_code_and_message, status_for
from mock_server.http.exchange import record_exchange, redact
from mock_server.http.routing import READS, Read, principal_from_header
from mock_server.http.spec import Contract, Operation
from mock_server.settings import Settings

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_CONTENT_TYPE = ("Content-Type", "application/json; charset=utf-8")


class FastLane:
    """Answers plain requests to the READS operations; everything else (other paths, HEAD, bodies, pending
    faults, undecodable query strings) goes to `flask_app`, which answers it exactly as before."""

    def __init__(self, flask_app: WSGIApp, platform: Platform, settings: Settings, contract: Contract) -> None:
        self.flask_app = flask_app
        self._platform, self._settings = platform, settings
        self._routes: dict[tuple[str, str], tuple[Operation, Read]] = {}
        for op_id, read in READS.items():
            op = contract.operations[op_id]
            for rule in op.rules:
                self._routes[(op.method, rule)] = (op, read)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self._routes.get((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        if (route is None or environ.get("CONTENT_LENGTH") not in (None, "", "0")
                or "HTTP_TRANSFER_ENCODING" in environ or self._platform.faults_pending()):
            return self.flask_app(environ, start_response)
        try:
            # As werkzeug reads `request.args`: undecodable bytes stay percent-encoded.
            args = MultiDict(parse_qsl(environ.get("QUERY_STRING", "").encode("latin1").decode(),
                                       keep_blank_values=True, errors="werkzeug.url_quote"))
        except UnicodeError:
            return self.flask_app(environ, start_response)
        started = time.perf_counter()
        op, read = route
        path = environ["PATH_INFO"]
        try:
            principal = principal_from_header(environ.get("HTTP_AUTHORIZATION", ""), self._platform)
            data = read(self._platform, principal, op.check_query(args))
            code, message = 200, "success"
        except Exception as exc:  # rendered as the Flask app's one error handler renders it
            code, message = error_code_and_message(exc, "GET", path)
            data = None
        body = envelope_bytes(code, message, data)
        status = status_for(code, self._settings.http_status)
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}",  # as werkzeug writes it
                       [_CONTENT_TYPE, ("Content-Length", str(len(body)))])
        record_exchange(self._platform, self._settings.log_requests, method="GET", path=path,
                        query=redact(args.to_dict()), status=status, code=code,
                        elapsed_ms=(time.perf_counter() - started) * 1000, body=None,
                        remote_addr=environ.get("REMOTE_ADDR"))
        return [body]
