"""A loopback HTTP receiver for interface-7 callbacks whose answers a test scripts, recording every delivery."""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dpa_client.document import callback_status


@dataclass
class Delivery:
    """One POST the receiver got, and what it answered."""

    at: float
    path: str
    headers: dict[str, str]
    raw: bytes
    answered_status: int
    answered_body: str

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


@dataclass
class _Script:
    """What to answer: a queue of one-off behaviours, then the default."""

    queue: collections.deque[tuple[str, Any]] = field(default_factory=collections.deque)
    default: tuple[str, Any] = ("ack", None)
    # One-off behaviours for deliveries of one callback status (e.g. fail SUCCESS twice), taken before `queue`.
    by_status: dict[str, collections.deque[tuple[str, Any]]] = field(default_factory=dict)


class CallbackReceiver:
    """`ack()`, `fail(times=2)`, `timeout(seconds)`, `body("WRONG")`, `status(500)`; then `deliveries`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Condition()
        self._script = _Script()
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, not after a delayed ACK

            def do_POST(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    raw = _read_chunked(self.rfile)  # many HTTP clients stream a JSON body without a length
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    raw = self.rfile.read(length) if length else b""
                status, body, delay = receiver._answer(raw)
                # Recorded before answering: once the sender has its answer, the delivery is visible here.
                receiver._record(Delivery(time.time(), self.path, dict(self.headers), raw, status, body))
                if delay:
                    time.sleep(delay)
                data = body.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the sender gave up (timeout) before we answered

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="callback-receiver", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def _serve(self) -> None:
        # One blocking accept at a time instead of serve_forever's polling: stop() wakes it with a connection
        # of its own, so stopping takes a connect instead of up to a poll interval (50 ms a test before).
        while not self._stopping.is_set():
            self._server.handle_request()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stopping.set()
            with contextlib.suppress(OSError), socket.create_connection(self._address(), timeout=1):
                pass  # wakes the accept; the loop sees the flag and ends
            self._thread.join(timeout=5)
        self._server.server_close()

    def _address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return (host if isinstance(host, str) else bytes(host).decode()), int(port)

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._address()
        return f"http://{host}:{port}/callback"

    # -- scripting ---------------------------------------------------------------------------------
    def ack(self) -> CallbackReceiver:
        """From now on answer 200 SUCCESS (after any queued one-off answers)."""
        with self._lock:
            self._script.default = ("ack", None)
        return self

    def fail(self, times: int | None = None, status: int = 500) -> CallbackReceiver:
        """Answer HTTP `status` (body FAIL) `times` times, then the default; `times=None`: always."""
        return self._push(("status", status), times)

    def body(self, text: str, times: int | None = None) -> CallbackReceiver:
        """Answer 200 with `text` instead of SUCCESS."""
        return self._push(("body", text), times)

    def timeout(self, seconds: float = 5.0, times: int | None = None) -> CallbackReceiver:
        """Wait `seconds` before answering SUCCESS (longer than the sender's timeout: a failed attempt)."""
        return self._push(("sleep", seconds), times)

    def fail_status(self, status: str, times: int, http_status: int = 500) -> CallbackReceiver:
        """Answer HTTP `http_status` (body FAIL) to the first `times` deliveries whose payload has this `status`."""
        with self._lock:
            self._script.by_status.setdefault(status, collections.deque()).extend([("status", http_status)] * times)
        return self

    def _push(self, behaviour: tuple[str, Any], times: int | None) -> CallbackReceiver:
        with self._lock:
            if times is None:
                self._script.default = behaviour
            else:
                self._script.queue.extend([behaviour] * times)
        return self

    def _answer(self, raw: bytes = b"") -> tuple[int, str, float]:
        status = callback_status(raw) if self._script.by_status else None
        with self._lock:
            own = self._script.by_status.get(status) if status is not None else None
            if own:
                kind, arg = own.popleft()
            else:
                kind, arg = self._script.queue.popleft() if self._script.queue else self._script.default
        if kind == "status":
            return int(arg), "FAIL", 0.0
        if kind == "body":
            return 200, str(arg), 0.0
        if kind == "sleep":
            return 200, "SUCCESS", float(arg)
        return 200, "SUCCESS", 0.0

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)
            self._lock.notify_all()

    # -- reading -----------------------------------------------------------------------------------
    def payloads(self) -> list[Any]:
        with self._lock:
            return [d.json for d in self.deliveries]

    def for_instance(self, instance_id: str) -> list[Delivery]:
        with self._lock:
            return [
                d for d in self.deliveries if isinstance(d.json, dict) and d.json.get("planInstanceId") == instance_id
            ]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Block until `predicate(deliveries)` is true or `timeout` (wall) seconds pass."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self.deliveries)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def clear(self) -> None:
        with self._lock:
            self.deliveries.clear()
            self._script = _Script()


def _read_chunked(stream: Any, limit: int = 16 * 1024 * 1024) -> bytes:
    """The body of a `Transfer-Encoding: chunked` request (RFC 9112 §7.1): sizes in hex, extensions and trailers
    ignored; at most `limit` bytes, so a hostile sender cannot exhaust memory."""
    data = bytearray()
    while True:
        line = stream.readline(1024)
        if not line:
            break  # the sender closed early: keep what arrived
        try:
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields, up to the blank line
            break
        if len(data) + size > limit:
            break  # too large to be a callback: what arrived is recorded, the rest is not read
        data += stream.read(size)
        stream.readline(1024)  # the CRLF closing the chunk
    return bytes(data)
