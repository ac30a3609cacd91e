"""Calibration as a QA engineer runs it: `verify --write-profile` against a staging-shaped server, `serve --profile`
of the written file, `verify` again, `diff` of the two results: zero differences (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mock_server.settings import load_settings
from mock_server.testing.server import ServerProcess
from tests.kit_selftest.harness import CLIENT_ID, CLIENT_SECRET, kit_env

pytestmark = pytest.mark.slow
KIT = [
    "--client-id",
    CLIENT_ID,
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
    "--seed",
    "7",
]
# The modules where the gateway profile's choices show (fuzzing, stateful and client modules add only time).
MODULES = "envelope,oauth,paths,plans,runs,callbacks,validation"


def dpa_mock(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_server", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=kit_env({"DPA_CLIENT_SECRET": CLIENT_SECRET}),
        timeout=600,
    )


def verify(cwd: Path, base_url: str, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return dpa_mock(
        cwd,
        "verify",
        "--base-url",
        base_url,
        *KIT,
        "--report",
        f"{name}.md",
        "--junitxml",
        f"{name}.xml",
        "--report-json",
        f"{name}.json",
        "--only",
        MODULES,
        *extra,
    )


def test_gateway_calibrated_served_and_diffed_has_no_difference(tmp_path: Path) -> None:
    with ServerProcess("--clock", "virtual", "--profile", "gateway", log=tmp_path / "staging.log") as staging:
        first = verify(tmp_path, staging.base_url, "staging", "--write-profile", "staging.yaml")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert "profile: staging.yaml" in first.stdout
    written = yaml.safe_load((tmp_path / "staging.yaml").read_text(encoding="utf-8"))
    gateway = load_settings(profile="gateway", env={})
    for name in (
        "http_status",
        "unknown_plan_code",
        "unknown_instance_code",
        "wrong_method_code",
        "wrong_method_allow",
        "error_data",
        "success_message",
        "oauth_success_message",
        "single_slash_paths",
        "execute_body_plan_id",
        "callback_after_give_up",
        "code_length",
        "code_alphabet",
        "token_ttl",
        "plan_instance_id_format",
    ):
        assert written[name] == getattr(gateway, name), (name, written[name], getattr(gateway, name))
    assert written["callback_statuses"] == list(gateway.callback_statuses)
    assert written["callback_backoff"] == list(gateway.callback_backoff)
    assert sorted(written["token_claims"]) == sorted(gateway.token_claims)
    assert written["token_type"] == gateway.token_type == "bearer"

    with ServerProcess(
        "--clock", "virtual", "--profile", str(tmp_path / "staging.yaml"), log=tmp_path / "emulator.log"
    ) as emulator:
        second = verify(tmp_path, emulator.base_url, "emulator")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    compared = dpa_mock(tmp_path, "diff", "staging.json", "emulator.json")
    assert compared.returncode == 0, compared.stdout
    assert compared.stdout.strip().splitlines()[-1].startswith("0 of "), compared.stdout
    # Both runs were --only: each side says it was partial, and which modules ran.
    assert compared.stdout.count("; a partial run (test_callbacks.py, test_envelope.py, ") == 2, compared.stdout
    unreadable = dpa_mock(tmp_path, "diff", "staging.json", str(tmp_path / "missing.json"))
    assert unreadable.returncode == 2 and "missing.json" in unreadable.stderr


def test_write_profile_to_an_unwritable_place_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    result = dpa_mock(
        tmp_path,
        "verify",
        *KIT[:2],
        "--report",
        "r.md",
        "--write-profile",
        "file/profile.yaml",
        "--only",
        "oauth",
        "--",
        "-k",
        "test_code_is_single_use",
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "profile: cannot write file/profile.yaml" in result.stderr
    assert "Traceback" not in result.stderr
