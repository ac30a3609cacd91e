"""Crash-and-restart helpers: `dpa-mock serve` in its own process group, killed with SIGKILL as a whole tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from mock_server.testing.server import free_port


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` is still running (zombies hold no sockets, so they do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Tree:
    """`dpa-mock serve` (granian supervisor + worker) started with start_new_session, so `kill9()` hits both.

    mock_server.testing.server.ServerProcess terminates only the supervisor; after a SIGKILL there the worker
    would live on holding the port, which is not a crash.
    """

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.port = port or free_port()
        self.args = list(args)
        # No DPA_MOCK_* from the caller's environment: a stray DPA_MOCK_STATE would change what is tested.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DPA_MOCK_")}
        self.env.update(env or {})
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0  # wall time at which the server first answered
        self._log_file: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "Tree":
        cmd = [sys.executable, "-m", "mock_server", "serve", "--port", str(self.port), "--quiet", *self.args]
        self._log_file = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dpa-mock exited with {self.proc.returncode} before serving ({cmd}); "
                                   f"log: {self.log_text()[-2000:]}")
            try:
                requests.get(self.base_url + "/__admin/clock", timeout=0.5)
                self.ready_at = time.time()
                return self
            except requests.RequestException:
                time.sleep(0.02)
        self.kill9()
        raise RuntimeError(f"dpa-mock did not answer on {self.base_url} within {timeout}s")

    def kill9(self) -> None:
        """SIGKILL the whole process group and wait until none of it runs (the port is free again)."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the supervisor leads its own group
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        deadline = time.monotonic() + 10
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {pgid} still alive 10 s after SIGKILL")
            time.sleep(0.01)
        self.proc = None
        if self._log_file not in (None, subprocess.DEVNULL):
            self._log_file.close()
        self._log_file = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


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

