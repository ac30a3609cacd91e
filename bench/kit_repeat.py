"""Run the whole contract kit over HTTP against `dpa-mock serve` N times with N seeds; print a verdict table."""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/kit_repeat.py` from anywhere

from mock_server.testing.server import ServerProcess
from tests.kit_selftest.harness import KitRun, leaked_secrets, run_kit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="seed of the seeds (default: time-based, printed)")
    parser.add_argument("--clock", choices=("virtual", "real"), default="virtual")
    parser.add_argument(
        "--fresh-server",
        action="store_true",
        help="a new dpa-mock per run (default: one server for all runs, as a staging host would be)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep each run's junit/report/log under this dir")
    parser.add_argument("selection", nargs="*", default=["contract_tests"], help="kit paths (default: all)")
    args = parser.parse_args(argv)

    master = args.seed if args.seed is not None else int(time.time())
    seeds = random.Random(master).sample(range(1, 2**31), args.runs)
    workroot = args.keep or Path(tempfile.mkdtemp(prefix="kit-repeat-"))
    workroot.mkdir(parents=True, exist_ok=True)
    print(
        f"kit_repeat: {args.runs} runs of {' '.join(args.selection)}, clock={args.clock}, "
        f"{'fresh server per run' if args.fresh_server else 'one server'}, seed of seeds {master}, "
        f"files in {workroot}",
        flush=True,
    )
    print(
        "| run | seed | verdict | passed | failed | skipped | violations | leniencies | seconds |\n"
        "|---|---|---|---|---|---|---|---|---|",
        flush=True,
    )

    server: ServerProcess | None = None
    rows: list[tuple[int, KitRun, bool]] = []
    started = time.monotonic()
    try:
        for i, seed in enumerate(seeds, 1):
            if server is None or args.fresh_server:
                if server is not None:
                    server.stop()
                server = ServerProcess("--clock", args.clock, log=workroot / f"dpa-mock-{i}.log").start()
            workdir = workroot / f"run-{i:02d}-{seed}"
            run = run_kit(
                server.base_url,
                args.selection,
                workdir,
                f"--hypothesis-seed={seed}",
                "--report-json",
                str(workdir / "report.json"),
            )
            try:
                verdicts = json.loads((workdir / "report.json").read_text(encoding="utf-8"))["summary"]
            except (OSError, ValueError, KeyError):
                verdicts = {"violations": "?", "leniencies": "?"}
            outcomes = [c.outcome for c in run.cases]
            leaks = leaked_secrets(run.stdout, run.stderr, run.report, run.junit)
            ok = run.returncode == 0 and not run.failed() and bool(run.cases) and not leaks
            rows.append((seed, run, ok))
            verdict = "pass" if ok else ("FAIL (secret leaked)" if leaks else f"FAIL (exit {run.returncode})")
            print(
                f"| {i} | {seed} | {verdict} | {outcomes.count('passed')} | "
                f"{outcomes.count('failed') + outcomes.count('error')} | {outcomes.count('skipped')} | "
                f"{verdicts['violations']} | {verdicts['leniencies']} | {run.seconds:.1f} |",
                flush=True,
            )
            for case in run.failed():
                first = (case.message.strip().splitlines() or [""])[0][:150]
                print(f"|   | | {case.classname}::{case.name}: {first} | | | | |", flush=True)
    finally:
        if server is not None:
            server.stop()
    bad = [seed for seed, _, ok in rows if not ok]
    times = sorted(run.seconds for _, run, _ in rows)
    print(
        f"\n{len(rows) - len(bad)}/{len(rows)} passed; per run min {times[0]:.1f}s, median "
        f"{times[len(times) // 2]:.1f}s, max {times[-1]:.1f}s; total {time.monotonic() - started:.0f}s"
        + (f"; failing seeds: {bad}" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
