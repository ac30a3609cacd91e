"""What an integrator's full-flow test costs: pytest with both plugin fixtures, timed per test (setup+call+teardown).

Each generated test does what docs/integrators.md's first test does: a token, execute with the receiver's
URL, advance the virtual clock, wait for the SUCCESS callback, assert the receiver's three deliveries. The
first test also starts the in-process emulator and is left out of the figures. Run alone:
`.venv/bin/python bench/integrator_flow.py --tests 100`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness import Bench

ROOT = Path(__file__).resolve().parents[1]

TEST_FILE = """
import pytest
import requests

EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3"


@pytest.mark.parametrize("n", range({tests}))
def test_full_flow(dpa_platform, callback_receiver, n):
    response = requests.post(dpa_platform.base_url + EXECUTE, headers=dpa_platform.headers(),
                             json={{"processPlanId": "acf42dd3", "callbackUrl": callback_receiver.url}})
    instance = response.json()["data"][0]["planInstanceId"]
    dpa_platform.advance(seconds=5)
    dpa_platform.wait_for_callback(instance, "SUCCESS")
    statuses = [d.json["status"] for d in callback_receiver.for_instance(instance)]
    assert statuses == ["DEFAULT", "RUNNING", "SUCCESS"]
"""

# Records each phase's duration as pytest measured it, for the parent process to read.
CONFTEST = """
import collections, json, os

_phases = collections.defaultdict(dict)


def pytest_runtest_logreport(report):
    _phases[report.nodeid][report.when] = report.duration


def pytest_sessionfinish(session):
    with open(os.environ["DPA_FLOW_OUT"], "w") as out:
        json.dump(list(_phases.values()), out)
"""


@dataclass
class FlowCost:
    tests: int
    median_ms: float
    p90_ms: float
    setup_ms: float
    call_ms: float
    teardown_ms: float
    passed: bool

    def describe(self) -> str:
        return (
            f"median of {self.tests} tests (the first, which starts the emulator, left out): "
            f"setup {self.setup_ms:.1f} + call {self.call_ms:.1f} + teardown {self.teardown_ms:.1f} ms; "
            f"p90 {self.p90_ms:.1f} ms"
        )


def measure(tests: int = 100) -> FlowCost:
    """Run the generated suite in a fresh pytest process; per-test medians in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="dpa-flow-") as work:
        folder = Path(work)
        (folder / "test_flow.py").write_text(TEST_FILE.format(tests=tests + 1), encoding="utf-8")
        (folder / "conftest.py").write_text(CONFTEST, encoding="utf-8")
        out = folder / "phases.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                work,
                str(folder / "test_flow.py"),
            ],
            cwd=work,
            capture_output=True,
            text=True,
            env={**_env(), "DPA_FLOW_OUT": str(out)},
            timeout=300,
        )
        phases = json.loads(out.read_text(encoding="utf-8"))[1:]
    totals = sorted(sum(p.values()) * 1000 for p in phases)

    def median(when: str) -> float:
        return statistics.median(p.get(when, 0.0) for p in phases) * 1000

    return FlowCost(
        len(phases),
        statistics.median(totals),
        totals[int(len(totals) * 0.9) - 1],
        median("setup"),
        median("call"),
        median("teardown"),
        done.returncode == 0,
    )


def part(bench: Bench) -> None:
    """The `integrator` part of make bench: the row, and the target of issue 14 (< 20 ms per test)."""
    bench.wait_quiet()  # pytest and the emulator share the machine with whatever else runs
    cost = measure(30 if bench.args.quick else 200)
    bench.results.other.append(
        ("integrator's full-flow test (dpa_platform + callback_receiver)", f"{cost.median_ms:.1f} ms", cost.describe())
    )
    bench.results.targets.append(
        (
            "integrator's full-flow test < 20 ms per test",
            f"{cost.median_ms:.1f} ms",
            "pass" if cost.median_ms < 20 and cost.passed else "**FAIL**",
        )
    )
    if not cost.passed:
        bench.failed = True
        bench.results.warnings.append("integrator flow: the generated tests failed")


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100)
    cost = measure(parser.parse_args().tests)
    print(f"{cost.median_ms:.1f} ms per test — {cost.describe()}{'' if cost.passed else ' — TESTS FAILED'}")
    return 0 if cost.passed else 1


if __name__ == "__main__":
    sys.exit(main())
