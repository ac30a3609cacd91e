"""The benchmark's Markdown: machine and version header, result tables, target checks."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata

# The HTTP rows other parts look up by name.
CEILING_ROW = "ceiling: bare Flask GET /json"
RAW_ROW = "ceiling: raw WSGI GET /json"
LIST_ROW = "list plans (bearer)"
LOGGED_LIST_ROW = "list plans (bearer), access log on"
OAUTH_ROW = "authorize + token (pairs)"  # its req/s counts both requests of a pair
EXECUTE_ROW = "execute (POST, no callbackUrl)"
PEER_ROW = "peer: canned list plans (bearer)"

PACKAGES = ("dpa-mock", "granian", "waitress", "flask", "werkzeug", "pyjwt", "requests")


@dataclass
class HttpRow:
    scenario: str
    server: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    non2xx: int | None = None
    requests: int | None = None
    notes: str = ""
    vs_ceiling: str = ""
    baseline: str = ""  # the Server label of the ceiling row this one is compared with (default: its own)
    cpu: str = ""  # cores busy during the row: server (per process if several) + wrk


@dataclass
class Results:
    params: str = ""
    machine: str = ""  # header(), taken when the run starts
    http: list[HttpRow] = field(default_factory=list)
    other: list[tuple[str, str, str]] = field(default_factory=list)  # measurement, result, notes
    targets: list[tuple[str, str, str]] = field(default_factory=list)  # target, measured, verdict
    warnings: list[str] = field(default_factory=list)
    configs: list[tuple[str, str]] = field(default_factory=list)  # (Server label, its ceiling's) side by side

    def row(self, scenario: str, server: str) -> HttpRow | None:
        return next((r for r in self.http if r.scenario == scenario and r.server == server), None)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (
        (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip() if (out.stdout or out.stderr) else "?"
    )


def header() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    packages = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return "\n".join(
        [
            f"- Date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- Machine: `{' '.join(os.uname())}`",
            f"- CPU: {_cpu_model()} × {os.cpu_count()} logical CPUs; load average at start {load}",
            f"- Python {platform.python_version()}; {packages}; {_wrk_version()}",
        ]
    )


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


SIDE_BY_SIDE = (
    ("list plans (bearer)", "list plans"),
    (OAUTH_ROW, "authorize + token"),
    (EXECUTE_ROW, "execute"),
    ("output params (GET, finished run)", "out params"),
)


def _configs_table(results: Results) -> list[str]:
    """One line per store/worker configuration: req/s (share of the same-worker ceiling), p50 / p99."""
    configs = [
        (label, base)
        for label, base in results.configs
        if any(results.row(scenario, label) for scenario, _ in SIDE_BY_SIDE)
    ]
    if not configs:
        return []
    out = [
        "",
        "## Store and workers, side by side (same run)",
        "",
        "Each cell: req/s (share of the bare-Flask ceiling with the same worker count) · p50 / p99 ms.",
        "",
        "| Server | ceiling req/s | " + " | ".join(name for _, name in SIDE_BY_SIDE) + " |",
        "|---|---:|" + "---:|" * len(SIDE_BY_SIDE),
    ]
    for label, base in configs:
        c = results.row("ceiling: bare Flask GET /json", base)
        cells = []
        for scenario, _ in SIDE_BY_SIDE:
            r = results.row(scenario, label)
            if r is None or r.rps is None:
                cells.append("—")
                continue
            share = f" ({r.rps / c.rps:.0%})" if c and c.rps else ""
            cells.append(f"{_num(r.rps)}{share} · {_ms(r.p50_ms)} / {_ms(r.p99_ms)}")
        out.append(f"| {label} | {_num(c.rps) if c else '—'} | " + " | ".join(cells) + " |")
    return out


def markdown(results: Results) -> str:
    out = ["# dpa-mock benchmark", "", results.machine or header(), ""]
    out += [f"Parameters: {results.params}"]
    if results.http:
        out += [
            "",
            "## HTTP (wrk on 127.0.0.1)",
            "",
            "| Scenario | Server | req/s | p50 ms | p99 ms | non-2xx | vs ceiling | CPU server + wrk | Notes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
    for r in results.http:
        out.append(
            f"| {r.scenario} | {r.server} | {_num(r.rps)} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | "
            f"{'—' if r.non2xx is None else r.non2xx} | {r.vs_ceiling} | {r.cpu} | {r.notes} |"
        )
    out += _configs_table(results)
    choice = [
        (server, results.row("ceiling: bare Flask GET /json", server), results.row("list plans (bearer)", server))
        for server in ("granian", "waitress")
    ]
    if any(c and e for _, c, e in choice):
        out += [
            "",
            "## Server choice (same run, same threads)",
            "",
            "| Server | ceiling req/s | list plans req/s | list / ceiling | list p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for server, c, e in choice:
            if c and e and c.rps and e.rps:
                out.append(f"| {server} | {_num(c.rps)} | {_num(e.rps)} | {e.rps / c.rps:.0%} | {_ms(e.p99_ms)} |")
    if results.other:
        out += ["", "## Engine, start-up and memory", "", "| Measurement | Result | Notes |", "|---|---:|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in results.other]
    if results.targets:
        out += ["", "## Targets (issues 5 and 14)", "", "| Target | Measured | Verdict |", "|---|---:|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in results.targets]
    if results.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in results.warnings]
    return "\n".join(out) + "\n"
