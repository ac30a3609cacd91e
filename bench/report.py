"""The benchmark's Markdown: machine and version header, result tables, target checks."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata

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


@dataclass
class Results:
    params: str = ""
    machine: str = ""  # header(), taken when the run starts
    http: list[HttpRow] = field(default_factory=list)
    other: list[tuple[str, str, str]] = field(default_factory=list)  # measurement, result, notes
    targets: list[tuple[str, str, str]] = field(default_factory=list)  # target, measured, verdict
    warnings: list[str] = field(default_factory=list)

    def row(self, scenario: str, server: str) -> HttpRow | None:
        return next((r for r in self.http if r.scenario == scenario and r.server == server), None)


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
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
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip() if (out.stdout or out.stderr) else "?"


def header() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    packages = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return "\n".join([
        f"- Date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: `{' '.join(os.uname())}`",
        f"- CPU: {_cpu_model()} × {os.cpu_count()} logical CPUs; load average at start {load}",
        f"- Python {platform.python_version()}; {packages}; {_wrk_version()}",
    ])


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def markdown(results: Results) -> str:
    out = ["# dpa-mock benchmark", "", results.machine or header(), ""]
    out += [f"Parameters: {results.params}"]
    if results.http:
        out += ["", "## HTTP (wrk on 127.0.0.1)", "",
                "| Scenario | Server | req/s | p50 ms | p99 ms | non-2xx | vs ceiling | Notes |",
                "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results.http:
        out.append(f"| {r.scenario} | {r.server} | {_num(r.rps)} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | "
                   f"{'—' if r.non2xx is None else r.non2xx} | {r.vs_ceiling} | {r.notes} |")
    choice = [(server, results.row("ceiling: bare Flask GET /json", server),
               results.row("list plans (bearer)", server)) for server in ("granian", "waitress")]
    if any(c and e for _, c, e in choice):
        out += ["", "## Server choice (same run, same threads)", "",
                "| Server | ceiling req/s | list plans req/s | list / ceiling | list p99 ms |",
                "|---|---:|---:|---:|---:|"]
        for server, c, e in choice:
            if c and e and c.rps and e.rps:
                out.append(f"| {server} | {_num(c.rps)} | {_num(e.rps)} | {e.rps / c.rps:.0%} | {_ms(e.p99_ms)} |")
    if results.other:
        out += ["", "## Engine, start-up and memory", "", "| Measurement | Result | Notes |", "|---|---:|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in results.other]
    if results.targets:
        out += ["", "## Targets (issue 5)", "", "| Target | Measured | Verdict |", "|---|---:|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in results.targets]
    if results.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in results.warnings]
    return "\n".join(out) + "\n"
