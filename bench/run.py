"""One-command benchmark: dpa-mock vs a bare-Flask ceiling on the same server, driven by wrk; prints Markdown."""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, when run as bench/run.py

from report import HttpRow, Results, header, markdown  # noqa: E402
from fast_receiver import FastReceiver  # noqa: E402
from servers import Server, ceiling, emulator  # noqa: E402
from wrkdrive import WrkResult, oauth_script, run_wrk, static_script  # noqa: E402

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
LIST_ROW = "list plans (bearer)"
PARTS = ("granian", "accesslog", "waitress", "virtual", "coldstart")


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

    def wrk(self, server: Server, name: str, script: str, duration: float | None = None) -> WrkResult:
        log(f"wrk {name} against {server.name}")
        result = run_wrk(server.base_url, script, self.work, name, duration=duration or self.args.duration,
                         connections=self.args.connections, threads=self.args.threads)
        if result.non2xx or result.socket_errors or result.timeouts:
            self.failed = True
            self.results.warnings.append(
                f"{name} on {server.name}: {result.non2xx} non-2xx, {result.socket_errors} socket errors, "
                f"{result.timeouts} timeouts; first bad answer: {result.first_bad or '—'}")
        return result

    def add(self, scenario: str, server: str, result: WrkResult, notes: str = "") -> HttpRow:
        row = HttpRow(scenario, server, result.rps, result.p50_ms, result.p99_ms, result.non2xx, result.requests,
                      notes)
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

    def rss_note(self, server: Server) -> tuple[str, str]:
        total, largest = server.rss()
        return f"{total / 1024:.0f} MB", f"tree total; largest process (the worker) {largest / 1024:.0f} MB"

    # -- scenarios ---------------------------------------------------------------------------------
    def ceiling_run(self, server_kind: str) -> None:
        srv = self.start(ceiling(self.work, threads=self.args.server_threads, server=server_kind))
        try:
            self.add(CEILING_ROW, server_kind, self.wrk(srv, f"ceiling-{server_kind}", static_script("GET", "/json")))
        finally:
            self.stop(srv)

    def emulator_http(self) -> None:
        """Rows (a)-(d) on the documented production configuration, then the 100,000-execution memory check."""
        a = self.args
        srv = self.start(emulator(self.work, threads=a.server_threads, name="emulator-granian"))
        try:
            base = srv.base_url
            self.results.other.append(("RSS idle (granian)", *self.rss_note(srv)))
            token = self.login(base)
            bearer = {"Authorization": f"Bearer {token}"}
            instance = self.execute(base, token)  # finishes (~1.7 s) while (a) and (b) run
            self.add(LIST_ROW, "granian", self.wrk(srv, "list", static_script("GET", LIST, bearer)))
            token_body = ('{"code":"%s","client_id":"' + CLIENT_ID + '","client_secret":"' + CLIENT_SECRET
                          + '","grant_type":"authorization_code"}')
            result = self.wrk(srv, "oauth", oauth_script(AUTHORIZE, TOKEN, token_body))
            pairs = result.extra.get("tokens", 0)
            self.add("authorize + token (pairs)", "granian", result,
                     f"**{pairs / result.seconds:,.0f} pairs/s**; req/s and latency over both requests")
            self.wait_finished(base, instance)
            out_path = f"{OUT_PARAMS}?processPlanId={PLAN}&planInstanceId={instance}"
            self.add("output params (GET, finished run)", "granian",
                     self.wrk(srv, "outparams", static_script("GET", out_path, bearer)))
            exec_headers = {**bearer, "Content-Type": "application/json"}
            exec_body = '{"processPlanId":"%s"}' % PLAN
            result = self.wrk(srv, "execute", static_script("POST", EXECUTE, exec_headers, exec_body))
            self.add("execute (POST, no callbackUrl)", "granian", result,
                     "each starts a real-clock run (~1.7 s, 3 nodes)")
            time.sleep(2.5)  # let the executed runs finish, so RSS is "after the load", not mid-load
            self.results.other.append(("RSS after the HTTP rows (granian)", *self.rss_note(srv)))
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
            label = LIST_ROW if quiet else "list plans (bearer), access log on"
            self.add(label, server_kind, result, "" if quiet else "log lines to a file")
            if server_kind == "waitress":
                self.results.other.append(("RSS after list plans (waitress)", *self.rss_note(srv)))
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
                               f"servers: 1 worker process, {a.server_threads} threads"
                               + ("; **--quick** (short rows, smaller counts)" if a.quick else ""))
        parts: list[tuple[str, str, Callable[[], None]]] = [
            ("granian", "ceiling on granian", lambda: self.ceiling_run("granian")),
            ("granian", "emulator on granian", self.emulator_http),
            ("accesslog", "emulator with access log", lambda: self.emulator_list_only("granian", quiet=False)),
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
        return self.results

    def _ratios(self) -> None:
        for server in ("granian", "waitress"):
            ceiling_row = self.results.row(CEILING_ROW, server)
            if not ceiling_row or not ceiling_row.rps:
                continue
            for row in self.results.http:
                if row.server == server and row is not ceiling_row and row.rps:
                    row.vs_ceiling = f"{row.rps / ceiling_row.rps:.0%}"
        ceiling_row, listed = self.results.row(CEILING_ROW, "granian"), self.results.row(LIST_ROW, "granian")
        if ceiling_row and listed and ceiling_row.rps and listed.rps:
            ratio = listed.rps / ceiling_row.rps
            self.results.targets.insert(0, ("list plans ≥ 50% of the ceiling (granian, same run)", f"{ratio:.0%}",
                                            "pass" if ratio >= 0.5 else "**FAIL**"))
            self.results.targets.insert(1, ("list plans p99 < 10 ms at 16 connections", f"{listed.p99_ms:.1f} ms",
                                            "pass" if listed.p99_ms < 10 else "**FAIL**"))


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
    parser.add_argument("--quick", action="store_true", help="short rows and small counts: under a minute")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default all: {','.join(PARTS)})")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown (with machine info) here")
    args = parser.parse_args(argv)
    args.only = {p.strip() for p in args.only.split(",") if p.strip()}
    if args.only - set(PARTS):
        parser.error(f"--only: unknown part(s) {sorted(args.only - set(PARTS))}; choose from {','.join(PARTS)}")
    quick = args.quick
    defaults = {"duration": 2.0 if quick else 10.0, "executions": 10_000 if quick else 100_000,
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
    text = markdown(results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        log(f"written to {args.out}")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
