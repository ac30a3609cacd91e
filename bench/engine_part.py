"""The engine part of the benchmark: callbacks delivered per second, and a virtual day of minute-scenes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fast_receiver import FastReceiver
from report import log
from scenario import PLAN, SCENE
from servers import emulator

if TYPE_CHECKING:
    from harness import Bench


def virtual(bench: Bench) -> None:
    """Callbacks per second, then the virtual day of minute-scenes, on one `--clock virtual` server."""
    a = bench.args
    srv = bench.start(emulator(bench.work, "--clock", "virtual", threads=a.server_threads, name="emulator-virtual"))
    try:
        with FastReceiver() as receiver:
            bench.attempt("callbacks", lambda: _callbacks(bench, srv.base_url, receiver))
            bench.attempt("virtual day", lambda: _virtual_day(bench, srv.base_url, receiver))
    finally:
        bench.stop(srv)


def _acked(bench: Bench, base: str) -> tuple[int, int, int]:
    ledger = bench.api("GET", base, "/__admin/callbacks")
    states = [d["state"] for d in ledger]
    return states.count("acked"), states.count("gave_up"), len(states)


def _callbacks(bench: Bench, base: str, receiver: FastReceiver) -> None:
    n = bench.args.callback_runs
    token = bench.login(base)
    log(f"executing {n} runs with a callbackUrl")
    for _ in range(n):
        bench.execute(base, token, receiver.url)
    deadline = time.monotonic() + 60
    while _acked(bench, base)[0] < n and time.monotonic() < deadline:  # the DEFAULT callbacks, sent promptly
        time.sleep(0.1)
    before = _acked(bench, base)[0]
    expected = 3 * n  # DEFAULT, RUNNING, SUCCESS for plan acf42dd3
    started = time.perf_counter()
    bench.api("POST", base, "/__admin/clock/advance", json={"seconds": 10}, timeout=300)
    advanced = time.perf_counter() - started
    acked, gave_up, total = _acked(bench, base)
    while acked + gave_up < expected and time.perf_counter() - started < 120:
        time.sleep(0.05)
        acked, gave_up, total = _acked(bench, base)
    elapsed = time.perf_counter() - started
    rate = (acked - before) / elapsed if elapsed else 0.0
    bench.results.other.append(
        (
            "callbacks delivered per second",
            f"{rate:,.0f} /s",
            f"{acked - before:,} RUNNING+SUCCESS deliveries acked {elapsed:.2f} s after advance of 10 s "
            f"(advance call {advanced:.2f} s); {n} runs, {acked:,}/{expected:,} acked in all, {gave_up} gave up, "
            f"receiver got {receiver.total:,}",
        )
    )
    if acked != expected or gave_up:
        bench.failed = True
        bench.results.warnings.append(f"callbacks: {acked} of {expected} acked, {gave_up} gave up (ledger has {total})")


def _virtual_day(bench: Bench, base: str, receiver: FastReceiver) -> None:
    a = bench.args
    bench.api("POST", base, "/__admin/reset")
    receiver.clear()
    token = bench.login(base)
    log(f"saving {a.scenes} one-minute cycle scenes")
    started = time.perf_counter()
    for i in range(a.scenes):
        bench.api(
            "POST",
            base,
            SCENE,
            token,
            data={
                "processPlanId": PLAN,
                "callbackUrl": receiver.url,
                "dimension": "minutes",
                "intervals": "1",
                "executeStrategy": "cycle",
                "sceneName": f"bench-{i}",
            },
        )
    saved = time.perf_counter() - started
    log(f"advancing the virtual clock {a.day_seconds:g} s")
    started = time.perf_counter()
    bench.api("POST", base, "/__admin/clock/advance", json={"seconds": a.day_seconds}, timeout=900)
    elapsed = time.perf_counter() - started
    scenes = bench.api("GET", base, "/__admin/scenes")
    fired = sum(s["firedCount"] for s in scenes)
    coalesced = sum(s["coalescedCount"] for s in scenes)
    due = a.scenes * int(a.day_seconds // 60)
    span = "a virtual day" if a.day_seconds == 86400 else f"{a.day_seconds:g} virtual s"
    bench.results.other.append(
        (
            f"advance {span}, {a.scenes:,} one-minute cycle scenes",
            f"{elapsed:.1f} s",
            f"{fired:,} firings ran (runs started), {coalesced:,} coalesced (of {due:,} due; D22 budgets); "
            f"{receiver.total:,} callbacks delivered to the receiver; saving the scenes took "
            f"{saved:.1f} s",
        )
    )
    if fired + coalesced != due:
        bench.results.warnings.append(f"virtual day: fired {fired} + coalesced {coalesced} != due {due}")
    if a.day_seconds == 86400 and a.scenes == 1000:
        bench.results.targets.append(
            ("virtual day of 1,000 minute-scenes < 30 s", f"{elapsed:.1f} s", "pass" if elapsed < 30 else "**FAIL**")
        )
