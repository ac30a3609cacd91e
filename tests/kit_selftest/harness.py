"""Run a broken server and the contract kit as subprocesses, and read the kit's JUnit XML verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mock_server.testing.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SELFTEST_PROFILE = "dpa-selftest"  # registered in the kit's process by tests/kit_selftest/kit_profile.py
QUICK_PROFILE = "dpa-selftest-quick"  # the same, with half the examples (faithful variants)
CLIENT_ID = "JhYhK/XcFKuVlpVijwLCkw=="
CLIENT_SECRET = "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="
# Everything the kit may do against the emulator: writes on three plans (success, pending, failure), scenes,
# and its own callback receiver on a free loopback port.
KIT_OPTIONS = (
    "--client-id",
    CLIENT_ID,
    "--client-secret",
    CLIENT_SECRET,
    "--allow-writes",
    "--plan-id",
    "acf42dd3",
    "--plan-id",
    "d4a8e6f1",
    "--plan-id",
    "c3d9f4e5",
    "--allow-scenes",
    "--callback-listen",
    "127.0.0.1:0",
    "--callback-public-url",
    "auto",
)


class BrokenServer(ServerProcess):
    """`with BrokenServer("code-reuse") as srv:` serves `python -m tests.kit_selftest.broken` on a free port."""

    def __init__(self, defect: str, log: Path | None = None) -> None:
        super().__init__(log=log, cwd=ROOT, command=[sys.executable, "-m", "tests.kit_selftest.broken", defect])
        self.defect = defect


@dataclass
class Case:
    """One JUnit testcase: where it lives and how it ended."""

    classname: str
    name: str
    file: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""

    @property
    def module(self) -> str:
        """`test_envelope.py`, from the file attribute or else the dotted classname."""
        if self.file:
            return Path(self.file).name
        parts = (self.classname or self.name).split(".")  # a collection error names the module in `name`
        mods = [p for p in parts if p.startswith("test_")]
        return (mods[0] if mods else parts[-1]) + ".py"


@dataclass
class KitRun:
    returncode: int
    stdout: str
    stderr: str
    report: str
    junit: str
    cases: list[Case] = field(default_factory=list)
    seconds: float = 0.0
    workdir: Path | None = None  # where the run wrote its JUnit, report and any --report-json

    def in_module(self, module: str) -> list[Case]:
        return [c for c in self.cases if c.module == module]

    def failed(self, module: str | None = None) -> list[Case]:
        return [
            c for c in (self.cases if module is None else self.in_module(module)) if c.outcome in ("failed", "error")
        ]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for c in self.cases:
            counts[c.outcome] = counts.get(c.outcome, 0) + 1
        failures = "\n".join(f"  {c.outcome}: {c.classname}::{c.name}: {c.message[:300]}" for c in self.failed())
        return (
            f"exit {self.returncode}, {counts}, {self.seconds:.1f}s\n{failures}\n--- stdout tail ---\n"
            f"{self.stdout[-3000:]}\n--- stderr tail ---\n{self.stderr[-1500:]}"
        )


def parse_junit(path: Path) -> list[Case]:
    if not path.exists():
        return []
    cases: list[Case] = []
    for node in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            child = node.find(kind)
            if child is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                message = (child.get("message") or "") + "\n" + (child.text or "")
                break
        cases.append(Case(node.get("classname", ""), node.get("name", ""), node.get("file", ""), outcome, message))
    return cases


def kit_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without the outer run's pytest options or DPA_* kit settings (the profile excepted)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("DPA_") and k != "DPA_HYPOTHESIS_PROFILE")
        and k not in ("PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")
    }
    return {**env, **(extra or {})}


def run_kit(
    base_url: str,
    selection: Sequence[str],
    workdir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
) -> KitRun:
    """`pytest <selection> --base-url …` with the full options; `selection` is paths or node ids under ROOT."""
    workdir.mkdir(parents=True, exist_ok=True)
    junit, report = workdir / "junit.xml", workdir / "report.md"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *selection,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:anyio",  # as `dpa-mock verify` runs the kit (contract_tests/cli.py)
        "--continue-on-collection-errors",  # the same
        "--base-url",
        base_url,
        *KIT_OPTIONS,
        "--junitxml",
        str(junit),
        "--report",
        str(report),
        *extra,
    ]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=kit_env(env), capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    return KitRun(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        report.read_text(encoding="utf-8") if report.exists() else "",
        junit.read_text(encoding="utf-8") if junit.exists() else "",
        parse_junit(junit),
        seconds,
        workdir,
    )


def leaked_secrets(*texts: str) -> list[str]:
    """What of the client secret or a JWT (`eyJ…`) appears in the given texts."""
    found = []
    for text in texts:
        if CLIENT_SECRET in text:
            found.append("client_secret")
        index = text.find("eyJ")
        if index >= 0:
            found.append("JWT-like text: " + text[max(0, index - 60) : index + 40].replace("\n", " "))
    return found
