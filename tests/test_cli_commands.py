"""The `dpa-mock` command carries every feature's subcommand, and the light ones start without the kit's imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _dpa_mock(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mock_server", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_every_command() -> None:
    out = _dpa_mock("--help")
    assert out.returncode == 0, out.stderr
    for command in ("serve", "check-fixtures", "verify", "diff", "proxy"):
        assert f"  {command} " in out.stdout, command


def _result(path: Path, observations: list[dict[str, object]]) -> str:
    path.write_text(
        json.dumps({"summary": {}, "violations": [], "leniencies": [], "observations": observations}), encoding="utf-8"
    )
    return str(path)


def test_diff_through_the_installed_command_exits_by_whether_the_sides_differ(tmp_path: Path) -> None:
    a = _result(tmp_path / "a.json", [{"topic": "callback.default-sent", "value": "yes", "count": 1}])
    same = _result(tmp_path / "same.json", [{"topic": "callback.default-sent", "value": "yes", "count": 3}])
    other = _result(tmp_path / "b.json", [{"topic": "callback.default-sent", "value": "no", "count": 1}])
    assert _dpa_mock("diff", a, same).returncode == 0
    differs = _dpa_mock("diff", a, other)
    assert differs.returncode == 1
    assert "callback.default-sent" in differs.stdout
    unreadable = _dpa_mock("diff", a, str(tmp_path / "missing.json"))
    assert unreadable.returncode == 2
    assert "missing.json" in unreadable.stderr


def test_the_cli_does_not_import_the_kit_s_heavy_dependencies_to_serve() -> None:
    # `dpa-mock serve` must start on a base install (no [kit] extra): the kit's imports wait until verify runs.
    code = "import sys, mock_server.cli; print(sorted(m for m in ('pytest', 'schemathesis', 'hypothesis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
