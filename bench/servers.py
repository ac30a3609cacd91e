"""Start and stop the servers under test as process groups, time their cold start, and read their RSS."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 0.5) -> int | None:
    """The HTTP status of one GET, or None if nothing answered (cheaper than requests for tight polling)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


class Server:
    """One server under test, started in its own session so stop() can end the whole process group."""

    def __init__(
        self, name: str, cmd: list[str], port: int, ready_path: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.cmd, self.port, self.ready_path, self.log = name, cmd, port, ready_path, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.cold_start_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - open for the server's life, closed by stop()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT, start_new_session=True
        )
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            if http_status(self.port, self.ready_path, timeout=0.25) == 200:
                self.cold_start_s = time.perf_counter() - started
                return self
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer 200 on {self.ready_path} within {timeout:g}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc is not None:
            # The granian worker may outlive its supervisor for a moment; the group kill reaches it too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cpu(self) -> dict[int, float]:
        """CPU seconds (user + system) so far of each live process in the tree, by pid."""
        assert self.proc is not None
        return {pid: _cpu_s(pid) for pid in _tree(self.proc.pid)}

    def rss(self) -> tuple[int, int]:
        """(sum of VmRSS over the process tree, largest single process) in kB; granian = supervisor + worker."""
        assert self.proc is not None
        sizes = [_vm_rss(pid) for pid in _tree(self.proc.pid)]
        return sum(sizes), max(sizes, default=0)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def emulator(
    log_dir: Path, *args: str, threads: int, server: str = "granian", quiet: bool = True, name: str = ""
) -> Server:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mock_server",
        "serve",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--server",
        server,
        *(["--quiet"] if quiet else []),
        *args,
    ]
    label = name or f"emulator-{server}"
    return Server(label, cmd, port, "/__admin/clock", log_dir / f"{label}.log")


def ceiling(log_dir: Path, *, threads: int, server: str = "granian", workers: int = 1, raw: bool = False) -> Server:
    port = free_port()
    cmd = [
        sys.executable,
        str(BENCH_DIR / "ceiling_app.py"),
        "--server",
        server,
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--workers",
        str(workers),
        *(["--raw"] if raw else []),
    ]
    label = f"ceiling-{server}" + (f"-{workers}w" if workers != 1 else "") + ("-raw" if raw else "")
    # PYTHONPATH so granian's worker process can import `ceiling_app:app` however it is spawned.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]))}
    return Server(label, cmd, port, "/json", log_dir / f"{label}.log", env=env)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])  # after the command name, which may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle and iowait) since boot."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICK  # user..steal; guest time is already inside user


def _vm_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
