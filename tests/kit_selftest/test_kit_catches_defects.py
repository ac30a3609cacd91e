"""The contract kit fails, in the module meant to catch it, against each deliberately broken server."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.kit_selftest.broken import DEFECTS
from tests.kit_selftest.harness import SELFTEST_PROFILE, BrokenServer, KitRun, leaked_secrets, run_kit

# The kit module expected to catch each defect (agreed with the kit's author); only it is run, to keep time down.
CATCHERS: dict[str, str] = {
    "missing-envelope-field": "test_envelope.py",
    "wrong-field-type": "test_plans.py",
    "success-code-not-200": "test_envelope.py",
    "ignores-token": "test_auth.py",
    "code-reuse": "test_oauth.py",
    "500-on-input": "test_schema.py",
    "validation-as-success": "test_validation.py",
    "callbacks-never-retried": "test_callbacks.py",
    "callbacks-retried-too-much": "test_callbacks.py",
    "illegal-callback-status": "test_callbacks.py",
    "out-params-missing-nodename": "test_runs.py",
    "double-slash-not-served": "test_paths.py",
    "callback-no-answer-acknowledged": "test_callbacks.py",
    "callback-plan-fixed": "test_callbacks.py",
    "callback-text-plain": "test_callbacks.py",
    "authorize-not-envelope": "test_oauth.py",
}
# Defects that are leniencies (the server accepts what the document forbids): reported, and fatal under --strict.
LENIENCIES: dict[str, str] = {"validation-as-success": "documented-required field missing"}
KIT = Path("contract_tests")
# A fixed seed keeps the verdicts reproducible; KIT_SELFTEST_SEED=random lets the kit draw one per run.
SEED = os.environ.get("KIT_SELFTEST_SEED", "20240601")

pytestmark = pytest.mark.slow


def _run(defect: str, modules: list[str], workdir: Path, *extra: str) -> KitRun:
    with BrokenServer(defect, log=workdir.with_suffix(".server.log")) as server:
        # The kit's default profile (as CI runs it) minus shrinking: same examples, so the same catches.
        seed = [] if SEED == "random" else [f"--hypothesis-seed={SEED}"]
        return run_kit(
            server.base_url,
            [str(KIT / m) for m in modules],
            workdir,
            *seed,
            # These servers run on the emulator's virtual clock, driven by the kit: their retries arrive within
            # the kit's advance, so the real-time grace for a target's own retry timer (5 s per expected retry,
            # capped by --wait-seconds) is pure waiting here — 30 s for callbacks-never-retried alone.
            "--wait-seconds",
            "1",
            *extra,
            "--report-json",
            str(workdir / "report.json"),
            "-p",
            "tests.kit_selftest.kit_profile",
            env={"DPA_HYPOTHESIS_PROFILE": SELFTEST_PROFILE},
        )


def _json(run: KitRun) -> dict[str, Any]:
    path = (run.workdir or Path(".")) / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# The leak check's modules: with every success code wrong, every token response fails validation, and the failure
# messages of the schema, OAuth and envelope checks then quote token bodies, which the kit must redact everywhere.
LEAK_MODULES = ["test_schema.py", "test_oauth.py", "test_envelope.py"]


Job = tuple[str, list[str], tuple[str, ...]]  # server, kit modules, extra options


def _jobs(defects: set[str], leaks: bool) -> dict[str, Job]:
    """Run name -> job: the healthy control always, then what the selected tests want."""
    jobs: dict[str, Job] = {"healthy": ("healthy", sorted(set(CATCHERS.values())), ())}
    if leaks:
        jobs["leaks"] = ("success-code-not-200", LEAK_MODULES, ())
    for defect in sorted(defects):
        if defect in LENIENCIES:
            jobs[f"{defect}-lenient"] = (defect, [CATCHERS[defect]], ())
            jobs[defect] = (defect, [CATCHERS[defect]], ("--dpa-strict",))
        else:
            jobs[defect] = (defect, [CATCHERS[defect]], ())
    return jobs


@pytest.fixture(scope="module")
def kit_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    """Every selected test's kit run, three at a time: most of a run is waiting (server and kit start-up, callback
    retries), so one after the other they held a worker 100 s; this file stays on one worker (conftest.py)."""
    defects: set[str] = set()
    leaks = False
    for item in request.session.items:
        if getattr(item, "module", None) is not request.module:
            continue
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "defect" in callspec.params:
            defects.add(callspec.params["defect"])
        leaks = leaks or item.name == "test_secrets_stay_out_of_failure_output"
    root = tmp_path_factory.mktemp("kit")
    jobs = _jobs(defects, leaks)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(_run, server, modules, root / name, *extra)
            for name, (server, modules, extra) in jobs.items()
        }
        runs = {name: future.result() for name, future in futures.items()}
    return runs


@pytest.fixture(scope="module")
def healthy_run(kit_runs: dict[str, KitRun]) -> KitRun:
    """Every catching module once against the healthy emulator: the control for every defect below."""
    return kit_runs["healthy"]


def test_the_catching_modules_pass_against_the_healthy_server(healthy_run: KitRun) -> None:
    assert healthy_run.returncode == 0, healthy_run.summary()
    for module in sorted(set(CATCHERS.values())):
        ran = [c for c in healthy_run.in_module(module) if c.outcome == "passed"]
        assert ran, f"{module}: no test passed against the healthy server\n{healthy_run.summary()}"
    assert not leaked_secrets(healthy_run.stdout, healthy_run.stderr, healthy_run.report, healthy_run.junit)


def test_every_defect_has_a_catcher() -> None:
    assert set(CATCHERS) == set(DEFECTS) - {"healthy"}


@pytest.mark.parametrize("defect", sorted(CATCHERS))
def test_kit_catches_defect(defect: str, healthy_run: KitRun, kit_runs: dict[str, KitRun]) -> None:
    module = CATCHERS[defect]
    healthy_failures = healthy_run.failed(module)
    assert not healthy_failures and healthy_run.in_module(module), (
        f"control: {module} does not pass against the healthy server\n{healthy_run.summary()}"
    )

    if defect in LENIENCIES:
        # Without --strict the run passes, but the report names the leniency with its request.
        lenient = kit_runs[f"{defect}-lenient"]
        assert lenient.returncode == 0, lenient.summary()
        found = [f for f in _json(lenient).get("leniencies", []) if f["check"] == LENIENCIES[defect]]
        assert found and found[0]["request"], f"{defect}: no {LENIENCIES[defect]!r} leniency reported"
    run = kit_runs[defect]

    assert run.returncode != 0, f"the kit passed against {defect!r}\n{run.summary()}"
    verdicts = {v["verdict"] for v in _json(run).get("violations", [])}
    if defect in LENIENCIES:
        assert "verdict" in run.junit and "leniency" in run.junit, "JUnit does not class the failure"
    else:
        assert verdicts == {"violation"}, f"{defect}: violations classed {verdicts}\n{run.summary()}"
    caught_by = run.failed(module)
    assert caught_by, f"no test of {module} failed against {defect!r}\n{run.summary()}"
    print(f"{defect}: caught by " + ", ".join(f"{c.module}::{c.name}" for c in caught_by))  # shown with -rP
    assert run.report, f"the kit wrote no report\n{run.summary()}"
    leaks = leaked_secrets(run.stdout, run.stderr, run.report, run.junit)
    assert not leaks, f"secrets in the kit's output against {defect!r}: {leaks}"


def test_secrets_stay_out_of_failure_output(kit_runs: dict[str, KitRun]) -> None:
    # LEAK_MODULES against a server whose every success code is wrong: token bodies in failure messages.
    run = kit_runs["leaks"]
    assert run.returncode != 0 and run.failed(), run.summary()
    leaks = leaked_secrets(run.stdout, run.stderr, run.report, run.junit)
    assert not leaks, f"secrets in the kit's output: {leaks}"
