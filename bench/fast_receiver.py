"""A callback receiver that only acks and counts, cheap enough not to be what the callback rows measure."""

from __future__ import annotations

import asyncio
import collections
import json
import threading

_ACK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nSUCCESS"


class _Ack(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length bodies (what the emulator's requests transport sends)."""

    def __init__(self, receiver: FastReceiver) -> None:
        self._receiver = receiver
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's; asyncio sets TCP_NODELAY on it itself
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self._buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            assert self._transport is not None
            self._transport.write(_ACK)  # status line, headers and body in one write: no Nagle stall
            self._receiver._count(body)


class FastReceiver:
    """`with FastReceiver() as rx: ... rx.total, rx.by_status`; every request is answered 200 SUCCESS.

    Unlike mock_server.testing.receiver (scriptable, records everything, thread per connection) this one
    runs an asyncio loop in one thread and only counts deliveries by the payload's status.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_status: collections.Counter[str] = collections.Counter()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(self._loop.create_server(lambda: _Ack(self), "127.0.0.1", 0))
        self._thread = threading.Thread(target=self._loop.run_forever, name="fast-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/callback"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_status.values())

    def clear(self) -> None:
        with self._lock:
            self.by_status.clear()

    def _count(self, body: bytes) -> None:
        try:
            status = str(json.loads(body).get("status"))
        except (ValueError, AttributeError):
            status = "?"
        with self._lock:
            self.by_status[status] += 1

    def __enter__(self) -> FastReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        def shutdown() -> None:
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=5)
        self._loop.close()
