"""One-command benchmark: dpa-mock vs bare-Flask and raw-WSGI ceilings and the peers, driven by wrk; prints Markdown."""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, when run as bench/run.py

import engine_part
import integrator_flow
from harness import Bench
from http_part import HttpPart
from options import DEFAULT_CONFIG, parse_args
from report import Results, header, log, markdown
from targets import add_ratios_and_targets


def run(bench: Bench) -> Results:
    """Every part asked for (--only), in order; then the ratios and targets that compare rows."""
    a = bench.args
    bench.results.machine = header()
    bench.results.params = (
        f"wrk {a.threads} threads, {a.connections} connections, {a.duration:g} s per row; "
        f"servers: 1 worker process (×N: N processes), {a.server_threads} threads each"
        + (
            f"; shared-store configurations: {','.join(c.key for c in a.configs)}"
            if "workers" in a.only and a.configs
            else ""
        )
        + ("; **--quick** (short rows, smaller counts)" if a.quick else "")
    )
    http = HttpPart(bench)
    parts: list[tuple[str, str, Callable[[], None]]] = [
        ("granian", "ceiling on granian", lambda: http.ceiling_run("granian")),
        ("granian", "emulator on granian", http.emulator_http),
        ("workers", "shared state and workers", http.workers_part),
        ("granian", "raw WSGI ceiling on granian", lambda: http.ceiling_run("granian", raw=True)),
        ("accesslog", "emulator with access log", lambda: http.emulator_list_only("granian", quiet=False)),
        ("peers", "peers (WireMock, Prism)", http.peers_part),
        ("waitress", "ceiling on waitress", lambda: http.ceiling_run("waitress")),
        ("waitress", "emulator on waitress", lambda: http.emulator_list_only("waitress", quiet=True)),
        ("virtual", "virtual clock", lambda: engine_part.virtual(bench)),
        ("integrator", "integrator's full-flow test", lambda: integrator_flow.part(bench)),
        ("coldstart", "cold start", http.cold_start),
    ]
    try:
        for part, label, fn in parts:
            if part in a.only:
                bench.attempt(label, fn)
    finally:
        bench.stop_all()
    add_ratios_and_targets(bench.results, [DEFAULT_CONFIG] + list(a.configs if "workers" in a.only else []))
    if bench.noisy:
        bench.results.warnings.append(
            "measured while other processes kept the machine busy (their cores in brackets; distrust these "
            "rows and their ratios): " + "; ".join(bench.noisy)
        )
    configs = [DEFAULT_CONFIG] + list(a.configs if "workers" in a.only else [])
    bench.results.configs = [(c.label, c.baseline) for c in configs]
    return bench.results


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, through every finally that stops a server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dpa-bench-") as work:
        bench = Bench(args, Path(work))
        try:
            results = run(bench)
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
