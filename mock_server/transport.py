"""The outbound HTTP transport the callback outbox is given: a thread-safe urllib3 connection pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import urllib3

from mock_server import jsonbytes
from mock_server.domain.callbacks import Transport, TransportError

# Every callback this emulator sends carries the marker, and the admin guard refuses any request that does
# (mock_server/http/admin.py): a callbackUrl naming the emulator's own /__admin, by whatever host alias or path
# spelling, can never make the emulator its caller's deputy. A client forging the marker only locks itself out.
CALLBACK_MARKER = "X-Dpa-Mock-Callback"
CALLBACK_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "dpa-mock-callback",
    CALLBACK_MARKER: "status-callback",
}

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication  # typeshed's own: exists for the checker only


class HttpTransport:
    """POSTs JSON with keep-alive per host; about a third of requests' CPU per callback."""

    def __init__(self, workers: int = 8) -> None:
        # Callbacks go where the caller said: no proxy from the environment, no redirects followed.
        self._pool = urllib3.PoolManager(num_pools=64, maxsize=workers, retries=False)

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        body = jsonbytes.dumps(payload)
        try:
            response = self._pool.request(
                "POST",
                url,
                body=body,
                headers=CALLBACK_HEADERS,
                timeout=urllib3.Timeout(total=timeout),
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, ValueError, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return response.status, response.data.decode("utf-8", "replace")


class SelfCallShortcut:
    """Callbacks addressed to this very server are answered in-process, not over a socket.

    With one server thread busy in /__admin/clock/advance (which waits for callback attempts), an attempt
    sent to the server's own address could not be served until it timed out; in-process it is answered
    at once, exactly as over HTTP.
    """

    def __init__(self, inner: Transport, host: str, port: int) -> None:
        self._inner = inner
        self._app: WSGIApplication | None = None
        loopback = {"127.0.0.1", "localhost", "::1", "[::1]"}
        self._own = {(h, port) for h in (loopback if host in loopback | {"0.0.0.0", "::"} else {host})}

    def bind(self, wsgi_app: WSGIApplication) -> None:
        """The app to answer self-calls (created after the platform that owns this transport)."""
        self._app = wsgi_app

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        try:
            parts = urllib3.util.parse_url(url)
        except ValueError as exc:
            raise TransportError(f"bad callback URL: {exc}") from exc
        if self._app is not None and parts.scheme == "http" and (parts.host, parts.port or 80) in self._own:
            from werkzeug.test import Client

            # The same bytes and headers as over HTTP, so the same admin guard refuses a self-call to /__admin.
            response = Client(self._app).post(
                parts.request_uri,
                data=jsonbytes.dumps(payload),
                headers=CALLBACK_HEADERS,
                environ_base={"REMOTE_ADDR": "127.0.0.1"},
            )
            return response.status_code, response.get_data(as_text=True)
        return self._inner.post_json(url, payload, timeout)
