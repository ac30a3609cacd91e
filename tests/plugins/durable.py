"""Crash-and-restart helpers: `dpa-mock serve` in its own process group, killed with SIGKILL as a whole tree."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.server import ServerProcess


class Tree(ServerProcess):
    """`dpa-mock serve` for crash tests: no DPA_MOCK_* from the caller's environment (a stray
    DPA_MOCK_STATE would change what is tested); kill9() crashes the whole tree."""

    def __init__(
        self, *args: str, port: int | None = None, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        super().__init__(*args, port=port, log=log)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DPA_MOCK_")}
        self.env.update(env or {})


def admin(tree: Tree, method: str, path: str, **kwargs: Any) -> Any:
    """An admin call that must succeed; returns the envelope's data."""
    reply = requests.request(method, tree.base_url + path, timeout=30, **kwargs).json()
    assert reply["code"] == 200, (method, path, reply)
    return reply["data"]


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll `predicate()` until it returns something truthy (returned) or `timeout` wall seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


@pytest.fixture
def trees() -> Iterator[list[Tree]]:
    """Every server a test starts; whatever still runs is killed at the end (logs in tmp_path)."""
    started: list[Tree] = []
    yield started
    for tree in started:
        tree.kill9()
