"""The fast door into the pipeline (pipeline.py): an ordinary request to a vendor operation is answered without
Flask's per-request machinery, by the very steps Flask's door runs. Anything unusual is handed to Flask."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_host

from mock_server.http.pipeline import Answer, Call, Pipeline, urlencoded_form
from mock_server.http.spec import FORM_TYPES, Operation

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# The one body the door leaves to Flask: multipart (werkzeug's streaming parser, under Flask's form limits).
_MULTIPART = FORM_TYPES[1]


class FastLane:
    """A WSGI layer in front of Flask. `ordinary` tells which requests it answers through `pipeline`: a vendor
    operation's method and path, a plain Content-Length body (not multipart) within max_body_bytes,
    a Host Flask accepts, no pending fault. Everything else goes to `flask_app`, itself a door into the same
    pipeline for vendor operations."""

    def __init__(self, flask_app: WSGIApp, pipeline: Pipeline) -> None:
        self.flask_app = flask_app
        self.pipeline = pipeline
        self._good_hosts: set[str] = set()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(environ)
        if answer is None:
            return self.flask_app(environ, start_response)
        start_response(answer.status_line, answer.headers)
        return [answer.body]

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        """The answer to a request this door takes (journalled); None for Flask to answer."""
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        picked = self.ordinary(
            method,
            path,
            get_host(environ),
            environ.get("CONTENT_TYPE", ""),
            environ.get("CONTENT_LENGTH"),
            "HTTP_TRANSFER_ENCODING" in environ,
        )
        if picked is None:
            return None
        op, params, mimetype, length = picked
        body = environ["wsgi.input"].read(length) if length else b""
        return self.run(
            op,
            params,
            method,
            path,
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_AUTHORIZATION", ""),
            mimetype,
            length,
            body,
            environ.get("REMOTE_ADDR"),
        )

    def ordinary(
        self, method: str, path: str, host: str, content_type: str, length_text: str | None, chunked: bool
    ) -> tuple[Operation, dict[str, str], str, int | None] | None:
        """(operation, path parameters, mimetype, body length) of a request this door takes, else None."""
        if chunked or not path.isascii():
            return None
        route = self.pipeline.route(method, path)
        if route is None:
            return None
        length: int | None = None
        mimetype = ""
        if length_text not in (None, ""):
            # Only a canonical length within the limit: Flask words every other answer (413, 400...).
            if not length_text.isdigit() or str(int(length_text)) != length_text:
                return None
            length = int(length_text)
            if length > self.pipeline.settings.max_body_bytes or (length and not route[0].bodies):
                return None  # a body where the operation takes none is unusual too
        if content_type:
            mimetype = parse_options_header(content_type)[0].lower()
            if mimetype == _MULTIPART:
                return None
        try:
            if not self._host_ok(host) or self.pipeline.platform.faults_pending():
                return None  # a fault (its latency, its answer) is Flask's: the fast door never sleeps
        except Exception:  # noqa: BLE001 - Flask's door meets the same failure and renders it
            return None
        return route[0], route[1], mimetype, length

    def run(
        self,
        op: Operation,
        params: dict[str, str],
        method: str,
        path: str,
        query_string: str,
        authorization: str,
        mimetype: str,
        length: int | None,
        body: bytes,
        remote_addr: str | None,
    ) -> Answer:
        def form() -> MultiDict[str, str]:
            return urlencoded_form(body) if mimetype == FORM_TYPES[0] else MultiDict()

        call = Call(method, path, query_string, authorization, mimetype, length, False, remote_addr, lambda: body, form)
        return self.pipeline.run(op, params, call)

    def _host_ok(self, host: str) -> bool:
        """Whether Flask's URL adapter would accept the Host (it answers 400 to one IDNA cannot encode)."""
        host = host.lower()
        if host in self._good_hosts:
            return True
        try:
            host.partition(":")[0].encode("idna")
        except UnicodeError:
            return False
        if len(self._good_hosts) < 256:  # a client making up hosts only costs the check again
            self._good_hosts.add(host)
        return True
