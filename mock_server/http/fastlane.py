"""A WSGI fast lane for the hottest reads: the Flask views' checks, domain calls, envelope and journal, without
Flask's per-request machinery. Anything out of the ordinary is handed to Flask."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_host

from mock_server.domain.errors import DomainError
from mock_server.domain.platform import Platform
from mock_server.http.envelope import Policy, error_code_and_message
from mock_server.http.exchange import record_exchange, redact
from mock_server.http.routing import READS, Read, decode_query, principal_from_header
from mock_server.http.spec import Contract, Operation
from mock_server.settings import Settings

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_CONTENT_TYPE = ("Content-Type", "application/json; charset=utf-8")


class FastLane:
    """Answers plain requests to the READS operations; everything else (other paths, HEAD, bodies, pending
    faults, odd Host headers, unexpected errors) goes to `flask_app`, which answers it exactly as before."""

    def __init__(self, flask_app: WSGIApp, platform: Platform, settings: Settings, contract: Contract) -> None:
        self.flask_app = flask_app
        self._platform, self._settings = platform, settings
        self._policy = Policy(settings)
        self._routes: dict[tuple[str, str], tuple[Operation, Read]] = {}
        self._good_hosts: set[str] = set()
        for op_id, read in READS.items():
            op = contract.operations[op_id]
            # The same rules as Flask routes (setting single_slash_paths: the spec's `//` form only).
            for rule in op.rules if settings.single_slash_paths else op.rules[:1]:
                self._routes[(op.method, rule)] = (op, read)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(environ)
        if answer is None:
            return self.flask_app(environ, start_response)
        status_line, body = answer
        start_response(status_line, [_CONTENT_TYPE, ("Content-Length", str(len(body)))])
        return [body]

    def answer(self, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        """The status line and body of a request this lane answers, journalled; None for Flask to answer."""
        route = self._routes.get((environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")))
        if (route is None or environ.get("CONTENT_LENGTH") not in (None, "", "0")
                or "HTTP_TRANSFER_ENCODING" in environ or not self._host_ok(environ)):
            return None
        try:
            return self._answer(environ, *route)
        except Exception:  # noqa: BLE001 - nothing was changed or recorded: Flask answers and renders it as it renders any error
            return None

    def _answer(self, environ: dict[str, Any], op: Operation, read: Read) -> tuple[str, bytes] | None:
        """The status line and body, journalled; None to let Flask answer (a fault is pending)."""
        started = time.perf_counter()
        if self._platform.faults_pending():
            return None
        path = environ["PATH_INFO"]
        args: MultiDict[str, str] = MultiDict()
        try:
            args = decode_query(environ.get("QUERY_STRING", ""))
            principal = principal_from_header(environ.get("HTTP_AUTHORIZATION", ""), self._platform)
            data = read(self._platform, principal, op.check_query(args))
            code, message = 200, self._policy.success_message(path)
        except DomainError as exc:  # anything else propagates, and Flask answers the request
            code, message = error_code_and_message(exc, "GET", path, self._policy)
            data = None
        body = self._policy.body(code, message, data, path)
        status = self._policy.status(code)
        record_exchange(self._platform, self._settings.log_requests, method="GET", path=path,
                        query=redact(args.to_dict()), status=status, code=code,
                        elapsed_ms=(time.perf_counter() - started) * 1000, body=None,
                        remote_addr=environ.get("REMOTE_ADDR"))
        return f"{status} {HTTP_STATUS_CODES[status].upper()}", body  # the status line as werkzeug writes it

    def _host_ok(self, environ: dict[str, Any]) -> bool:
        """Whether Flask's URL adapter would accept the Host (it answers 400 to one IDNA cannot encode)."""
        host = get_host(environ).lower()
        if host in self._good_hosts:
            return True
        try:
            host.partition(":")[0].encode("idna")
        except UnicodeError:
            return False
        if len(self._good_hosts) < 256:  # a client making up hosts only costs the check again
            self._good_hosts.add(host)
        return True
