"""One-command benchmark: dpa-mock vs bare-Flask and raw-WSGI ceilings and the peers, driven by wrk; prints Markdown."""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, when run as bench/run.py

import engine_part
import integrator_flow
import peers
from options import DEFAULT_CONFIG, Config, parse_args
from report import CEILING_ROW, LIST_ROW, LOGGED_LIST_ROW, PEER_ROW, RAW_ROW, HttpRow, Results, header, log, markdown
from scenario import AUTHORIZE, CLIENT_ID, CLIENT_SECRET, EXECUTE, LIST, OUT_PARAMS, PLAN, TOKEN, TOKEN_BODY
from servers import Server, ceiling, emulator, machine_busy_s
from targets import add_ratios_and_targets
from wrkdrive import WrkResult, ids_script, oauth_script, run_wrk, static_script

from mock_server.settings import Settings

OPEN_STATUSES = ("DEFAULT", "RUNNING", "PENDING")


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.results = Results()
        self.live: list[Server] = []
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, never through a proxy from the environment
        self.failed = False
        self._pending_store_checks: dict[Config, set[str]] = {}
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

    def wait_quiet(self, server: Server) -> None:
        """On a shared machine: before a row, wait (up to --quiet-wait s) until whatever is not this server
        uses under --quiet-cores, so rows are not measured against someone else's load. Never fails."""
        cap = min(self.args.quiet_wait, self.args.quiet_budget - self.quiet_waited)
        limit = self.args.quiet_cores
        if cap <= 0:
            return
        started = time.monotonic()
        while True:
            mine, busy, t0 = sum(server.cpu().values()), machine_busy_s(), time.monotonic()
            time.sleep(0.5)
            window = time.monotonic() - t0
            other = (machine_busy_s() - busy - (sum(server.cpu().values()) - mine)) / window
            waited = time.monotonic() - started
            if other < limit or waited >= cap:
                break
        self.quiet_waited += waited
        if waited >= 1:
            log(f"waited {waited:.0f} s for the machine to quieten (other load now {other:.2f} cores)")

    def wrk(self, server: Server, name: str, script: str, duration: float | None = None) -> WrkResult:
        self.wait_quiet(server)
        log(f"wrk {name} against {server.name}")
        before, busy = server.cpu(), machine_busy_s()
        result = run_wrk(server.base_url, script, self.work, name, duration=duration or self.args.duration,
                         connections=self.args.connections, threads=self.args.threads)
        after = server.cpu()
        result.machine_cpu_s = machine_busy_s() - busy
        result.server_cpu_s = {pid: used - before.get(pid, 0.0) for pid, used in after.items()}
        if result.non2xx or result.socket_errors or result.timeouts:
            self.failed = True
            self.results.warnings.append(
                f"{name} on {server.name}: {result.non2xx} non-2xx, {result.socket_errors} socket errors, "
                f"{result.timeouts} timeouts; first bad answer: {result.first_bad or '—'}")
        return result

    def add(self, scenario: str, server: str, result: WrkResult, notes: str = "", baseline: str = "") -> HttpRow:
        row = HttpRow(scenario, server, result.rps, result.p50_ms, result.p99_ms, result.non2xx, result.requests,
                      notes, baseline=baseline or server, cpu=_cpu_note(result))
        other = _other_cores(result)
        if other >= 2 * self.args.quiet_cores:
            self.noisy.append(f"{scenario} / {server} ({other:.2f})")
        self.results.http.append(row)
        return row

    def api(self, method: str, base: str, path: str, token: str | None = None, timeout: float = 30,
            **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, base + path, headers=headers, timeout=timeout, **kwargs)
        body = response.json()
        if response.status_code != 200 or body.get("code") != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {str(body)[:300]}")
        return body["data"]

    def login(self, base: str) -> str:
        code = self.api("GET", base, AUTHORIZE)["code"]
        body = {"code": code, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "grant_type": "authorization_code"}
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
        return f"{total / 1024:.0f} MB", (f"tree total (supervisor + {workers} workers); largest process "
                                          f"{largest / 1024:.0f} MB")

    # -- scenarios ---------------------------------------------------------------------------------
    def ceiling_run(self, server_kind: str, workers: int = 1, raw: bool = False) -> None:
        srv = self.start(ceiling(self.work, threads=self.args.server_threads, server=server_kind, workers=workers,
                                 raw=raw))
        label = server_kind + (f" ×{workers}" if workers != 1 else "")
        try:
            self.add(RAW_ROW if raw else CEILING_ROW, label, self.wrk(srv, srv.name, static_script("GET", "/json")))
        finally:
            self.stop(srv)

    def http_rows(self, srv: Server, config: Config, *, list_runs: bool) -> WrkResult:
        """The four API rows on one server (list, authorize+token, output params, execute), then the check
        that every execution it answered became a run that finished; returns the execute row's result."""
        base, label, slug = srv.base_url, config.label, config.key
        token = self.login(base)
        bearer = {"Authorization": f"Bearer {token}"}
        instance = self.execute(base, token)
        # Before the list row, not during it: with shared state every write of that run's steps makes each
        # reader catch up, and the rows measured the overlap (up to 2x apart between runs).
        self.wait_finished(base, instance)
        self.add(LIST_ROW, label, self.wrk(srv, f"list-{slug}", static_script("GET", LIST, bearer)),
                 baseline=config.baseline)
        result = self.wrk(srv, f"oauth-{slug}", oauth_script(AUTHORIZE, TOKEN, TOKEN_BODY))
        pairs = result.extra.get("tokens", 0)
        self.add("authorize + token (pairs)", label, result,
                 f"**{pairs / result.seconds:,.0f} pairs/s**; req/s and latency over both requests",
                 baseline=config.baseline)
        out_path = f"{OUT_PARAMS}?processPlanId={PLAN}&planInstanceId={instance}"
        self.add("output params (GET, finished run)", label,
                 self.wrk(srv, f"outparams-{slug}", static_script("GET", out_path, bearer)), baseline=config.baseline)
        exec_headers = {**bearer, "Content-Type": "application/json"}
        exec_body = f'{{"processPlanId":"{PLAN}"}}'
        ids_file = self.work / f"execute-{slug}.ids"
        result = self.wrk(srv, f"execute-{slug}", ids_script("POST", EXECUTE, exec_headers, exec_body,
                                                                '"planInstanceId":%s*"([^"]+)"', ids_file))
        self.add("execute (POST, no callbackUrl)", label, result, "each starts a real-clock run (~1.7 s, 3 nodes)",
                 baseline=config.baseline)
        self.check_runs(srv, config, result, ids_file, {instance}, list_runs=list_runs)
        return result

    def check_runs(self, srv: Server, config: Config, result: WrkResult, ids_file: Path, prior: set[str], *,
                   list_runs: bool) -> None:
        """After the execute row: each 2xx answer carried its own planInstanceId, and every run reached SUCCESS
        or FAIL in /__admin/runs (asked of whichever worker answers); with list_runs, also that the full list
        holds exactly those runs (as many as runs_keep keeps). So a fast answer that lost its run fails."""
        ended, base = time.monotonic(), srv.base_url
        ids = ids_file.read_text(encoding="utf-8").split()
        unique = set(ids)
        ok = result.requests - result.non2xx
        problems: list[str] = []
        if len(ids) != ok:
            problems.append(f"{ok:,} execute answers were 2xx but {len(ids):,} carried a planInstanceId")
        if len(unique) != len(ids):
            problems.append(f"{len(ids) - len(unique):,} planInstanceIds were handed out twice")
        while True:
            still = sum(len(self.api("GET", base, f"/__admin/runs?status={s}", timeout=60)) for s in OPEN_STATUSES)
            if not still or time.monotonic() - ended > self.args.drain_cap:
                break
            time.sleep(0.2)
        drained = time.monotonic() - ended
        if still:
            problems.append(f"{still:,} runs still not SUCCESS/FAIL {drained:.0f} s after the load")
        notes = [f"{ok:,} executes answered 2xx with {len(unique):,} distinct ids",
                 f"no run unfinished {drained:.1f} s after the load" if not still else ""]
        if list_runs:
            listed = {r["planInstanceId"]: r["status"] for r in self.api("GET", base, "/__admin/runs", timeout=120)}
            expected = unique | prior
            keep = Settings().runs_keep
            unknown = set(listed) - expected
            unfinished = sum(1 for status in listed.values() if status not in ("SUCCESS", "FAIL"))
            # wrk stops with up to one request per connection on the wire: those runs started, but their
            # answers (and ids) never reached wrk. More unknown runs than that were started by nobody.
            in_flight = self.args.connections
            if len(unknown) > in_flight:
                problems.append(f"/__admin/runs lists {len(unknown):,} runs whose ids no answer carried "
                                f"(at most {in_flight} can be requests cut off when wrk stopped)")
            if unfinished:
                problems.append(f"/__admin/runs lists {unfinished:,} unfinished runs")
            want = min(len(expected), keep - len(unknown))  # the newest runs are kept, the cut-off ones among them
            if len(listed) - len(unknown) != want:
                problems.append(f"/__admin/runs lists {len(listed) - len(unknown):,} of the runs answered for, "
                                f"expected {want:,} (of {len(expected):,}; runs_keep {keep:,})")
            if not problems:
                notes.append(f"/__admin/runs lists all {len(listed) - len(unknown):,} answered for, finished"
                             + (f", + {len(unknown)} whose answers wrk cut off at its end" if unknown else ""))
        self._run_check(config, problems, notes)
        self._pending_store_checks[config] = unique | prior  # for check_state_file, once the server stopped

    def _run_check(self, config: Config, problems: list[str], notes: list[str]) -> None:
        verdict = "pass" if not problems else "**FAIL**"
        self.results.other.append((f"runs after the execute row ({config.label})", verdict,
                                   "; ".join(filter(None, problems + notes))))
        if problems:
            self.failed = True
            self.results.warnings.append(f"{config.label}: " + "; ".join(problems))

    def check_state_file(self, config: Config, path: Path) -> None:
        """After the server stopped: every run it answered for is in the state file (still there and
        finished, or forgotten beyond runs_keep: a deletion marker), read as the store writes it."""
        ids = self._pending_store_checks.pop(config, set())
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                purged = db.execute("SELECT value FROM counters WHERE name = 'purged'").fetchone()[0]
                rows = dict(db.execute("SELECT key, body FROM records WHERE kind = 'run'").fetchall())
            finally:
                db.close()
        except (sqlite3.Error, TypeError) as exc:
            self.results.warnings.append(f"{config.label}: state file not checked ({type(exc).__name__}: {exc})")
            return
        missing = len(ids - rows.keys())
        live = [json.loads(body)["status"] for key, body in rows.items() if key in ids and body]
        unfinished = sum(1 for status in live if status not in ("SUCCESS", "FAIL"))
        problems = []
        if missing and not purged:
            problems.append(f"{missing:,} runs answered for are missing from the state file")
        if unfinished:
            problems.append(f"{unfinished:,} runs unfinished in the state file")
        notes = [f"{len(ids) - missing:,} of {len(ids):,} runs in the file ({len(live):,} kept, "
                 f"{len(ids) - missing - len(live):,} forgotten beyond runs_keep)"
                 + (f"; deletion markers purged up to change {purged:,}, so missing ones are not judged"
                    if purged else "")]
        verdict = "pass" if not problems else "**FAIL**"
        self.results.other.append((f"state file after stop ({config.label})", verdict,
                                   "; ".join(problems + notes)))
        if problems:
            self.failed = True
            self.results.warnings.append(f"{config.label} state file: " + "; ".join(problems))

    def emulator_http(self) -> None:
        """(a) the documented default (1 worker, in memory): the API rows, then the 100,000-execution memory check."""
        a = self.args
        srv = self.start(emulator(self.work, threads=a.server_threads, name="emulator-granian"))
        try:
            base = srv.base_url
            self.results.other.append(("RSS idle (granian)", *self.rss_note(srv)))
            # No full /__admin/runs list here: building 10,000 runs' JSON would weigh on the RSS read below.
            result = self.http_rows(srv, DEFAULT_CONFIG, list_runs=False)
            self._pending_store_checks.pop(DEFAULT_CONFIG, None)
            self.results.other.append(("RSS after the HTTP rows (granian)", *self.rss_note(srv)))
            token = self.login(base)
            exec_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            exec_body = f'{{"processPlanId":"{PLAN}"}}'
            executed = 1 + result.requests
            executed += self._execute_until(srv, a.executions - executed, result.rps, exec_headers, exec_body)
            total, largest = srv.rss()
            self.results.other.append((f"RSS after {executed:,} executions (granian)", f"{total / 1024:.0f} MB",
                                       f"tree total; worker {largest / 1024:.0f} MB; runs_keep "
                                       f"{Settings().runs_keep:,} finished runs kept"))
            if executed >= 100_000:
                ok = total / 1024 < 200
                self.results.targets.append(("RSS after 100,000 executions < 200 MB", f"{total / 1024:.0f} MB",
                                             "pass" if ok else "**FAIL**"))
        finally:
            self.stop(srv)

    def emulator_shared(self, config: Config) -> None:
        """(b), (c)…: the same API rows on `--workers N --state FILE`, a fresh state file each, then its checks."""
        a = self.args
        state = self.work / f"state-{config.key}.sqlite"
        srv = self.start(emulator(self.work, "--state", str(state), "--workers", str(config.workers),
                                  threads=a.server_threads, name=f"emulator-{config.key}"))
        stopped = False
        try:
            self.results.other.append((f"RSS idle ({config.label})", *self.rss_note(srv, config.workers)))
            self.http_rows(srv, config, list_runs=True)
            self.results.other.append((f"RSS after the HTTP rows ({config.label})",
                                       *self.rss_note(srv, config.workers)))
            self.stop(srv)
            stopped = True
            self.check_state_file(config, state)
        finally:
            if not stopped:
                self.stop(srv)

    def workers_part(self) -> None:
        """The shared-store configurations, each after a ceiling with its worker count unless one was measured."""
        for config in self.args.configs:
            if not self.results.row(CEILING_ROW, config.baseline):
                self.attempt(f"ceiling on granian ×{config.workers}",
                             lambda config=config: self.ceiling_run("granian", config.workers))
            self.attempt(f"emulator {config.label}", lambda config=config: self.emulator_shared(config))

    def _execute_until(self, srv: Server, remaining: int, rate: float, headers: dict[str, str], body: str) -> int:
        """More executions in wrk chunks sized from the measured rate, until `remaining` are done or time is up."""
        done, seconds, worst_p99, bad, chunk = 0, 0.0, 0.0, 0, 0
        deadline = time.monotonic() + self.args.memory_cap
        script = static_script("POST", EXECUTE, headers, body)
        while done < remaining and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            duration = max(1.0, min(left, (remaining - done) / max(rate, 100.0) * 1.05))
            chunk += 1
            more = self.wrk(srv, f"execute-memory-{chunk}", script, duration=duration)
            done, seconds, bad = done + more.requests, seconds + more.seconds, bad + more.non2xx
            worst_p99 = max(worst_p99, more.p99_ms)
            rate = more.rps or rate
        if done:
            time.sleep(2.5)  # let the last runs finish before reading RSS
            self.results.other.append((
                "execute, sustained (memory check)", f"{done / seconds:,.0f} req/s",
                f"{done:,} more requests in {seconds:.1f} s ({chunk} wrk runs); worst p99 {worst_p99:.1f} ms; "
                f"non-2xx {bad}"))
        if done < remaining:
            self.results.warnings.append(f"memory check: time cap {self.args.memory_cap:g} s reached after "
                                         f"{done:,} of {remaining:,} more executions")
        return done

    def emulator_list_only(self, server_kind: str, quiet: bool) -> None:
        name = f"emulator-{server_kind}" + ("" if quiet else "-accesslog")
        srv = self.start(emulator(self.work, threads=self.args.server_threads, server=server_kind, quiet=quiet,
                                  name=name))
        try:
            token = self.login(srv.base_url)
            result = self.wrk(srv, f"list-{name}", static_script("GET", LIST, {"Authorization": f"Bearer {token}"}))
            label = LIST_ROW if quiet else LOGGED_LIST_ROW
            self.add(label, server_kind, result, "" if quiet else "log lines to a file")
            if server_kind == "waitress":
                self.results.other.append(("RSS after list plans (waitress)", *self.rss_note(srv)))
        finally:
            self.stop(srv)

    def peers_part(self) -> None:
        """WireMock and Prism serving a canned list-plans envelope, measured with the same wrk row after a warm-up
        (a cold JVM measures its JIT compiler); compared with the emulator in _ratios."""
        reason = peers.install()
        if reason:
            self.results.warnings.append(f"peers not measured: {reason}")
            return
        script = static_script("GET", LIST, peers.BEARER)
        for name, make in peers.PEERS.items():
            srv = make(self.work, peers.DEFAULT_CACHE)
            self.live.append(srv)
            log(f"starting {srv.name} on :{srv.port}")
            try:
                srv.start(timeout=peers.START_TIMEOUT)
                problem = peers.check(srv)
                if problem:  # a fast 401 or 404 is no figure
                    self.failed = True
                    self.results.warnings.append(f"{name} not measured, wrong answer: {problem}")
                    continue
                warm = self.wrk(srv, f"{name}-warmup", script, duration=self.args.peer_warmup)
                result = self.wrk(srv, name, script)
                total, _ = srv.rss()
                self.add(PEER_ROW, name, result, f"{peers.describe(name)}; after {self.args.peer_warmup:g} s of "
                         f"warm-up at {warm.rps:,.0f} req/s; RSS {total / 1024:,.0f} MB; cold start "
                         f"{srv.cold_start_s:.1f} s")
            finally:
                self.stop(srv)

    def cold_start(self) -> None:
        times = []
        for i in range(3):
            srv = self.start(emulator(self.work, threads=self.args.server_threads, name=f"coldstart-{i}"))
            times.append(srv.cold_start_s or 0.0)
            self.stop(srv)
        median = statistics.median(times)
        self.results.other.append(("cold start to first 200 on /__admin/clock", f"{median:.2f} s",
                                   "median of 3 (" + ", ".join(f"{t:.2f}" for t in times) + " s); "
                                   "spawn of `python -m mock_server serve --quiet` (granian)"))
        self.results.targets.append(("cold start < 1 s", f"{median:.2f} s", "pass" if median < 1 else "**FAIL**"))

    def integrator_flow(self) -> None:
        """An integrator's test with both plugin fixtures (token, execute, advance, callbacks asserted), per test."""
        cost = integrator_flow.measure(30 if self.args.quick else 200)
        self.results.other.append(("integrator's full-flow test (dpa_platform + callback_receiver)",
                                   f"{cost.median_ms:.1f} ms", cost.describe()))
        self.results.targets.append(("integrator's full-flow test < 20 ms per test", f"{cost.median_ms:.1f} ms",
                                     "pass" if cost.median_ms < 20 and cost.passed else "**FAIL**"))
        if not cost.passed:
            self.failed = True
            self.results.warnings.append("integrator flow: the generated tests failed")

    # -- whole run ---------------------------------------------------------------------------------
    def run(self) -> Results:
        a = self.args
        self.results.machine = header()
        self.results.params = (f"wrk {a.threads} threads, {a.connections} connections, {a.duration:g} s per row; "
                               f"servers: 1 worker process (×N: N processes), {a.server_threads} threads each"
                               + (f"; shared-store configurations: {','.join(c.key for c in a.configs)}"
                                  if "workers" in a.only and a.configs else "")
                               + ("; **--quick** (short rows, smaller counts)" if a.quick else ""))
        parts: list[tuple[str, str, Callable[[], None]]] = [
            ("granian", "ceiling on granian", lambda: self.ceiling_run("granian")),
            ("granian", "emulator on granian", self.emulator_http),
            ("workers", "shared state and workers", self.workers_part),
            ("granian", "raw WSGI ceiling on granian", lambda: self.ceiling_run("granian", raw=True)),
            ("accesslog", "emulator with access log", lambda: self.emulator_list_only("granian", quiet=False)),
            ("peers", "peers (WireMock, Prism)", self.peers_part),
            ("waitress", "ceiling on waitress", lambda: self.ceiling_run("waitress")),
            ("waitress", "emulator on waitress", lambda: self.emulator_list_only("waitress", quiet=True)),
            ("virtual", "virtual clock", lambda: engine_part.virtual(self)),
            ("integrator", "integrator's full-flow test", self.integrator_flow),
            ("coldstart", "cold start", self.cold_start),
        ]
        try:
            for part, label, fn in parts:
                if part in a.only:
                    self.attempt(label, fn)
        finally:
            self.stop_all()
        add_ratios_and_targets(self.results, [DEFAULT_CONFIG] + list(a.configs if "workers" in a.only else []))
        if self.noisy:
            self.results.warnings.append(
                "measured while other processes kept the machine busy (their cores in brackets; distrust these "
                "rows and their ratios): " + "; ".join(self.noisy))
        configs = [DEFAULT_CONFIG] + list(a.configs if "workers" in a.only else [])
        self.results.configs = [(c.label, c.baseline) for c in configs]
        return self.results



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


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, through every finally that stops a server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dpa-bench-") as work:
        bench = Bench(args, Path(work))
        try:
            results = bench.run()
        except KeyboardInterrupt:
            bench.stop_all()
            log("interrupted; servers stopped")
            return 130
    results.params += f"; whole run {time.perf_counter() - started:.0f} s"
    if bench.quiet_waited:
        results.params += f", of which {bench.quiet_waited:.0f} s waiting for other processes' load to pass"
    text = markdown(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        log(f"written to {args.out}")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
