"""The server-side gate in front of the WSGI app: granian's RSGI interface receives every body in full, under a
read timeout, on the event loop, before the app sees the request, so a stalled or short body never holds the app."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from mock_server.domain.errors import VALIDATION, DomainError
from mock_server.domain.platform import Platform
from mock_server.http.envelope import Policy
from mock_server.http.exchange import record_exchange, redact
from mock_server.http.fastlane import FastLane
from mock_server.http.pipeline import UNREADABLE_HEADER, Answer, decode_query
from mock_server.settings import Settings
from mock_server.stopping import STOP_CLOSE_BUDGET, close_within

# After a stop, how long the worker waits for requests still in the app's threads before flushing the journal:
# with the flush (0.5 s) and the close (STOP_CLOSE_BUDGET) within granian's kill timeout (see cli.py).
DRAIN_BUDGET = 0.5

log = logging.getLogger("dpa_mock.server")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_JSON = ("content-type", "application/json; charset=utf-8")


# What the gate uses of granian's RSGI objects. granian.rsgi's own types leave out Headers.get_all and type
# get() and the body's chunks as Any; these say what granian hands over (text headers, bytes bodies).
class RSGIHeaders(Protocol):
    def __contains__(self, key: str) -> bool: ...
    def get(self, key: str) -> str | None: ...
    def get_all(self, key: str) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...


class RSGIScope(Protocol):
    proto: str
    http_version: str
    server: str
    client: str
    scheme: str
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> RSGIHeaders: ...


class RSGIProtocol(Protocol):
    def __call__(self) -> Awaitable[bytes]: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


class BodyRefused(Exception):
    """A request whose body did not arrive as announced; answered here, never passed to the app."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Gate:
    """An RSGI application serving a WSGI app: the body is awaited (at most `read_timeout` seconds, at most
    `max_body_bytes`), then the app runs on its own pool of `threads` threads, or inline for a plain read."""

    def __init__(
        self,
        app: WSGIApp,
        settings: Settings,
        faults_pending: Callable[[], bool] = lambda: False,
        lane: FastLane | None = None,
        platform: Platform | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self._policy = Policy(settings)
        self._pool = ThreadPoolExecutor(settings.threads, "dpa-app")
        self._faults_pending = faults_pending
        self._lane = lane
        self._platform = platform  # to journal the requests refused here, as the app journals its own

    async def __rsgi__(self, scope: RSGIScope, protocol: RSGIProtocol) -> None:
        if scope.proto != "http":
            return  # websockets: nothing here speaks them; granian closes the connection
        headers = scope.headers
        started = time.perf_counter()
        try:
            body = await self._receive(scope, headers, protocol)
        except BodyRefused as exc:
            self._refuse(scope, protocol, exc.message, started)
            return
        try:
            answer = None
            if (
                self._lane is not None
                and not self._faults_pending()
                and len(headers.get_all("authorization")) < 2
                and len(headers.get_all("content-type")) < 2
            ):
                # Two such headers are one comma-joined value to Flask: its door words that.
                fast = self._fast_call(scope, headers, body)
                # Right here on the event loop with one app thread (no thread hop), unless a shared store's
                # transaction could keep the loop waiting; else on the app's threads, the fast door all the same.
                if self.settings.threads == 1 and not (body and self.settings.state):
                    answer = self._fast(*fast)
                else:
                    answer = await asyncio.get_running_loop().run_in_executor(self._pool, self._fast, *fast)
            if answer is not None:
                self._respond(
                    scope, protocol, answer.status, [_JSON, ("content-length", str(len(answer.body)))], answer.body
                )
                return
            environ = _environ(scope, headers, body)
            # A plain read runs right here, on the event loop: the fastest way (no thread hop), and it is quick.
            # Anything that may take long (a write, an advance, a fault's latency) runs on the app's threads,
            # so the loop keeps receiving other clients' bodies and timing out stalled ones meanwhile.
            # An admin read never takes a fault (only vendor operations do): with a fault set it still runs
            # here, not queued behind a request sleeping a fault's latency on the one app thread.
            if (
                self.settings.threads == 1
                and not body
                and scope.method in ("GET", "HEAD")
                and (scope.path.startswith("/__admin/") or not self._faults_pending())
            ):
                status, out_headers, chunks = _call(self.app, environ)
            else:
                loop = asyncio.get_running_loop()
                status, out_headers, chunks = await loop.run_in_executor(self._pool, _call, self.app, environ)
        except Exception:  # each door renders its own errors; this is a failure outside them
            log.exception("unhandled error serving %s %s", scope.method, scope.path)
            status, out_headers = self._policy.status(500), [_JSON]
            chunks = self._policy.body(500, "internal error", None, scope.path)
        self._respond(scope, protocol, status, out_headers, chunks)

    @staticmethod
    def _fast_call(
        scope: RSGIScope, headers: RSGIHeaders, body: bytes
    ) -> tuple[str, str, str, str, bool, bytes, str, str, str]:
        """What the fast door reads of a request, taken from granian's scope on the event loop."""
        return (
            scope.method,
            _latin1(scope.path),
            _latin1(headers.get("host") or scope.server),
            _latin1(headers.get("content-type") or ""),
            "content-length" in headers,
            body,
            _latin1(scope.query_string),
            _authorization(headers),
            scope.client.rpartition(":")[0].strip("[]"),
        )

    def _fast(
        self,
        method: str,
        path: str,
        host: str,
        content_type: str,
        announced: bool,
        body: bytes,
        query_string: str,
        authorization: str,
        remote_addr: str,
    ) -> Answer | None:
        """The fast door's answer to an ordinary request (FastLane.ordinary), else None for Flask's door. A
        chunked body was received whole: the door sees a plain one."""
        assert self._lane is not None
        picked = self._lane.ordinary(method, path, host, content_type, str(len(body)) if body else None, False)
        if picked is None:
            return None
        op, params, mimetype, length = picked
        return self._lane.run(
            op,
            params,
            method,
            path,
            query_string,
            authorization,
            mimetype,
            length if announced or body else None,
            body,
            remote_addr,
        )

    @staticmethod
    def _respond(
        scope: RSGIScope, protocol: RSGIProtocol, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        try:
            protocol.response_bytes(status, headers, body)
        except Exception:  # noqa: BLE001 - the client left while the app worked: no one to answer
            log.info("client %s left before the answer to %s %s", scope.client, scope.method, scope.path)

    def __rsgi_del__(self, loop: Any) -> None:
        """granian's hook in each worker after a stop, once its connections in flight are done: close the
        worker's platform, or the journal entries it buffered since its last flush are lost and its scheduler
        lease is never handed over. Bounded: granian kills a worker still there STOP_GRACE + STOP_CLOSE_BUDGET
        seconds after the stop (one whose request outlives that never gets here; its journal thread flushed
        every 20 ms meanwhile)."""

        def say(text: str) -> None:
            log.warning("%s", text)

        # Requests still in the app's threads record their journal entry as they finish, and their answers may
        # still go out after this hook: wait for them (bounded, within granian's kill timeout) before the flush,
        # or they were answered and missing from the journal after a restart (6 of 359 once, under load).
        # Work queued but never started is dropped: nothing of it was answered.
        self._pool.shutdown(wait=False, cancel_futures=True)
        close_within(lambda: self._pool.shutdown(wait=True), DRAIN_BUDGET, say, name="dpa-drain")
        if self._platform is None:
            return
        platform = self._platform
        # The journal first, on its own: the rest of the close may wait behind the scheduler's threads, and a
        # kill during it must not cost the entries.
        flush = getattr(platform.journal, "flush", None)
        if flush is not None:
            close_within(flush, 0.5, say, name="dpa-flush")
        close_within(platform.close, STOP_CLOSE_BUDGET, say)

    async def _receive(self, scope: RSGIScope, headers: RSGIHeaders, protocol: RSGIProtocol) -> bytes:
        length_text = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if not chunked and length_text in (None, "0"):
            return b""
        if length_text is not None and not chunked:
            try:
                announced = int(length_text)
            except ValueError:
                raise BodyRefused(f"Content-Length {length_text!r} is not a number") from None
            if announced > self.settings.max_body_bytes:
                # Never read: a client announcing megabytes is answered before it sends them.
                raise BodyRefused(
                    f"request body is larger than the {self.settings.max_body_bytes}-byte limit "
                    f"(max_body_bytes); Content-Length was {announced}"
                )
        try:
            # A chunked body has no length to refuse up front: it is counted as it arrives instead.
            receiving = self._chunks(protocol) if chunked else protocol()
            body = await asyncio.wait_for(receiving, self.settings.read_timeout)
        except BodyRefused:
            raise
        except TimeoutError:
            log.warning(
                "closed %s: %s %s body not received within read_timeout=%gs",
                scope.client,
                scope.method,
                scope.path,
                self.settings.read_timeout,
            )
            raise BodyRefused(
                f"request body not received within {self.settings.read_timeout:g} s "
                "(read_timeout); the connection is closed"
            ) from None
        except Exception as exc:  # noqa: BLE001 - granian's ProtocolClosed/Error: the client left mid-body
            log.warning(
                "closed %s: %s %s body incomplete (%s)", scope.client, scope.method, scope.path, type(exc).__name__
            )
            raise BodyRefused("request body ended before its Content-Length; nothing was processed") from None
        if len(body) > self.settings.max_body_bytes:
            raise BodyRefused(
                f"request body is larger than the {self.settings.max_body_bytes}-byte limit (max_body_bytes)"
            )
        if length_text is not None and not chunked and len(body) != int(length_text):
            raise BodyRefused("request body ended before its Content-Length; nothing was processed")
        return body

    async def _chunks(self, protocol: RSGIProtocol) -> bytes:
        parts, size = [], 0
        async for chunk in protocol:
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise BodyRefused(
                    f"request body is larger than the {self.settings.max_body_bytes}-byte limit (max_body_bytes)"
                )
            parts.append(chunk)
        return b"".join(parts)

    def _refuse(self, scope: RSGIScope, protocol: RSGIProtocol, message: str, started: float) -> None:
        code = self._policy.kind_code(VALIDATION, scope.path, 400)
        status = self._policy.status(code)
        with contextlib.suppress(Exception):  # the client is gone: there is no one to answer
            protocol.response_bytes(
                status, [_JSON, ("connection", "close")], self._policy.body(code, message, None, scope.path)
            )
        if self._platform is not None:
            try:
                query = redact(decode_query(_latin1(scope.query_string)).to_dict())
            except DomainError:
                query = {}
            record_exchange(
                self._platform,
                self.settings.log_requests,
                method=scope.method,
                path=scope.path,
                query=query,
                status=status,
                code=code,
                elapsed_ms=(time.perf_counter() - started) * 1000,
                body=f"<not received: {message}>",
                remote_addr=scope.client.rpartition(":")[0],
            )


_BASE: dict[str, Any] = {
    "SCRIPT_NAME": "",
    "wsgi.version": (1, 0),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}
_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_SERVERS: dict[str, tuple[str, str]] = {}


def _authorization(headers: RSGIHeaders) -> str:
    """The Authorization header; granian gives no value for one holding bytes beyond visible ASCII, and a header
    that was sent must not be reported as missing."""
    value = headers.get("authorization")
    if value is None:
        return UNREADABLE_HEADER if "authorization" in headers else ""
    return _latin1(value)


def _latin1(text: str) -> str:
    """WSGI carries bytes as latin-1 characters; RSGI hands over decoded text."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1")


def _server(text: str) -> tuple[str, str]:
    server = _SERVERS.get(text)
    if server is None:
        host, _, port = text.rpartition(":")
        server = _SERVERS.setdefault(text, (host.strip("[]"), port))
    return server


def _environ(scope: RSGIScope, headers: RSGIHeaders, body: bytes) -> dict[str, Any]:
    server = _server(scope.server)
    client_host, _, client_port = scope.client.rpartition(":")
    environ = _BASE.copy()
    environ.update(
        {
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": _latin1(scope.path),
            "QUERY_STRING": _latin1(scope.query_string),
            "SERVER_NAME": server[0],
            "SERVER_PORT": server[1],
            "SERVER_PROTOCOL": "HTTP/" + scope.http_version,
            "REMOTE_ADDR": client_host.strip("[]"),
            "REMOTE_PORT": client_port,
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
        }
    )
    for name, value in headers.items():
        key = _KEYS.get(name)
        if key is None:
            key = "HTTP_" + name.upper().replace("-", "_")
            if len(_KEYS) < 1024:  # made-up header names only cost the computation again
                _KEYS[name] = key
        if not value.isascii():
            value = _latin1(value)
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    if "HTTP_AUTHORIZATION" not in environ and "authorization" in headers:
        environ["HTTP_AUTHORIZATION"] = UNREADABLE_HEADER  # sent, but granian gives no value (see _authorization)
    if environ.pop("HTTP_TRANSFER_ENCODING", None) is not None:
        environ["CONTENT_LENGTH"] = str(len(body))  # a chunked body, received whole: the app sees a plain one
    return environ


def _call(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured[:] = [status, headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(captured[0][:3]), list(captured[1]), body
