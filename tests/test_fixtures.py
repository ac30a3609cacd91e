"""Fixture loading: broken fixture files stop start-up with a message naming the file, the key path and the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mock_server.fixtures import DEFAULT_FIXTURES, FixtureError, load_catalog
from mock_server.testing.server import free_port
from tests.plugins.foundation import copy_fixtures

ROOT = Path(__file__).resolve().parents[1]


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _node(doc: dict[str, Any], plan: str) -> dict[str, Any]:
    return next(p for p in doc["plans"] if p["processPlanId"] == plan)["workflows"][0]["nodes"][0]


# name -> (file, how to break it, expected key path, fragment of the reason)
BREAKS: dict[str, tuple[str, Callable[[Path], None], str, str]] = {
    "bad YAML": (
        "apps.yaml",
        lambda p: p.write_text("apps:\n  - {name: x, clientId: [unclosed\n", encoding="utf-8"),
        "",
        "not valid YAML",
    ),
    "unknown key": (
        "plans.yaml",
        lambda p: edit(p, lambda d: d["plans"][0].update(colour="red")),
        "plans[0]",
        "unknown key 'colour' (allowed: ",
    ),
    "missing clientId": (
        "apps.yaml",
        lambda p: edit(p, lambda d: d["apps"][0].pop("clientId")),
        "apps[0]",
        "'clientId' is a required property",
    ),
    "duplicate processPlanId": (
        "plans.yaml",
        lambda p: edit(p, lambda d: d["plans"][1].update(processPlanId="acf42dd3")),
        "plans[1].processPlanId",
        "duplicate processPlanId 'acf42dd3'",
    ),
    "random without probability": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "e5f2b7c9").pop("probability")),
        "plans[4].workflows[0].nodes[0].probability",
        "outcome 'random' needs a probability",
    ),
    "bad validUntil": (
        "apps.yaml",
        lambda p: edit(p, lambda d: d["apps"][2].update(validUntil="31/12/2099")),
        "apps[2].validUntil",
        "'31/12/2099' is not a 'YYYY-MM-DD HH:MM:SS' time",
    ),
    "negative duration": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "acf42dd3").update(duration=-1)),
        "plans[0].workflows[0].nodes[0].duration",
        "-1",
    ),
    "unknown outcome": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "c3d9f4e5").update(outcome="explode")),
        "plans[2].workflows[0].nodes[0].outcome",
        "'explode'",
    ),
    "duplicate clientId": (
        "apps.yaml",
        lambda p: edit(p, lambda d: d["apps"][1].update(clientId=d["apps"][0]["clientId"])),
        "apps[1].clientId",
        "duplicate clientId",
    ),
    "unknown top-level key": ("apps.yaml", lambda p: edit(p, lambda d: d.update(aps=[])), "", "'aps'"),
    # Numbers JSON Schema's bounds let through (NaN compares false with everything) or that break the engine.
    "NaN duration": (  # froze the whole run engine: a worker spinning, every run of every plan stopped
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "acf42dd3").update(duration=float("nan"))),
        "plans[0].workflows[0].nodes[0].duration",
        "nan is not a finite number",
    ),
    "infinite duration": (  # the run stayed RUNNING forever
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "acf42dd3").update(duration=float("inf"))),
        "plans[0].workflows[0].nodes[0].duration",
        "inf is not a finite number",
    ),
    "duration over a year": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "acf42dd3").update(duration=365 * 86_400 + 1)),
        "plans[0].workflows[0].nodes[0].duration",
        "is greater than the maximum of 31536000",
    ),
    "NaN probability": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "e5f2b7c9").update(probability=float("nan"))),
        "plans[4].workflows[0].nodes[0].probability",
        "nan is not a finite number",
    ),
    "probability over 1": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "e5f2b7c9").update(probability=1.5)),
        "plans[4].workflows[0].nodes[0].probability",
        "1.5 is greater than the maximum of 1",
    ),
    "infinite result": (
        "plans.yaml",
        lambda p: edit(p, lambda d: _node(d, "acf42dd3").update(result=float("-inf"))),
        "plans[0].workflows[0].nodes[0].result",
        "-inf is not a finite number",
    ),
    "NaN parameter default": (
        "plans.yaml",
        lambda p: edit(p, lambda d: d["plans"][0]["workflows"][0]["mapParam"][0].update(default=float("nan"))),
        "plans[0].workflows[0].mapParam[0].default",
        "nan is not a finite number",
    ),
    "negative createTime": (
        "plans.yaml",
        lambda p: edit(p, lambda d: d["plans"][0].update(createTime=-5)),
        "plans[0].createTime",
        "-5 is less than the minimum of 0",
    ),
    "updateTime past year 9999": (
        "plans.yaml",
        lambda p: edit(p, lambda d: d["plans"][0].update(updateTime=10**15)),
        "plans[0].updateTime",
        "is greater than the maximum of 253402300799999",
    ),
    "version past a Java long": (
        "plans.yaml",
        lambda p: edit(p, lambda d: d["plans"][0].update(version=2**63)),
        "plans[0].version",
        "is greater than the maximum of 9223372036854775807",
    ),
    "integer past Python's digits": (
        "apps.yaml",
        lambda p: p.write_text(p.read_text(encoding="utf-8") + "_big: " + "9" * 5000 + "\n", encoding="utf-8"),
        "",
        "not valid YAML: Exceeds the limit (4300 digits)",
    ),
}


def test_bundled_fixtures_load(tmp_path: Path) -> None:
    catalog = load_catalog(copy_fixtures(tmp_path))
    assert len(catalog.apps) >= 11 and list(catalog.plans)[:6] == [
        "acf42dd3",
        "b7e1c0a2",
        "c3d9f4e5",
        "d4a8e6f1",
        "e5f2b7c9",
        "f6c1a3d8",
    ]
    assert catalog == load_catalog(DEFAULT_FIXTURES)


@pytest.mark.parametrize("name", list(BREAKS))
def test_broken_fixture_names_file_key_and_reason(tmp_path: Path, name: str) -> None:
    filename, breaker, key, reason = BREAKS[name]
    directory = copy_fixtures(tmp_path)
    breaker(directory / filename)
    with pytest.raises(FixtureError) as info:
        load_catalog(directory)
    error = info.value
    assert Path(error.file) == directory / filename, error
    assert error.key == key, error
    assert reason in error.reason, error
    assert str(error) == f"{directory / filename}: {key or '<top>'}: {error.reason}"


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(FixtureError) as info:
        load_catalog(tmp_path)
    assert info.value.file == str(tmp_path) and "no *.yaml fixture files found" in str(info.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="fixtures directory does not exist"):
        load_catalog(tmp_path / "nope")


def test_no_apps_at_all(tmp_path: Path) -> None:
    directory = copy_fixtures(tmp_path)
    (directory / "apps.yaml").unlink()
    with pytest.raises(FixtureError) as info:
        load_catalog(directory)
    assert info.value.key == "apps" and "no app defined" in info.value.reason


def test_duplicate_model_id_across_files_names_the_first_file(tmp_path: Path) -> None:
    directory = copy_fixtures(tmp_path)
    plans = yaml.safe_load((directory / "plans.yaml").read_text(encoding="utf-8"))["plans"]
    clone = {**plans[0], "processPlanId": "zz000001"}
    (directory / "zz_more.yaml").write_text(yaml.safe_dump({"plans": [clone]}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FixtureError) as info:
        load_catalog(directory)
    assert info.value.file.endswith("zz_more.yaml")
    assert info.value.key == "plans[0].workflows[0].processModelId"
    assert "md1606743910508" in info.value.reason and "plans.yaml" in info.value.reason


def test_a_second_file_can_add_plans(tmp_path: Path) -> None:
    directory = copy_fixtures(tmp_path)
    extra = {
        "plans": [
            {
                "processPlanId": "zz000002",
                "title": "额外预案",
                "workflows": [
                    {
                        "processModelId": "mdzz",
                        "modelName": "x",
                        "nodes": [{"nodeName": "n", "nodeType": "api", "duration": 1}],
                    }
                ],
            }
        ]
    }
    (directory / "extra.yml").write_text(yaml.safe_dump(extra, allow_unicode=True), encoding="utf-8")
    plan = load_catalog(directory).plans["zz000002"]
    assert plan.status == "DEFAULT" and plan.workflows[0].nodes[0].outcome == "succeed"


# -- the CLI reports the same message and exits 2 ----------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_server", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.mark.parametrize(
    "name", ["unknown key", "bad validUntil", "NaN duration", "infinite duration", "NaN probability"]
)
def test_check_fixtures_command_exits_2_with_the_message(tmp_path: Path, name: str) -> None:
    filename, breaker, key, reason = BREAKS[name]
    directory = copy_fixtures(tmp_path)
    breaker(directory / filename)
    result = _cli("check-fixtures", str(directory))
    assert result.returncode == 2, result
    assert f"{directory / filename}: {key}: " in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_check_fixtures_command_on_good_fixtures(tmp_path: Path) -> None:
    result = _cli("check-fixtures", str(copy_fixtures(tmp_path)))
    assert result.returncode == 0, result
    bundled = load_catalog(DEFAULT_FIXTURES)
    assert f"ok: {len(bundled.apps)} apps, {len(bundled.plans)} plans" in result.stdout


def test_serve_with_broken_fixtures_exits_2_with_the_message(tmp_path: Path) -> None:
    filename, breaker, key, reason = BREAKS["duplicate processPlanId"]
    directory = copy_fixtures(tmp_path)
    breaker(directory / filename)
    result = _cli("serve", "--port", str(free_port()), "--fixtures", str(directory))
    assert result.returncode == 2, result
    assert f"{directory / filename}: {key}: {reason}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "serving on" not in result.stderr
