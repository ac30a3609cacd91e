"""The kit does not cry wolf: servers that keep the document but choose differently get zero violations."""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mock_server.testing.server import ServerProcess
from tests.kit_selftest.faithful import VARIANTS
from tests.kit_selftest.harness import QUICK_PROFILE, ROOT, KitRun, leaked_secrets, run_kit

pytestmark = pytest.mark.slow
SEED = os.environ.get("KIT_SELFTEST_SEED", "20240601")
ALL = ["test_auth.py", "test_callbacks.py", "test_client.py", "test_envelope.py", "test_oauth.py", "test_paths.py",
       "test_plans.py", "test_runs.py", "test_scenes.py", "test_schema.py", "test_stateful.py", "test_validation.py"]
# The kit modules where each variant's choice shows. The whole kit for (a) (the emulator's other HTTP-status
# mode must pass its own kit) and for all-at-once, which carries (b)-(i) together through every module.
MODULES: dict[str, list[str]] = {
    "always-200": ALL,
    "status-is-code": ["test_envelope.py", "test_schema.py", "test_auth.py", "test_validation.py"],
    "pretty-extra-fields": ["test_plans.py", "test_runs.py", "test_callbacks.py", "test_client.py", "test_oauth.py",
                            "test_schema.py"],
    "other-wording": ["test_envelope.py", "test_validation.py", "test_client.py"],
    "no-default-callback": ["test_callbacks.py", "test_scenes.py"],
    "999-unknown-ids": ["test_plans.py", "test_runs.py", "test_schema.py", "test_client.py"],
    "405-code-405": ["test_envelope.py", "test_schema.py"],
    "execute-path-only": ["test_validation.py", "test_schema.py", "test_envelope.py", "test_stateful.py"],
    "slow-backoff": ["test_callbacks.py"],
    "late-callbacks": ["test_callbacks.py", "test_scenes.py"],
    "framework-errors": ["test_envelope.py", "test_validation.py", "test_schema.py"],
    "all-at-once": ALL,
}
# Longest first, so the pool is never left with one long run at the end (late-callbacks mostly sleeps).
ORDER = ["late-callbacks", "all-at-once", "always-200", "pretty-extra-fields", "execute-path-only",
         "status-is-code", "999-unknown-ids", "framework-errors", "other-wording", "405-code-405", "no-default-callback", "slow-backoff"]
# What the report must show each variant chose (topic, value): the kit saw the difference, and did not judge it.
CHOSEN: dict[str, tuple[str, str]] = {
    "always-200": ("http-status.code-400", "200"),
    "status-is-code": ("http-status.code-998", "998"),
    "no-default-callback": ("callback.default-sent", "no"),
    "999-unknown-ids": ("unknown-plan.code", "999"),
    "405-code-405": ("wrong-method.code", "405"),
    "execute-path-only": ("execute.body-plan-id", "path only"),
    "slow-backoff": ("callback.backoff", "0.5, 1, 2 s"),
    "other-wording": ("validation.code", "400"),
    "pretty-extra-fields": ("plans.extra-fields", "vendorExtra"),
    "late-callbacks": ("callback.attempts", "4"),
    "framework-errors": ("validation.code", "HTTP 400 (no envelope)"),
    "all-at-once": ("unknown-plan.code", "999"),
}


def _run(variant: str, workdir: Path) -> tuple[KitRun, dict[str, object]]:
    command = [sys.executable, "-m", "tests.kit_selftest.faithful", variant]
    with ServerProcess(command=command, cwd=ROOT, log=workdir.with_suffix(".server.log")) as server:
        run = run_kit(server.base_url, [str(Path("contract_tests") / m) for m in MODULES[variant]], workdir,
                      f"--hypothesis-seed={SEED}", "-p", "tests.kit_selftest.kit_profile",
                      "--report-json", str(workdir / "report.json"), env={"DPA_HYPOTHESIS_PROFILE": QUICK_PROFILE})
    path = workdir / "report.json"
    return run, (json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[KitRun, dict[str, object]]]:
    """Every variant once; three at a time (each is a server plus a kit process, mostly waiting on each other)."""
    root = tmp_path_factory.mktemp("faithful")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {v: pool.submit(_run, v, root / v) for v in ORDER}
        return {v: f.result() for v, f in futures.items()}


def test_every_variant_is_tried() -> None:
    assert set(MODULES) == set(VARIANTS) == set(CHOSEN) == set(ORDER) and len(ORDER) == len(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_faithful_variant_gets_no_violation(variant: str, runs: dict[str, tuple[KitRun, dict[str, object]]]) -> None:
    run, result = runs[variant]
    assert run.returncode == 0, f"{variant}: the kit failed a faithful server\n{run.summary()}"
    assert run.cases and not run.failed(), run.summary()
    summary = result.get("summary")
    assert isinstance(summary, dict) and summary["violations"] == 0, (variant, summary)
    assert result["violations"] == [], result["violations"]
    observed = {(o["topic"], o["value"]) for o in result["observations"]}  # type: ignore[union-attr,index]
    topic, value = CHOSEN[variant]
    values = sorted(v for t, v in observed if t == topic)
    assert any(value in v for v in values), f"{variant}: {topic} observed as {values}, expected {value!r}"
    assert not leaked_secrets(run.stdout, run.stderr, run.report, run.junit)


def test_leniencies_are_reported_not_failed(runs: dict[str, tuple[KitRun, dict[str, object]]]) -> None:
    """(g) and (h) accept what the document forbids or skip a nicety: reported with a request, the run passes."""
    for variant, check in (("405-code-405", "405 without Allow"), ("execute-path-only",
                                                                    "documented-required field missing")):
        run, result = runs[variant]
        found = [f for f in result["leniencies"] if f["check"] == check]  # type: ignore[union-attr,index]
        assert found, f"{variant}: no {check!r} leniency in {result['leniencies']}"
        assert "Leniencies" in run.report and check in run.report
        assert run.returncode == 0
