"""The whole contract kit passes over real HTTP against `dpa-mock serve --clock virtual`, whatever the seed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mock_server.testing.server import ServerProcess
from tests.kit_selftest.harness import leaked_secrets, run_kit

pytestmark = pytest.mark.slow

# One fixed seed in `make test`, whose kit-http step adds a fresh random seed (printed) on every run; more with
# KIT_SELFTEST_SEEDS="1 20240531 987654321" (each is a full kit run, about 10 s).
SEEDS = [int(s) for s in os.environ.get("KIT_SELFTEST_SEEDS", "20240531").split()]


@pytest.mark.parametrize("seed", SEEDS)
def test_full_kit_passes_against_the_served_emulator(seed: int, tmp_path: Path) -> None:
    with ServerProcess("--clock", "virtual", log=tmp_path / "dpa-mock.log") as server:
        run = run_kit(server.base_url, ["contract_tests"], tmp_path / "kit", f"--hypothesis-seed={seed}")
    assert run.returncode == 0, run.summary()
    assert run.cases and not run.failed(), run.summary()
    assert any(c.outcome == "passed" for c in run.cases)
    assert str(seed) in run.report, "the report does not name the seed that reproduces the run"
    assert not leaked_secrets(run.stdout, run.stderr, run.report, run.junit)
