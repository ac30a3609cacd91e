"""Fixtures over real sockets on 127.0.0.1: a scriptable callback receiver and a `dpa-mock serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
