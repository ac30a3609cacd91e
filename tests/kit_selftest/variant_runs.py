"""The kit's runs against the faithful variants, shared by the faithful self-test and the calibration loop.

Each variant is served, the kit runs against it (`--report-json`); when the loop is asked for too, the profile
written from that result (what `dpa-mock verify --write-profile` writes) is served by `dpa-mock serve --profile`
and the kit runs again with the same seed and modules. One pool, three variants at a time, so the faithful
self-test and the loop share the first run instead of making it twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract_tests.support.profile_writer import render
from mock_server.settings import load_settings
from mock_server.testing.server import ServerProcess
from tests.kit_selftest.harness import QUICK_PROFILE, ROOT, KitRun, run_kit

SEED = os.environ.get("KIT_SELFTEST_SEED", "20240601")
ALL = [
    "test_auth.py",
    "test_callbacks.py",
    "test_client.py",
    "test_envelope.py",
    "test_oauth.py",
    "test_paths.py",
    "test_plans.py",
    "test_runs.py",
    "test_scenes.py",
    "test_schema.py",
    "test_stateful.py",
    "test_validation.py",
]
# The kit modules where each variant's choice shows. The whole kit for (a) (the emulator's other HTTP-status
# mode must pass its own kit) and for all-at-once, which carries (b)-(i) together through every module.
MODULES: dict[str, list[str]] = {
    "always-200": ALL,
    "status-is-code": ["test_envelope.py", "test_schema.py", "test_auth.py", "test_validation.py"],
    "pretty-extra-fields": [
        "test_plans.py",
        "test_runs.py",
        "test_callbacks.py",
        "test_client.py",
        "test_oauth.py",
        "test_schema.py",
    ],
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
ORDER = [
    "late-callbacks",
    "all-at-once",
    "always-200",
    "pretty-extra-fields",
    "execute-path-only",
    "status-is-code",
    "999-unknown-ids",
    "framework-errors",
    "other-wording",
    "405-code-405",
    "no-default-callback",
    "slow-backoff",
]


@dataclass
class VariantRuns:
    """The kit against the variant; with the loop, the written profile and the kit against the emulator under it."""

    target: KitRun
    target_result: dict[str, Any]
    profile: str = ""
    profile_error: str | None = None
    emulator: KitRun | None = None
    emulator_result: dict[str, Any] | None = None
    loop_error: str | None = None  # the emulator under the written profile did not start (or the loop broke)


def kit(base_url: str, variant: str, workdir: Path) -> tuple[KitRun, dict[str, Any]]:
    """The variant's kit modules with the quick profile and the fixed seed; the JSON result ({} if none)."""
    run = run_kit(
        base_url,
        [str(Path("contract_tests") / m) for m in MODULES[variant]],
        workdir,
        f"--hypothesis-seed={SEED}",
        "-p",
        "tests.kit_selftest.kit_profile",
        "--report-json",
        str(workdir / "report.json"),
        env={"DPA_HYPOTHESIS_PROFILE": QUICK_PROFILE},
    )
    path = workdir / "report.json"
    return run, (json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})


def run_variant(variant: str, workdir: Path, loop: bool) -> VariantRuns:
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tests.kit_selftest.faithful", variant]
    with ServerProcess(command=command, cwd=ROOT, log=workdir / "variant.log") as server:
        target, target_result = kit(server.base_url, variant, workdir / "target")
    runs = VariantRuns(target, target_result)
    if not loop:
        return runs
    profile = workdir / "profile.yaml"
    profile.write_text(render(target_result, f"faithful variant {variant}"), encoding="utf-8")
    runs.profile = profile.read_text(encoding="utf-8")
    try:
        load_settings(profile=profile, env={})
    except ValueError as exc:  # the written profile must load: the test says why it did not
        runs.profile_error = str(exc)
        return runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPA_MOCK_")}
    try:
        with ServerProcess(
            "--clock", "virtual", "--profile", str(profile), env=env, cwd=ROOT, log=workdir / "emulator.log"
        ) as server:
            runs.emulator, runs.emulator_result = kit(server.base_url, variant, workdir / "emulator")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # one variant's test fails, not all
        runs.loop_error = f"{type(exc).__name__}: {exc}"
    return runs


def run_all(first: set[str], loop: set[str], root: Path) -> dict[str, VariantRuns]:
    """`first`: variants whose kit run is wanted; `loop`: those whose loop is wanted too. Three at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {v: pool.submit(run_variant, v, root / v, v in loop) for v in ORDER if v in first | loop}
        return {v: f.result() for v, f in futures.items()}
