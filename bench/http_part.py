"""The HTTP part of the benchmark: the ceilings, the emulator's API rows on each store and server, the peers,
the memory check, the checks that no accepted run was lost, and cold start."""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from pathlib import Path

import peers
from harness import Bench
from options import DEFAULT_CONFIG, Config
from report import CEILING_ROW, EXECUTE_ROW, LIST_ROW, LOGGED_LIST_ROW, OAUTH_ROW, PEER_ROW, RAW_ROW, log
from scenario import AUTHORIZE, EXECUTE, LIST, OUT_PARAMS, PLAN, TOKEN, TOKEN_BODY
from servers import Server, ceiling, emulator
from wrkdrive import WrkResult, ids_script, oauth_script, static_script

from mock_server.settings import Settings

OPEN_STATUSES = ("DEFAULT", "RUNNING", "PENDING")


class HttpPart:
    """The HTTP rows, measured with `bench`; remembers which runs each shared-state configuration answered for
    until its state file can be checked (after the server stopped)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self._pending_store_checks: dict[Config, set[str]] = {}

    def ceiling_run(self, server_kind: str, workers: int = 1, raw: bool = False) -> None:
        srv = self.bench.start(
            ceiling(
                self.bench.work, threads=self.bench.args.server_threads, server=server_kind, workers=workers, raw=raw
            )
        )
        label = server_kind + (f" ×{workers}" if workers != 1 else "")
        try:
            self.bench.add(
                RAW_ROW if raw else CEILING_ROW, label, self.bench.wrk(srv, srv.name, static_script("GET", "/json"))
            )
        finally:
            self.bench.stop(srv)

    def http_rows(self, srv: Server, config: Config, *, list_runs: bool) -> WrkResult:
        """The four API rows on one server (list, authorize+token, output params, execute), then the check
        that every execution it answered became a run that finished; returns the execute row's result."""
        base, label, slug = srv.base_url, config.label, config.key
        token = self.bench.login(base)
        bearer = {"Authorization": f"Bearer {token}"}
        instance = self.bench.execute(base, token)
        # Before the list row, not during it: with shared state every write of that run's steps makes each
        # reader catch up, and the rows measured the overlap (up to 2x apart between runs).
        self.bench.wait_finished(base, instance)
        self.bench.add(
            LIST_ROW,
            label,
            self.bench.wrk(srv, f"list-{slug}", static_script("GET", LIST, bearer)),
            baseline=config.baseline,
        )
        result = self.bench.wrk(srv, f"oauth-{slug}", oauth_script(AUTHORIZE, TOKEN, TOKEN_BODY))
        pairs = result.extra.get("tokens", 0)
        self.bench.add(
            OAUTH_ROW,
            label,
            result,
            f"**{pairs / result.seconds:,.0f} pairs/s**; req/s and latency over both requests",
            baseline=config.baseline,
        )
        out_path = f"{OUT_PARAMS}?processPlanId={PLAN}&planInstanceId={instance}"
        self.bench.add(
            "output params (GET, finished run)",
            label,
            self.bench.wrk(srv, f"outparams-{slug}", static_script("GET", out_path, bearer)),
            baseline=config.baseline,
        )
        exec_headers = {**bearer, "Content-Type": "application/json"}
        exec_body = f'{{"processPlanId":"{PLAN}"}}'
        ids_file = self.bench.work / f"execute-{slug}.ids"
        result = self.bench.wrk(
            srv,
            f"execute-{slug}",
            ids_script("POST", EXECUTE, exec_headers, exec_body, '"planInstanceId":%s*"([^"]+)"', ids_file),
        )
        self.bench.add(
            EXECUTE_ROW, label, result, "each starts a real-clock run (~1.7 s, 3 nodes)", baseline=config.baseline
        )
        self.check_runs(srv, config, result, ids_file, {instance}, list_runs=list_runs)
        return result

    def check_runs(
        self, srv: Server, config: Config, result: WrkResult, ids_file: Path, prior: set[str], *, list_runs: bool
    ) -> None:
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
            still = sum(
                len(self.bench.api("GET", base, f"/__admin/runs?status={s}", timeout=60)) for s in OPEN_STATUSES
            )
            if not still or time.monotonic() - ended > self.bench.args.drain_cap:
                break
            time.sleep(0.2)
        drained = time.monotonic() - ended
        if still:
            problems.append(f"{still:,} runs still not SUCCESS/FAIL {drained:.0f} s after the load")
        notes = [
            f"{ok:,} executes answered 2xx with {len(unique):,} distinct ids",
            f"no run unfinished {drained:.1f} s after the load" if not still else "",
        ]
        if list_runs:
            listed = {
                r["planInstanceId"]: r["status"] for r in self.bench.api("GET", base, "/__admin/runs", timeout=120)
            }
            expected = unique | prior
            keep = Settings().runs_keep
            unknown = set(listed) - expected
            unfinished = sum(1 for status in listed.values() if status not in ("SUCCESS", "FAIL"))
            # wrk stops with up to one request per connection on the wire: those runs started, but their
            # answers (and ids) never reached wrk. More unknown runs than that were started by nobody.
            in_flight = self.bench.args.connections
            if len(unknown) > in_flight:
                problems.append(
                    f"/__admin/runs lists {len(unknown):,} runs whose ids no answer carried "
                    f"(at most {in_flight} can be requests cut off when wrk stopped)"
                )
            if unfinished:
                problems.append(f"/__admin/runs lists {unfinished:,} unfinished runs")
            want = min(len(expected), keep - len(unknown))  # the newest runs are kept, the cut-off ones among them
            if len(listed) - len(unknown) != want:
                problems.append(
                    f"/__admin/runs lists {len(listed) - len(unknown):,} of the runs answered for, "
                    f"expected {want:,} (of {len(expected):,}; runs_keep {keep:,})"
                )
            if not problems:
                notes.append(
                    f"/__admin/runs lists all {len(listed) - len(unknown):,} answered for, finished"
                    + (f", + {len(unknown)} whose answers wrk cut off at its end" if unknown else "")
                )
        self._run_check(config, problems, notes)
        self._pending_store_checks[config] = unique | prior  # for check_state_file, once the server stopped

    def _run_check(self, config: Config, problems: list[str], notes: list[str]) -> None:
        verdict = "pass" if not problems else "**FAIL**"
        self.bench.results.other.append(
            (f"runs after the execute row ({config.label})", verdict, "; ".join(filter(None, problems + notes)))
        )
        if problems:
            self.bench.failed = True
            self.bench.results.warnings.append(f"{config.label}: " + "; ".join(problems))

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
            self.bench.results.warnings.append(f"{config.label}: state file not checked ({type(exc).__name__}: {exc})")
            return
        missing = len(ids - rows.keys())
        live = [json.loads(body)["status"] for key, body in rows.items() if key in ids and body]
        unfinished = sum(1 for status in live if status not in ("SUCCESS", "FAIL"))
        problems = []
        if missing and not purged:
            problems.append(f"{missing:,} runs answered for are missing from the state file")
        if unfinished:
            problems.append(f"{unfinished:,} runs unfinished in the state file")
        notes = [
            f"{len(ids) - missing:,} of {len(ids):,} runs in the file ({len(live):,} kept, "
            f"{len(ids) - missing - len(live):,} forgotten beyond runs_keep)"
            + (f"; deletion markers purged up to change {purged:,}, so missing ones are not judged" if purged else "")
        ]
        verdict = "pass" if not problems else "**FAIL**"
        self.bench.results.other.append(
            (f"state file after stop ({config.label})", verdict, "; ".join(problems + notes))
        )
        if problems:
            self.bench.failed = True
            self.bench.results.warnings.append(f"{config.label} state file: " + "; ".join(problems))

    def emulator_http(self) -> None:
        """(a) the documented default (1 worker, in memory): the API rows, then the 100,000-execution memory check."""
        a = self.bench.args
        srv = self.bench.start(emulator(self.bench.work, threads=a.server_threads, name="emulator-granian"))
        try:
            base = srv.base_url
            self.bench.results.other.append(("RSS idle (granian)", *self.bench.rss_note(srv)))
            # No full /__admin/runs list here: building 10,000 runs' JSON would weigh on the RSS read below.
            result = self.http_rows(srv, DEFAULT_CONFIG, list_runs=False)
            self._pending_store_checks.pop(DEFAULT_CONFIG, None)
            self.bench.results.other.append(("RSS after the HTTP rows (granian)", *self.bench.rss_note(srv)))
            token = self.bench.login(base)
            exec_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            exec_body = f'{{"processPlanId":"{PLAN}"}}'
            executed = 1 + result.requests
            executed += self._execute_until(srv, a.executions - executed, result.rps, exec_headers, exec_body)
            total, largest = srv.rss()
            self.bench.results.other.append(
                (
                    f"RSS after {executed:,} executions (granian)",
                    f"{total / 1024:.0f} MB",
                    f"tree total; worker {largest / 1024:.0f} MB; runs_keep "
                    f"{Settings().runs_keep:,} finished runs kept",
                )
            )
            if executed >= 100_000:
                ok = total / 1024 < 200
                self.bench.results.targets.append(
                    ("RSS after 100,000 executions < 200 MB", f"{total / 1024:.0f} MB", "pass" if ok else "**FAIL**")
                )
        finally:
            self.bench.stop(srv)

    def emulator_shared(self, config: Config) -> None:
        """(b), (c)…: the same API rows on `--workers N --state FILE`, a fresh state file each, then its checks."""
        a = self.bench.args
        state = self.bench.work / f"state-{config.key}.sqlite"
        srv = self.bench.start(
            emulator(
                self.bench.work,
                "--state",
                str(state),
                "--workers",
                str(config.workers),
                threads=a.server_threads,
                name=f"emulator-{config.key}",
            )
        )
        stopped = False
        try:
            self.bench.results.other.append((f"RSS idle ({config.label})", *self.bench.rss_note(srv, config.workers)))
            self.http_rows(srv, config, list_runs=True)
            self.bench.results.other.append(
                (f"RSS after the HTTP rows ({config.label})", *self.bench.rss_note(srv, config.workers))
            )
            self.bench.stop(srv)
            stopped = True
            self.check_state_file(config, state)
        finally:
            if not stopped:
                self.bench.stop(srv)

    def workers_part(self) -> None:
        """The shared-store configurations, each after a ceiling with its worker count unless one was measured."""
        for config in self.bench.args.configs:
            if not self.bench.results.row(CEILING_ROW, config.baseline):
                self.bench.attempt(
                    f"ceiling on granian ×{config.workers}",
                    lambda config=config: self.ceiling_run("granian", config.workers),
                )
            self.bench.attempt(f"emulator {config.label}", lambda config=config: self.emulator_shared(config))

    def _execute_until(self, srv: Server, remaining: int, rate: float, headers: dict[str, str], body: str) -> int:
        """More executions in wrk chunks sized from the measured rate, until `remaining` are done or time is up."""
        done, seconds, worst_p99, bad, chunk = 0, 0.0, 0.0, 0, 0
        deadline = time.monotonic() + self.bench.args.memory_cap
        script = static_script("POST", EXECUTE, headers, body)
        while done < remaining and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            duration = max(1.0, min(left, (remaining - done) / max(rate, 100.0) * 1.05))
            chunk += 1
            more = self.bench.wrk(srv, f"execute-memory-{chunk}", script, duration=duration)
            done, seconds, bad = done + more.requests, seconds + more.seconds, bad + more.non2xx
            worst_p99 = max(worst_p99, more.p99_ms)
            rate = more.rps or rate
        if done:
            time.sleep(2.5)  # let the last runs finish before reading RSS
            self.bench.results.other.append(
                (
                    "execute, sustained (memory check)",
                    f"{done / seconds:,.0f} req/s",
                    f"{done:,} more requests in {seconds:.1f} s ({chunk} wrk runs); worst p99 {worst_p99:.1f} ms; "
                    f"non-2xx {bad}",
                )
            )
        if done < remaining:
            self.bench.results.warnings.append(
                f"memory check: time cap {self.bench.args.memory_cap:g} s reached after "
                f"{done:,} of {remaining:,} more executions"
            )
        return done

    def emulator_list_only(self, server_kind: str, quiet: bool) -> None:
        name = f"emulator-{server_kind}" + ("" if quiet else "-accesslog")
        srv = self.bench.start(
            emulator(
                self.bench.work, threads=self.bench.args.server_threads, server=server_kind, quiet=quiet, name=name
            )
        )
        try:
            token = self.bench.login(srv.base_url)
            result = self.bench.wrk(
                srv, f"list-{name}", static_script("GET", LIST, {"Authorization": f"Bearer {token}"})
            )
            label = LIST_ROW if quiet else LOGGED_LIST_ROW
            self.bench.add(label, server_kind, result, "" if quiet else "log lines to a file")
            if server_kind == "waitress":
                self.bench.results.other.append(("RSS after list plans (waitress)", *self.bench.rss_note(srv)))
        finally:
            self.bench.stop(srv)

    def peers_part(self) -> None:
        """WireMock and Prism serving a canned list-plans envelope, measured with the same wrk row after a warm-up
        (a cold JVM measures its JIT compiler); compared with the emulator in _ratios."""
        reason = peers.install()
        if reason:
            self.bench.results.warnings.append(f"peers not measured: {reason}")
            return
        script = static_script("GET", LIST, peers.BEARER)
        for name, make in peers.PEERS.items():
            srv = make(self.bench.work, peers.DEFAULT_CACHE)
            self.bench.live.append(srv)
            log(f"starting {srv.name} on :{srv.port}")
            try:
                srv.start(timeout=peers.START_TIMEOUT)
                problem = peers.check(srv)
                if problem:  # a fast 401 or 404 is no figure
                    self.bench.failed = True
                    self.bench.results.warnings.append(f"{name} not measured, wrong answer: {problem}")
                    continue
                warm = self.bench.wrk(srv, f"{name}-warmup", script, duration=self.bench.args.peer_warmup)
                result = self.bench.wrk(srv, name, script)
                total, _ = srv.rss()
                self.bench.add(
                    PEER_ROW,
                    name,
                    result,
                    f"{peers.describe(name)}; after {self.bench.args.peer_warmup:g} s of "
                    f"warm-up at {warm.rps:,.0f} req/s; RSS {total / 1024:,.0f} MB; cold start "
                    f"{srv.cold_start_s:.1f} s",
                )
            finally:
                self.bench.stop(srv)

    def cold_start(self) -> None:
        times = []
        for i in range(3):
            srv = self.bench.start(
                emulator(self.bench.work, threads=self.bench.args.server_threads, name=f"coldstart-{i}")
            )
            times.append(srv.cold_start_s or 0.0)
            self.bench.stop(srv)
        median = statistics.median(times)
        self.bench.results.other.append(
            (
                "cold start to first 200 on /__admin/clock",
                f"{median:.2f} s",
                "median of 3 (" + ", ".join(f"{t:.2f}" for t in times) + " s); "
                "spawn of `python -m mock_server serve --quiet` (granian)",
            )
        )
        self.bench.results.targets.append(("cold start < 1 s", f"{median:.2f} s", "pass" if median < 1 else "**FAIL**"))
