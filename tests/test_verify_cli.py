"""`dpa-mock verify`: the kit as a command, run from a directory outside the checkout against served targets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from contract_tests.cli import pytest_args
from contract_tests.plugins.report import printable
from mock_server.testing.server import ServerProcess
from tests.kit_selftest.harness import CLIENT_ID, CLIENT_SECRET, ROOT, kit_env

pytestmark = pytest.mark.slow
WRITES = ["--allow-writes", "--plan-id", "acf42dd3", "--callback-listen", "127.0.0.1:0"]
# A module that cannot be imported: pytest must report the run as failed, never as "0 errors".
BROKEN_MODULE_PLUGIN = """
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name == "test_paths.py":
        class Unimportable(pytest.Module):
            def _getobj(self):
                raise ImportError("simulated: a kit module that cannot be imported")
        return Unimportable.from_parent(parent, path=module_path)
"""


def verify_served(
    tmp_path: Path,
    *args: str,
    serve: tuple[str, ...] = ("--clock", "virtual"),
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`verify` with the kit's client against a server started for it: `dpa-mock serve` (or `command`) with the
    arguments `serve`."""
    with ServerProcess(*serve, command=command, cwd=ROOT, log=tmp_path / "server.log") as server:
        return verify(tmp_path, "--base-url", server.base_url, "--client-id", CLIENT_ID, *args, env=env)


def verify(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mock_server", "verify", *args]
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=kit_env({"DPA_CLIENT_SECRET": CLIENT_SECRET, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_help_lists_every_kit_option(tmp_path: Path) -> None:
    result = verify(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for flag in (
        "--base-url",
        "--client-id",
        "--allow-writes",
        "--plan-id",
        "--strict",
        "--report-json",
        "--no-admin",
        "--callback-listen",
        "--seed",
        "--junitxml",
        "DPA_CLIENT_SECRET",
    ):
        assert flag in result.stdout, flag


def test_command_line_is_the_installed_package_with_the_plugin_first(tmp_path: Path) -> None:
    args = pytest_args(
        {"dpa_base_url": "http://x", "dpa_plan_ids": ("a", "b"), "dpa_strict": True, "seed": 5},
        ["-k", "oauth"],
        tmp_path / "pytest.ini",
    )
    assert args[:4] == ["--pyargs", "contract_tests", "-p", "contract_tests.plugin"]
    assert args[args.index("--base-url") + 1] == "http://x"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--plan-id"] == ["a", "b"]
    assert "--dpa-strict" in args and "--hypothesis-seed=5" in args and args[-2:] == ["-k", "oauth"]


@pytest.mark.parametrize("mode", ["mirror", "always200"])
def test_passes_against_the_served_emulator_from_any_directory(mode: str, tmp_path: Path) -> None:
    result = verify_served(
        tmp_path,
        *WRITES,
        "--seed",
        "7",
        "--only",
        "paths,plans,envelope,oauth",
        "--",
        "-k",
        "test_paths or test_plans or test_unknown_path or test_oauth",
        serve=("--clock", "virtual", "--http-status", mode),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()
    assert last[-2].startswith("dpa-mock verify: PASS — 0 violation(s)"), last[-2:]
    assert last[-1].startswith("report: reports/contract-report.md"), last[-1]
    data = json.loads((tmp_path / "reports" / "contract-report.json").read_text(encoding="utf-8"))
    assert set(data) == {"summary", "violations", "leniencies", "observations"}
    assert data["summary"]["violations"] == 0 and data["summary"]["passed"] > 10
    topics = {o["topic"]: o["value"] for o in data["observations"]}
    assert topics["http-status.code-403"] == ("403" if mode == "mirror" else "200")
    junit = (tmp_path / "reports" / "contract-junit.xml").read_text(encoding="utf-8")
    assert 'classname="contract_tests.test_paths"' in junit and "site-packages" not in junit
    report = (tmp_path / "reports" / "contract-report.md").read_text(encoding="utf-8")
    assert "`contract_tests/test_paths.py::" in report and str(ROOT / "contract_tests") not in report
    assert "reproduce with `dpa-mock verify --base-url" in report, report[:1500]
    assert "--only paths,plans,envelope,oauth --seed 7 -- -k" in report, report[:1500]
    assert CLIENT_SECRET not in result.stdout + report + junit


def test_strict_makes_leniencies_fail(tmp_path: Path) -> None:
    """always200 answers a wrong method with HTTP 200: a leniency (unsupported_method), fatal under --strict."""
    result = verify_served(
        tmp_path,
        "--strict",
        "--seed",
        "3",
        "--only",
        "schema",
        "--",
        "-k",
        "test_operation and queryPlanByUserId",
        serve=("--clock", "virtual", "--http-status", "always200"),
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "leniency(ies) (--strict: fatal)" in result.stdout
    data = json.loads((tmp_path / "reports" / "contract-report.json").read_text(encoding="utf-8"))
    assert data["summary"]["strict"] and data["leniencies"], data["summary"]
    assert {f["check"] for f in data["leniencies"]} == {"unsupported_method"}
    junit = (tmp_path / "reports" / "contract-junit.xml").read_text(encoding="utf-8")
    assert 'name="verdict" value="leniency"' in junit


def verify_broken(tmp_path: Path, defect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`verify` against tests/kit_selftest/broken.py serving `defect`."""
    command = [sys.executable, "-m", "tests.kit_selftest.broken", defect]
    return verify_served(tmp_path, *args, serve=(), command=command, env={"PYTHONPATH": str(ROOT)})


def test_fails_with_exit_1_against_a_broken_server(tmp_path: Path) -> None:
    result = verify_broken(
        tmp_path, "success-code-not-200", "--only", "test_envelope.py", "--", "-k", "test_success_envelope"
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "dpa-mock verify: FAIL" in result.stdout
    data = json.loads((tmp_path / "reports" / "contract-report.json").read_text(encoding="utf-8"))
    assert data["violations"] and {v["verdict"] for v in data["violations"]} == {"violation"}


def test_a_module_that_cannot_be_collected_fails_the_run_and_the_others_still_run(tmp_path: Path) -> None:
    """authorize without an envelope gives the kit no token: schemathesis' collection of test_schema fails (it
    builds coverage cases, with their auth, at collection), and test_oauth still runs and names the defect."""
    result = verify_broken(tmp_path, "authorize-not-envelope", "--only", "oauth,schema")
    assert result.returncode == 1, result.stdout[-3000:]
    data = json.loads((tmp_path / "reports" / "contract-report.json").read_text(encoding="utf-8"))
    errors = data["summary"]["errors"]
    assert len(errors) == 1 and errors[0].startswith("test_schema.py::test_operation: "), errors
    assert "authorize gave no data.code (HTTP 200)" in errors[0].splitlines()[0], errors
    failed = {v["test"] for v in data["violations"]}
    assert any("test_oauth.py::test_authorize_code_shape_and_uniqueness" in t for t in failed), failed
    assert "Errors of the run (1)" in (tmp_path / "reports" / "contract-report.md").read_text(encoding="utf-8")


def test_a_module_that_cannot_be_imported_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "unimportable_kit_module.py").write_text(BROKEN_MODULE_PLUGIN, encoding="utf-8")
    result = verify(
        tmp_path,
        "--only",
        "paths,envelope",
        "--",
        "-p",
        "unimportable_kit_module",
        "-k",
        "test_paths or test_epoch",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 1, result.stdout[-3000:]
    data = json.loads((tmp_path / "reports" / "contract-report.json").read_text(encoding="utf-8"))
    assert data["summary"]["errors"] and data["summary"]["violations"] >= 1, data["summary"]
    assert data["summary"]["passed"] >= 1, data["summary"]  # test_envelope's epoch check still ran
    assert "simulated: a kit module that cannot be imported" in json.dumps(data)
    assert "Errors of the run" in (tmp_path / "reports" / "contract-report.md").read_text(encoding="utf-8")


def test_only_runs_the_named_modules_and_every_output_says_the_run_was_partial(tmp_path: Path) -> None:
    result = verify_served(
        tmp_path,
        "--only",
        "test_paths",
        "--only",
        "oauth.py, paths",
        "--write-profile",
        "profile.yaml",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    junit = (tmp_path / "reports" / "contract-junit.xml").read_text(encoding="utf-8")
    classes = {c for c in junit.split('classname="')[1:] for c in [c.split('"', 1)[0]]}
    assert classes == {"contract_tests.test_oauth", "contract_tests.test_paths"}, classes
    data = json.loads((tmp_path / "reports" / "contract-report.json").read_text(encoding="utf-8"))
    assert data["summary"]["partial"] and data["summary"]["modules"] == ["test_oauth.py", "test_paths.py"]
    report = (tmp_path / "reports" / "contract-report.md").read_text(encoding="utf-8")
    assert "- **Modules:** 2 of " in report and "(test_oauth.py, test_paths.py): a partial run, without " in report
    assert "--only test_paths --only 'oauth.py, paths'" in report, report[:1500]
    profile = (tmp_path / "profile.yaml").read_text(encoding="utf-8")
    assert "# A partial run: only test_oauth.py, test_paths.py." in profile, profile[:800]


def test_a_full_run_says_so_and_is_not_partial(tmp_path: Path) -> None:
    from contract_tests.options import kit_modules
    from contract_tests.plugins.report import Outcome, _modules, modules_run

    every = [Outcome(f"contract_tests/{m}::test_x", [0]) for m in kit_modules()]
    assert modules_run(every) == kit_modules() and _modules(every).startswith(f"all {len(every)} ")
    assert "a partial run, without test_auth.py" in _modules(every[1:])


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("oauth,tokens", "--only tokens: no such kit module; the kit's modules: auth, callbacks,"),
        (" , ", "--only needs"),
    ],
)
def test_only_an_unknown_or_empty_module_is_a_usage_error_naming_the_modules(
    value: str, said: str, tmp_path: Path
) -> None:
    result = verify(tmp_path, "--only", value)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert said in result.stderr and "auth, callbacks, client" in result.stderr, result.stderr
    assert not (tmp_path / "reports").exists()


def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = verify(tmp_path, "--base-url", "http://127.0.0.1:9", env={"DPA_CLIENT_SECRET": ""})
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "needs --client-id" in result.stderr


def test_a_bad_kit_option_is_a_usage_error(tmp_path: Path) -> None:
    result = verify(tmp_path, "--scope", "everything")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "--scope must be 'default' or 'all'" in result.stdout + result.stderr


def test_an_unreachable_target_exits_2_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = verify(tmp_path, "--base-url", url, "--client-id", CLIENT_ID)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "does not answer" in result.stderr and "check --base-url" in result.stderr


def test_report_text_escapes_control_characters() -> None:
    text = printable("scene \x00name\x1b[31m\u202e\ud800 ok\n\tnext")
    assert text == "scene \\u0000name\\u001b[31m\\u202e\\ud800 ok\n\tnext"
    assert all(ch in "\n\t" or ord(ch) >= 32 for ch in text)


@pytest.mark.parametrize(
    ("client_id", "secret", "extra", "said"),
    [
        ("x", "y", [], "refused --client-id 'x' at authorize (code 403"),
        (CLIENT_ID, "not-the-secret", [], "refused the secret of --client-id"),
        (CLIENT_ID, CLIENT_SECRET, ["--user-id", "nobody-here"], "refused the kit's login at token (code 998"),
    ],
    ids=["unknown-client", "wrong-secret", "unknown-user"],
)
def test_wrong_credentials_exit_2_blaming_nothing_on_the_target(
    client_id: str, secret: str, extra: list[str], said: str, tmp_path: Path
) -> None:
    """F6: the operator's mistake is one line and exit 2, not a collection traceback and a violation."""
    with ServerProcess(cwd=ROOT, log=tmp_path / "server.log") as server:
        result = verify(
            tmp_path,
            "--base-url",
            server.base_url,
            "--client-id",
            client_id,
            *extra,
            env={"DPA_CLIENT_SECRET": secret},
        )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "violation" not in result.stdout
    assert not (tmp_path / "reports" / "contract-report.json").exists()


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--max-runs", "-5"], {}, "--max-runs must be at least 0"),
        (["--max-scenes", "-1"], {}, "--max-scenes must be at least 0"),
        (["--wait-seconds", "nan"], {}, "--wait-seconds must be more than 0"),
        (["--wait-seconds", "0"], {}, "--wait-seconds must be more than 0"),
        ([], {"DPA_MAX_RUNS": "-5"}, "--max-runs must be at least 0"),
        ([], {"DPA_WAIT_SECONDS": "inf"}, "--wait-seconds must be more than 0"),
    ],
)
def test_numeric_options_are_validated(args: list[str], env: dict[str, str], said: str, tmp_path: Path) -> None:
    result = verify(tmp_path, *args, env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert said in result.stderr and "Traceback" not in result.stderr, result.stderr
