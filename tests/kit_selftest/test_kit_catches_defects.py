"""The contract kit fails, in the module meant to catch it, against each deliberately broken server."""

from __future__ import annotations

import json
import os
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


def _json(workdir: Path) -> dict[str, Any]:
    path = workdir / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory: pytest.TempPathFactory) -> KitRun:
    """Every catching module once against the healthy emulator: the control for every defect below."""
    return _run("healthy", sorted(set(CATCHERS.values())), tmp_path_factory.mktemp("kit") / "healthy")


def test_the_catching_modules_pass_against_the_healthy_server(healthy_run: KitRun) -> None:
    assert healthy_run.returncode == 0, healthy_run.summary()
    for module in sorted(set(CATCHERS.values())):
        ran = [c for c in healthy_run.in_module(module) if c.outcome == "passed"]
        assert ran, f"{module}: no test passed against the healthy server\n{healthy_run.summary()}"
    assert not leaked_secrets(healthy_run.stdout, healthy_run.stderr, healthy_run.report, healthy_run.junit)


def test_every_defect_has_a_catcher() -> None:
    assert set(CATCHERS) == set(DEFECTS) - {"healthy"}


@pytest.mark.parametrize("defect", sorted(CATCHERS))
def test_kit_catches_defect(defect: str, healthy_run: KitRun, tmp_path: Path) -> None:
    module = CATCHERS[defect]
    healthy_failures = healthy_run.failed(module)
    assert not healthy_failures and healthy_run.in_module(module), (
        f"control: {module} does not pass against the healthy server\n{healthy_run.summary()}"
    )

    if defect in LENIENCIES:
        # Without --strict the run passes, but the report names the leniency with its request.
        lenient = _run(defect, [module], tmp_path / f"{defect}-lenient")
        assert lenient.returncode == 0, lenient.summary()
        found = [
            f for f in _json(tmp_path / f"{defect}-lenient").get("leniencies", []) if f["check"] == LENIENCIES[defect]
        ]
        assert found and found[0]["request"], f"{defect}: no {LENIENCIES[defect]!r} leniency reported"
        run = _run(defect, [module], tmp_path / defect, "--dpa-strict")
    else:
        run = _run(defect, [module], tmp_path / defect)

    assert run.returncode != 0, f"the kit passed against {defect!r}\n{run.summary()}"
    verdicts = {v["verdict"] for v in _json(tmp_path / defect).get("violations", [])}
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


def test_secrets_stay_out_of_failure_output(tmp_path: Path) -> None:
    # With every success code wrong, every token response fails validation: the failure messages of the
    # schema, OAuth and envelope checks then quote token bodies, which the kit must redact everywhere.
    modules = ["test_schema.py", "test_oauth.py", "test_envelope.py"]
    run = _run("success-code-not-200", modules, tmp_path / "leaks")
    assert run.returncode != 0 and run.failed(), run.summary()
    leaks = leaked_secrets(run.stdout, run.stderr, run.report, run.junit)
    assert not leaks, f"secrets in the kit's output: {leaks}"
