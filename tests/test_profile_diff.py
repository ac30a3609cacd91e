"""`dpa-mock diff A.json B.json`: two kit results side by side, differences first, exit 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from contract_tests.cli import diff
from tests.kit_selftest.harness import ROOT


def result(path: Path, *observations: tuple[str, str], target: str = "http://staging") -> str:
    path.write_text(
        json.dumps(
            {
                "summary": {"target": target, "violations": 0, "leniencies": 1, "seed": 7},
                "violations": [],
                "leniencies": [],
                "observations": [{"topic": t, "value": v, "count": 3, "test": "x"} for t, v in observations],
            }
        ),
        encoding="utf-8",
    )
    return str(path)


def run(*args: str) -> Any:
    return CliRunner().invoke(diff, list(args))


STAGING = (
    ("http-status.code-400", "200"),
    ("unknown-plan.code", "999"),
    ("callback.default-sent", "no"),
    ("validation.code", "400"),
    ("validation.code", "403"),
    ("fuzzing.codes", "listPlans: {200: 3}"),
)


def test_equal_results_exit_0_and_say_none_differ(tmp_path: Path) -> None:
    a = result(tmp_path / "a.json", *STAGING)
    b = result(tmp_path / "b.json", *reversed(STAGING[:-1]), ("fuzzing.codes", "listPlans: {200: 9}"))
    out = run(a, b)
    assert out.exit_code == 0, out.output
    assert "0 of 4 topics differ" in out.output
    assert "| = | `validation.code` | 400; 403 | 400; 403 |" in out.output
    # the diagnostic topic differs, but describes the run, not the target: listed, not compared
    assert "Not compared (diagnostic" in out.output and "fuzzing.codes" in out.output


def test_differences_come_first_with_both_values_and_a_count(tmp_path: Path) -> None:
    a = result(tmp_path / "staging.json", *STAGING)
    b = result(
        tmp_path / "emulator.json",
        ("http-status.code-400", "400"),
        ("unknown-plan.code", "999"),
        ("validation.code", "400"),
        ("oauth.code-length", "48"),
        target="in-process emulator",
    )
    out = run(a, b)
    assert out.exit_code == 1, out.output
    lines = out.output.splitlines()
    rows = [ln for ln in lines if ln.startswith(("| ≠", "| ="))]
    assert [r[:3] for r in rows] == ["| ≠"] * 4 + ["| ="]
    assert "| ≠ | `http-status.code-400` | 200 | 400 |" in rows
    assert "| ≠ | `callback.default-sent` | no | (not observed) |" in rows
    assert "| ≠ | `oauth.code-length` | (not observed) | 48 |" in rows
    assert "| ≠ | `validation.code` | 400; 403 | 400 |" in rows
    assert rows[-1] == "| = | `unknown-plan.code` | 999 | 999 |"
    assert lines[-1].startswith("4 of 5 topics differ: ")
    assert lines[0] == f"A = {a}: http://staging — 0 violation(s), 1 leniency(ies), seed 7"
    assert lines[1].startswith(f"B = {b}: in-process emulator")


def test_hostile_values_stay_in_their_cell(tmp_path: Path) -> None:
    a = result(tmp_path / "a.json", ("success-message.process", "'a|b\n| = | `x` |\u202e'"))
    b = result(tmp_path / "b.json", ("success-message.process", "'ok'"))
    out = run(a, b)
    rows = [ln for ln in out.output.splitlines() if ln.startswith("| ")]
    assert len(rows) == 2 and "\u202e" not in out.output and "\\u202e" in rows[1], rows


def test_diagnostic_topics_are_compared_when_asked(tmp_path: Path) -> None:
    a = result(tmp_path / "a.json", ("fuzzing.codes", "x: {200: 1}"))
    b = result(tmp_path / "b.json", ("fuzzing.codes", "x: {200: 2}"))
    assert run(a, b).exit_code == 0
    out = run("--diagnostic", a, b)
    assert out.exit_code == 1 and "1 of 1 topics differ: fuzzing.codes" in out.output


def test_unreadable_input_exits_2_naming_the_file_and_the_reason(tmp_path: Path) -> None:
    good = result(tmp_path / "good.json", *STAGING)
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "other.json").write_text('{"observations": [{"value": "x"}]}', encoding="utf-8")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    for name, reason in (
        ("missing.json", "No such file"),
        ("bad.json", "not JSON"),
        ("list.json", "not a `dpa-mock verify --report-json` result"),
        ("other.json", "not a `dpa-mock verify --report-json` result"),
        ("binary.json", "not UTF-8"),
    ):
        path = str(tmp_path / name)
        for args in ((good, path), (path, good)):
            out = run(*args)
            assert out.exit_code == 2, (name, out.output)
            assert f"dpa-mock diff: {path}: {reason}" in out.output, out.output
            assert "Traceback" not in out.output
    assert run(good, str(tmp_path)).exit_code == 2  # a directory is refused by click (usage error)


def test_works_without_pytest_or_schemathesis(tmp_path: Path) -> None:
    """The base install has neither: the command must not import them."""
    a = result(tmp_path / "a.json", *STAGING)
    b = result(tmp_path / "b.json", ("http-status.code-400", "400"))
    code = (
        "import sys; sys.modules['pytest'] = None; sys.modules['schemathesis'] = None; "
        "sys.modules['hypothesis'] = None; from contract_tests.cli import diff; diff(sys.argv[1:])"
    )
    proc = subprocess.run([sys.executable, "-c", code, a, b], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "4 of 4 topics differ" in proc.stdout
