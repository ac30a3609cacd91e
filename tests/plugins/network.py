"""Fixtures over real sockets on 127.0.0.1: a scriptable callback receiver and a `dpa-mock serve` process; raw
exchanges and background calls for the tests that drive servers by hand."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as r:
        yield r


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `dpa-mock serve --clock virtual` for the session; use `live` to get it reset."""
    log = Path(tmp_path_factory.mktemp("served")) / "dpa-mock.log"
    with ServerProcess("--clock", "virtual", log=log) as server:
        yield server


@pytest.fixture
def live(served: ServerProcess) -> ServerProcess:
    """The session's real server, reset to its fixtures before the test."""
    body = requests.post(served.base_url + "/__admin/reset", timeout=5).json()
    assert body["code"] == 200, body
    return served


def raw_exchange(port: int, data: bytes, wait: float = 5.0, shut: bool = False) -> bytes:
    """Send raw bytes (then half-close, if `shut`); everything the server sends back until it closes (or `wait`)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        s.settimeout(wait)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `fn` on a daemon thread; its result (or the exception it raised) lands in the list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test asserts on
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome
