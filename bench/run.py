"""One-command benchmark: dpa-mock vs a bare-Flask ceiling on the same server, driven by wrk; prints Markdown."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, when run as bench/run.py

import peers  # noqa: E402
from report import HttpRow, Results, header, markdown  # noqa: E402
from fast_receiver import FastReceiver  # noqa: E402
from servers import Server, ceiling, emulator, machine_busy_s  # noqa: E402
from wrkdrive import WrkResult, ids_script, oauth_script, run_wrk, static_script  # noqa: E402

from mock_server.settings import Settings  # noqa: E402

CLIENT_ID = "JhYhK/XcFKuVlpVijwLCkw=="  # poc_client, fixtures/apps.yaml
CLIENT_SECRET = "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="
PLAN = "acf42dd3"
AUTHORIZE = f"/api/dp/auth/oauth/authorize?client_id={requests.utils.quote(CLIENT_ID, safe='')}" \
            "&response_type=code&scope=all"
TOKEN = "/api/dp/auth/oauth/token"
LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
EXECUTE = f"/api/dpa/process//processPlan/opExecutePlanByApi/{PLAN}"
OUT_PARAMS = "/api/dpa/process//processPlan/queryPlanRunOutParam"
SCENE = "/api/dpa/process/processPlan/saveTimingParam"
CEILING_ROW = "ceiling: bare Flask GET /json"
RAW_ROW = "ceiling: raw WSGI GET /json"
LIST_ROW = "list plans (bearer)"
LOGGED_LIST_ROW = "list plans (bearer), access log on"
PEER_ROW = "peer: canned list plans (bearer)"
PARTS = ("granian", "workers", "accesslog", "peers", "waitress", "virtual", "coldstart")
# Each peer against the emulator row doing the same kind of bookkeeping: WireMock's request journal and
# Prism's per-request log line against the emulator's journal and access log.
PEER_PAIRS = {"wiremock": LIST_ROW, "prism-silent": LIST_ROW, "prism": LOGGED_LIST_ROW}
DEFAULT_CONFIGS = "sqlite,sqlite-2w"
OPEN_STATUSES = ("DEFAULT", "RUNNING", "PENDING")
TOKEN_BODY = ('{"code":"%s","client_id":"' + CLIENT_ID + '","client_secret":"' + CLIENT_SECRET
              + '","grant_type":"authorization_code"}')


@dataclass(frozen=True)
class Config:
    """One way of serving the emulator: N granian workers, state in memory or in one shared SQLite file."""

    workers: int
    state: bool

    @property
    def key(self) -> str:
        return ("sqlite" if self.state else "memory") + (f"-{self.workers}w" if self.workers != 1 else "")

    @property
    def label(self) -> str:
        """The HTTP table's Server column; (a) keeps the documented default's plain "granian"."""
        return self.baseline + (", sqlite" if self.state else "")

    @property
    def baseline(self) -> str:
        """The Server label of the ceiling row it is compared with: the same server and worker count."""
        return "granian" + (f" ×{self.workers}" if self.workers != 1 else "")


DEFAULT_CONFIG = Config(1, False)  # (a): what `dpa-mock serve` does without options


def parse_configs(text: str) -> list[Config]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"sqlite(?:-(\d+)w)?", item)
        if not m or (m.group(1) and int(m.group(1)) < 1):
            raise ValueError(f"{item!r} (expected sqlite or sqlite-Nw, e.g. sqlite-2w; the in-memory default "
                             "is the granian part, and more than one worker needs the shared SQLite state)")
        config = Config(int(m.group(1) or 1), True)
        if config not in out:
            out.append(config)
    return out


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
        instance = self.execute(base, token)  # finishes (~1.7 s) while the list and oauth rows run
        self.add(LIST_ROW, label, self.wrk(srv, f"list-{slug}", static_script("GET", LIST, bearer)),
                 baseline=config.baseline)
        result = self.wrk(srv, f"oauth-{slug}", oauth_script(AUTHORIZE, TOKEN, TOKEN_BODY))
        pairs = result.extra.get("tokens", 0)
        self.add("authorize + token (pairs)", label, result,
                 f"**{pairs / result.seconds:,.0f} pairs/s**; req/s and latency over both requests",
                 baseline=config.baseline)
        self.wait_finished(base, instance)
        out_path = f"{OUT_PARAMS}?processPlanId={PLAN}&planInstanceId={instance}"
        self.add("output params (GET, finished run)", label,
                 self.wrk(srv, f"outparams-{slug}", static_script("GET", out_path, bearer)), baseline=config.baseline)
        exec_headers = {**bearer, "Content-Type": "application/json"}
        exec_body = '{"processPlanId":"%s"}' % PLAN
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
            exec_body = '{"processPlanId":"%s"}' % PLAN
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
                self.attempt(f"ceiling on granian ×{config.workers}", lambda: self.ceiling_run("granian", config.workers))
            self.attempt(f"emulator {config.label}", lambda: self.emulator_shared(config))

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

    def virtual(self) -> None:
        """Callbacks per second, then the virtual day of minute-scenes, on one `--clock virtual` server."""
        a = self.args
        srv = self.start(emulator(self.work, "--clock", "virtual", threads=a.server_threads,
                                  name="emulator-virtual"))
        try:
            with FastReceiver() as receiver:
                self.attempt("callbacks", lambda: self._callbacks(srv.base_url, receiver))
                self.attempt("virtual day", lambda: self._virtual_day(srv.base_url, receiver))
        finally:
            self.stop(srv)

    def _acked(self, base: str) -> tuple[int, int, int]:
        ledger = self.api("GET", base, "/__admin/callbacks")
        states = [d["state"] for d in ledger]
        return states.count("acked"), states.count("gave_up"), len(states)

    def _callbacks(self, base: str, receiver: FastReceiver) -> None:
        n = self.args.callback_runs
        token = self.login(base)
        log(f"executing {n} runs with a callbackUrl")
        for _ in range(n):
            self.execute(base, token, receiver.url)
        deadline = time.monotonic() + 60
        while self._acked(base)[0] < n and time.monotonic() < deadline:  # the DEFAULT callbacks, sent promptly
            time.sleep(0.1)
        before = self._acked(base)[0]
        expected = 3 * n  # DEFAULT, RUNNING, SUCCESS for plan acf42dd3
        started = time.perf_counter()
        self.api("POST", base, "/__admin/clock/advance", json={"seconds": 10}, timeout=300)
        advanced = time.perf_counter() - started
        acked, gave_up, total = self._acked(base)
        while acked + gave_up < expected and time.perf_counter() - started < 120:
            time.sleep(0.05)
            acked, gave_up, total = self._acked(base)
        elapsed = time.perf_counter() - started
        rate = (acked - before) / elapsed if elapsed else 0.0
        self.results.other.append((
            "callbacks delivered per second", f"{rate:,.0f} /s",
            f"{acked - before:,} RUNNING+SUCCESS deliveries acked {elapsed:.2f} s after advance of 10 s "
            f"(advance call {advanced:.2f} s); {n} runs, {acked:,}/{expected:,} acked in all, {gave_up} gave up, "
            f"receiver got {receiver.total:,}"))
        if acked != expected or gave_up:
            self.failed = True
            self.results.warnings.append(f"callbacks: {acked} of {expected} acked, {gave_up} gave up "
                                         f"(ledger has {total})")

    def _virtual_day(self, base: str, receiver: FastReceiver) -> None:
        a = self.args
        self.api("POST", base, "/__admin/reset")
        receiver.clear()
        token = self.login(base)
        log(f"saving {a.scenes} one-minute cycle scenes")
        started = time.perf_counter()
        for i in range(a.scenes):
            self.api("POST", base, SCENE, token, data={
                "processPlanId": PLAN, "callbackUrl": receiver.url, "dimension": "minutes", "intervals": "1",
                "executeStrategy": "cycle", "sceneName": f"bench-{i}"})
        saved = time.perf_counter() - started
        log(f"advancing the virtual clock {a.day_seconds:g} s")
        started = time.perf_counter()
        self.api("POST", base, "/__admin/clock/advance", json={"seconds": a.day_seconds}, timeout=900)
        elapsed = time.perf_counter() - started
        scenes = self.api("GET", base, "/__admin/scenes")
        fired = sum(s["firedCount"] for s in scenes)
        coalesced = sum(s["coalescedCount"] for s in scenes)
        due = a.scenes * int(a.day_seconds // 60)
        span = "a virtual day" if a.day_seconds == 86400 else f"{a.day_seconds:g} virtual s"
        self.results.other.append((
            f"advance {span}, {a.scenes:,} one-minute cycle scenes", f"{elapsed:.1f} s",
            f"{fired:,} firings ran (runs started), {coalesced:,} coalesced (of {due:,} due; D22 budgets); "
            f"{receiver.total:,} callbacks delivered to the receiver; saving the scenes took "
            f"{saved:.1f} s"))
        if fired + coalesced != due:
            self.results.warnings.append(f"virtual day: fired {fired} + coalesced {coalesced} != due {due}")
        if a.day_seconds == 86400 and a.scenes == 1000:
            self.results.targets.append(("virtual day of 1,000 minute-scenes < 30 s", f"{elapsed:.1f} s",
                                         "pass" if elapsed < 30 else "**FAIL**"))

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
            ("virtual", "virtual clock", self.virtual),
            ("coldstart", "cold start", self.cold_start),
        ]
        try:
            for part, label, fn in parts:
                if part in a.only:
                    self.attempt(label, fn)
        finally:
            self.stop_all()
        self._ratios()
        if self.noisy:
            self.results.warnings.append(
                "measured while other processes kept the machine busy (their cores in brackets; distrust these "
                "rows and their ratios): " + "; ".join(self.noisy))
        configs = [DEFAULT_CONFIG] + list(a.configs if "workers" in a.only else [])
        self.results.configs = [(c.label, c.baseline) for c in configs]
        return self.results

    def _ratios(self) -> None:
        """`vs ceiling` against the ceiling on the same server with the same worker count, in this run."""
        for row in self.results.http:
            ceiling_row = self.results.row(CEILING_ROW, row.baseline or row.server)
            if ceiling_row and ceiling_row.rps and row is not ceiling_row and row.rps:
                row.vs_ceiling = f"{row.rps / ceiling_row.rps:.0%}"
        targets = []
        configs = [DEFAULT_CONFIG] + list(self.args.configs if "workers" in self.args.only else [])
        for config in configs:
            ceiling_row = self.results.row(CEILING_ROW, config.baseline)
            listed = self.results.row(LIST_ROW, config.label)
            if not (ceiling_row and listed and ceiling_row.rps and listed.rps):
                continue
            ratio = listed.rps / ceiling_row.rps
            where = "granian, same run" if config == DEFAULT_CONFIG else f"{config.label} vs ceiling {config.baseline}"
            targets.append((f"list plans ≥ 50% of the ceiling ({where})", f"{ratio:.0%}",
                            "pass" if ratio >= 0.5 else "**FAIL**"))
            suffix = "" if config == DEFAULT_CONFIG else f" ({config.label})"
            targets.append((f"list plans p99 < 10 ms at 16 connections{suffix}", f"{listed.p99_ms:.1f} ms",
                            "pass" if listed.p99_ms < 10 else "**FAIL**"))
        raw, listed = self.results.row(RAW_ROW, "granian"), self.results.row(LIST_ROW, "granian")
        if raw and listed and raw.rps:
            targets.append(("(not a target) list plans / raw WSGI ceiling, same server", f"{listed.rps / raw.rps:.0%}",
                            "for scale: no framework at all, a constant body"))
        for peer, pair in PEER_PAIRS.items():
            peer_row, ours = self.results.row(PEER_ROW, peer), self.results.row(pair, "granian")
            if peer_row and ours and peer_row.rps and ours.rps:
                targets.append((f"{pair} ahead of {peer} ({peers.describe(peer)}), same run",
                                f"{ours.rps:,.0f} vs {peer_row.rps:,.0f} req/s ({ours.rps / peer_row.rps:.0%})",
                                "pass" if ours.rps > peer_row.rps else "**FAIL**"))
        self.results.targets[:0] = targets


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk row (default 10; 2 with --quick)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--server-threads", type=int, default=Settings().threads,
                        help=f"server threads, emulator and ceiling alike (default {Settings().threads})")
    parser.add_argument("--executions", type=int, default=None,
                        help="executions before the memory reading (default 100000; 10000 with --quick)")
    parser.add_argument("--callback-runs", type=int, default=None, help="runs with a callbackUrl (default 500; 100 with --quick)")
    parser.add_argument("--scenes", type=int, default=None, help="one-minute cycle scenes (default 1000; 100 with --quick)")
    parser.add_argument("--day-seconds", type=float, default=None, help="virtual seconds to advance (default 86400; 600 with --quick)")
    parser.add_argument("--quick", action="store_true", help="short rows and small counts: about a minute")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default all: {','.join(PARTS)})")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="shared-state configurations for the workers part: sqlite (1 worker, --state) and "
                             f"sqlite-Nw (--workers N --state), comma-separated (default {DEFAULT_CONFIGS}); "
                             "the in-memory default is always the granian part")
    parser.add_argument("--drain-cap", type=float, default=120.0,
                        help="seconds to wait after the execute row for every run to finish (default 120)")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="before each wrk row, wait up to this many seconds for other processes to use under "
                             "--quiet-cores (default 20; 0: never wait)")
    parser.add_argument("--quiet-budget", type=float, default=60.0,
                        help="at most this many seconds of such waiting in the whole run (default 60)")
    parser.add_argument("--quiet-cores", type=float, default=0.25,
                        help="CPU cores other processes may use for a row to start at once (default 0.25)")
    parser.add_argument("--peer-warmup", type=float, default=None,
                        help="seconds of wrk against each peer before its measured row (default 20; 5 with --quick)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown (with machine info) here")
    args = parser.parse_args(argv)
    args.only = {p.strip() for p in args.only.split(",") if p.strip()}
    if args.only - set(PARTS):
        parser.error(f"--only: unknown part(s) {sorted(args.only - set(PARTS))}; choose from {','.join(PARTS)}")
    try:
        args.configs = parse_configs(args.configs)
    except ValueError as exc:
        parser.error(f"--configs: {exc}")
    quick = args.quick
    defaults = {"duration": 2.0 if quick else 10.0, "peer_warmup": 5.0 if quick else 20.0, "executions": 10_000 if quick else 100_000,
                "callback_runs": 100 if quick else 500, "scenes": 100 if quick else 1000,
                "day_seconds": 600.0 if quick else 86400.0}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.memory_cap = 20.0 if quick else 90.0  # wall seconds the memory-check wrk run may take at most
    return args


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
