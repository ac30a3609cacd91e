"""Helpers for the proxy's tests: a `dpa-mock proxy` process in front of a target, and reading its verdicts."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from mock_server.testing.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


def proxy_process(target: str, *args: str, log: Path | None = None) -> ServerProcess:
    """`dpa-mock proxy --target TARGET ARGS` on a free port; it answers /__admin/clock by forwarding it."""
    return ServerProcess(
        *args, command=[sys.executable, "-m", "mock_server", "proxy", "--target", target], log=log, cwd=ROOT
    )


def broken_process(defect: str) -> ServerProcess:
    """A server of the kit's self-test with exactly one defect (tests/kit_selftest/broken.py)."""
    return ServerProcess(command=[sys.executable, "-m", "tests.kit_selftest.broken", defect], cwd=ROOT)


def admin(proxy: ServerProcess, what: str) -> Any:
    body = requests.get(f"{proxy.base_url}/__admin/{what}", timeout=10).json()
    assert body["code"] == 200, body
    return body["data"]


def findings(proxy: ServerProcess, **match: str) -> list[dict[str, Any]]:
    return [f for f in admin(proxy, "findings") if all(f.get(k) == v for k, v in match.items())]


def proxy_for(live: ServerProcess, tmp_path: Path) -> ServerProcess:
    """A proxy in front of the session's (reset) emulator, with a report and a log in `tmp_path`."""
    return proxy_process(live.base_url, "--report", str(tmp_path / "report.md"), log=tmp_path / "proxy.log")


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the proxy hung up on a slow answer: expected in these tests


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A small HTTP server with `handler` on a free port, for a fixture to yield from: its base URL."""
    server = _Quiet(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
