"""The benchmark's harness: servers, quiet waits, wrk rows with their CPU notes, the emulator's API, the results."""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from report import HttpRow, Results, log
from scenario import AUTHORIZE, CLIENT_ID, CLIENT_SECRET, EXECUTE, PLAN, TOKEN
from servers import Server, machine_busy_s
from wrkdrive import WrkResult, run_wrk


class Bench:
    """What every part uses: servers started and stopped, a wrk row measured (after a quiet machine) and recorded,
    the emulator's API, and the results with their warnings. The parts (http_part, engine_part,
    integrator_flow) decide what to measure."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.results = Results()
        self.live: list[Server] = []
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, never through a proxy from the environment
        self.failed = False
        self.quiet_waited = 0.0
        self.noisy: list[str] = []  # rows measured while other processes used a noticeable share of the CPU

    # -- plumbing ----------------------------------------------------------------------------------
    def start(self, server: Server) -> Server:
        self.live.append(server)
        log(f"starting {server.name} on :{server.port}")
        return server.start()

    def stop(self, server: Server) -> None:
        server.stop()
        if server in self.live:
            self.live.remove(server)

    def stop_all(self) -> None:
        for server in list(self.live):
            self.stop(server)

    def attempt(self, label: str, fn: Callable[[], None]) -> None:
        """Run one part; a failure is reported in the output and the rest still runs."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a visible line, not a lost run
            self.failed = True
            self.results.warnings.append(f"{label} failed: {type(exc).__name__}: {exc}")
            log(f"{label} FAILED:\n{traceback.format_exc()}")

    def wait_quiet(self, server: Server | None = None) -> None:
        """On a shared machine: before a row, wait (up to --quiet-wait s) until whatever is not this server
        uses under --quiet-cores, so rows are not measured against someone else's load. Never fails."""
        cap = min(self.args.quiet_wait, self.args.quiet_budget - self.quiet_waited)
        limit = self.args.quiet_cores
        if cap <= 0:
            return
        started = time.monotonic()
        while True:
            mine, busy, t0 = self._cpu_of(server), machine_busy_s(), time.monotonic()
            time.sleep(0.5)
            window = time.monotonic() - t0
            other = (machine_busy_s() - busy - (self._cpu_of(server) - mine)) / window
            waited = time.monotonic() - started
            if other < limit or waited >= cap:
                break
        self.quiet_waited += waited
        if waited >= 1:
            log(f"waited {waited:.0f} s for the machine to quieten (other load now {other:.2f} cores)")

    @staticmethod
    def _cpu_of(server: Server | None) -> float:
        return sum(server.cpu().values()) if server is not None else 0.0

    def wrk(self, server: Server, name: str, script: str, duration: float | None = None) -> WrkResult:
        self.wait_quiet(server)
        log(f"wrk {name} against {server.name}")
        before, busy = server.cpu(), machine_busy_s()
        result = run_wrk(
            server.base_url,
            script,
            self.work,
            name,
            duration=duration or self.args.duration,
            connections=self.args.connections,
            threads=self.args.threads,
        )
        after = server.cpu()
        result.machine_cpu_s = machine_busy_s() - busy
        result.server_cpu_s = {pid: used - before.get(pid, 0.0) for pid, used in after.items()}
        if result.non2xx or result.socket_errors or result.timeouts:
            self.failed = True
            self.results.warnings.append(
                f"{name} on {server.name}: {result.non2xx} non-2xx, {result.socket_errors} socket errors, "
                f"{result.timeouts} timeouts; first bad answer: {result.first_bad or '—'}"
            )
        return result

    def add(self, scenario: str, server: str, result: WrkResult, notes: str = "", baseline: str = "") -> HttpRow:
        row = HttpRow(
            scenario,
            server,
            result.rps,
            result.p50_ms,
            result.p99_ms,
            result.non2xx,
            result.requests,
            notes,
            baseline=baseline or server,
            cpu=_cpu_note(result),
        )
        other = _other_cores(result)
        if other >= 2 * self.args.quiet_cores:
            self.noisy.append(f"{scenario} / {server} ({other:.2f})")
        self.results.http.append(row)
        return row

    def api(
        self, method: str, base: str, path: str, token: str | None = None, timeout: float = 30, **kwargs: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, base + path, headers=headers, timeout=timeout, **kwargs)
        body = response.json()
        if response.status_code != 200 or body.get("code") != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {str(body)[:300]}")
        return body["data"]

    def login(self, base: str) -> str:
        code = self.api("GET", base, AUTHORIZE)["code"]
        body = {
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "authorization_code",
        }
        return str(self.api("POST", base, TOKEN, json=body)["access_token"])

    def execute(self, base: str, token: str, callback_url: str | None = None) -> str:
        body: dict[str, Any] = {"processPlanId": PLAN}
        if callback_url:
            body["callbackUrl"] = callback_url
        return str(self.api("POST", base, EXECUTE, token, json=body)[0]["planInstanceId"])

    def wait_finished(self, base: str, instance_id: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api("GET", base, f"/__admin/runs/{instance_id}")["status"] in ("SUCCESS", "FAIL"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"run {instance_id} did not finish within {timeout:g}s")

    def rss_note(self, server: Server, workers: int = 1) -> tuple[str, str]:
        total, largest = server.rss()
        if workers == 1:
            return f"{total / 1024:.0f} MB", f"tree total; largest process (the worker) {largest / 1024:.0f} MB"
        return f"{total / 1024:.0f} MB", (
            f"tree total (supervisor + {workers} workers); largest process {largest / 1024:.0f} MB"
        )


def _cpu_note(result: WrkResult) -> str:
    """Cores busy during the row: the server's (per process when several worked) + wrk's own, and in brackets
    whatever else kept the machine busy meanwhile (other processes: the noise)."""
    if not result.seconds:
        return ""
    busy = sorted((s / result.seconds for s in result.server_cpu_s.values()), reverse=True)
    server, wrk = sum(busy), result.wrk_cpu_s / result.seconds
    split = [b for b in busy if b >= 0.05]
    each = f" ({'+'.join(f'{b:.2f}' for b in split)})" if len(split) > 1 else ""
    return f"{server:.2f}{each} + {wrk:.2f} [{_other_cores(result):.2f}]"


def _other_cores(result: WrkResult) -> float:
    """Cores the rest of the machine (not the server, not wrk) kept busy during the row."""
    if not result.seconds:
        return 0.0
    mine = sum(result.server_cpu_s.values()) + result.wrk_cpu_s
    return max((result.machine_cpu_s - mine) / result.seconds, 0.0)
