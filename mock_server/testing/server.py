"""Start `dpa-mock serve` (or another server command) as a subprocess in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` still runs (zombies hold no sockets, so they do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class ServerProcess:
    """`with ServerProcess("--clock", "virtual") as srv: requests.get(srv.base_url + ...)`.

    The server leads its own process group, so stop() and kill9() reach granian's worker too: signalling
    only the supervisor would leave the worker holding the port.
    """

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.command = list(command) if command else [sys.executable, "-m", "mock_server", "serve", "--quiet"]
        self.env = {**os.environ, **(env or {})}
        self.log, self.cwd = log, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0  # wall time at which the server first answered
        self._log_file: IO[bytes] | int | None = None  # an open log, subprocess.DEVNULL, or none yet

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> ServerProcess:
        """Start the process and return at once, without waiting for it to serve (start() waits)."""
        if self.proc is not None and self.proc.poll() is None:
            # `with srv.start():` would start a second server and stop only that one: the first would outlive
            # the test (it did, a proxy per run of test_proxy_hostile).
            raise RuntimeError(f"already started (pid {self.proc.pid}): use `with srv:` or srv.start(), not both")
        cmd = [*self.command, "--port", str(self.port), *self.args]
        self._log_file = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 -- held by the child until stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True
        )
        return self

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.launch()
        assert self.proc is not None
        cmd = [*self.command, "--port", str(self.port), *self.args]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{cmd} exited with {self.proc.returncode} before serving; log: {self.log_text()[-2000:]}"
                )
            try:
                requests.get(self.base_url + "/__admin/clock", timeout=0.5)
                self.ready_at = time.time()
                return self
            except requests.RequestException:
                time.sleep(0.02)
        self.kill9()
        raise RuntimeError(f"{cmd} did not answer on {self.base_url} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group (a clean shutdown), then SIGKILL what is left after `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill9()

    def kill9(self) -> None:
        """SIGKILL the whole process group — a crash — and wait until none of it runs (the port is free)."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 10
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {pgid} still alive 10 s after SIGKILL")
            time.sleep(0.01)
        self.proc = None
        if self._log_file is not None and not isinstance(self._log_file, int):  # DEVNULL is an int
            self._log_file.close()
        self._log_file = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
