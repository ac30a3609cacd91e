"""A careless operator's `dpa-mock serve` fails at once: one line naming the file, key or flag and the reason, exit 2.

Each case once started (\"serving on ...\") and then broke: a worker that died opening the state file or
binding with an out-of-range timeout, replaced and dying again forever; or a 500 on every token call.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.domain.components import Components, screen_orphans
from mock_server.fixtures import load_catalog
from mock_server.testing.server import ServerProcess, free_port

pytestmark = pytest.mark.http

POC = {"client_id": "CfjisL9AeNc066tkxSiKig==", "client_secret": "xB5hQnmlNnc+iab3RODs6yHlcHqFHAM2e4PawddAxtI="}
EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3"


def refused(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `dpa-mock serve ARGS`; assert it exits 2 within seconds with one clear line; return that line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "serve", "--quiet", "--port", str(free_port()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"serve {args} still running after 15 s; output: {out.decode(errors='replace')[-1500:]}")
    text = out.decode(errors="replace")
    assert proc.returncode == 2, text[-1500:]
    assert "Traceback" not in text and "serving on" not in text, text[-1500:]
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpa-mock: "), text[-1500:]
    return lines[0]


# -- F2: the state file ---------------------------------------------------------------------------
def test_state_in_a_missing_directory(tmp_path: Path) -> None:
    line = refused("--state", str(tmp_path / "nope" / "x.db"), cwd=tmp_path)
    assert "state:" in line and f"{tmp_path / 'nope'} does not exist" in line


def test_state_file_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "bad.db").write_text("garbage\n")
    line = refused("--state", "bad.db", cwd=tmp_path)
    assert f"state: {tmp_path / 'bad.db'} is not an SQLite database" in line


def test_state_file_of_another_application(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "app.db")
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()
    line = refused("--state", str(tmp_path / "app.db"), cwd=tmp_path)
    assert "another application (tables: customers)" in line and "not a dpa-mock state file" in line
    assert sqlite3.connect(tmp_path / "app.db").execute("SELECT name FROM sqlite_master").fetchall() == [
        ("customers",)
    ]  # looked at, not touched


def test_state_journal_beside_it_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "s.db-requests").write_bytes(b"\x00junk")
    line = refused("--state", str(tmp_path / "s.db"), cwd=tmp_path)
    assert f"{tmp_path / 's.db-requests'} is not an SQLite database" in line


@pytest.mark.parametrize("how", ["set", "config", "env"])
def test_state_that_is_a_directory(tmp_path: Path, how: str) -> None:
    """--state DIR is click's refusal; the other ways to name the state file reach the same check."""
    (tmp_path / "d").mkdir()
    (tmp_path / "c.yaml").write_text(f"state: {tmp_path / 'd'}\n")
    args = {"set": ["--set", f"state={tmp_path / 'd'}"], "config": ["--config", "c.yaml"], "env": []}[how]
    env = {"DPA_MOCK_STATE": str(tmp_path / "d")} if how == "env" else None
    line = refused(*args, cwd=tmp_path, env=env)
    assert f"{tmp_path / 'd'} is a directory" in line
    assert ("c.yaml" in line) == (how == "config") and ("DPA_MOCK_STATE" in line) == (how == "env")


def test_a_state_file_of_ours_is_served_again(tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    with ServerProcess("--state", state, "--clock", "virtual") as srv:
        run = requests.post(srv.base_url + EXECUTE, json={"processPlanId": "acf42dd3"}, headers=login(srv.base_url))
        iid = run.json()["data"][0]["planInstanceId"]
    with ServerProcess("--state", state, "--clock", "virtual") as srv:
        runs = requests.get(srv.base_url + "/__admin/runs", timeout=5).json()["data"]
        assert iid in {r["planInstanceId"] for r in runs}


# -- F3, F4: numbers beyond any sane range ---------------------------------------------------------
def test_infinite_token_ttl_in_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("token_ttl: .inf\n")
    line = refused("--config", "c.yaml", cwd=tmp_path)
    assert line == "dpa-mock: c.yaml: token_ttl: inf is out of range: must be > 0 and <= 315,360,000 seconds (10 years)"


@pytest.mark.parametrize(
    "assignment,fragment",
    [
        ("read_timeout=1e300", "read_timeout: 1e+300 is out of range: must be >= 0.001 and <= 3,600 seconds"),
        ("callback_timeout=inf", "callback_timeout: inf is out of range"),
        ("code_ttl=nan", "code_ttl: nan is out of range"),
        ("callback_backoff=0.1,inf", "callback_backoff: inf is out of range"),
        ("threads=100000", "threads: 100000 is out of range: must be >= 1 and <= 256"),
        ("json_max_number_digits=5000", "json_max_number_digits: 5000 is out of range"),
        ("jwt_secret=", "jwt_secret: 0 bytes; HS256 needs at least 32"),  # every token call was a 500
    ],
)
def test_out_of_range_set(tmp_path: Path, assignment: str, fragment: str) -> None:
    assert fragment in refused("--set", assignment, cwd=tmp_path)


def test_out_of_range_env_names_the_variable(tmp_path: Path) -> None:
    line = refused(cwd=tmp_path, env={"DPA_MOCK_READ_TIMEOUT": "1e300"})
    assert line.startswith("dpa-mock: DPA_MOCK_READ_TIMEOUT: read_timeout: 1e+300 is out of range")


def login(base: str) -> dict[str, str]:
    code = requests.get(
        base + "/api/dp/auth/oauth/authorize",
        params={"response_type": "code", "scope": "default", "client_id": POC["client_id"]},
        timeout=5,
    ).json()["data"]["code"]
    answer = requests.post(
        base + "/api/dp/auth/oauth/token", json={"code": code, "grant_type": "authorization_code", **POC}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['data']['access_token']}"}


def test_the_largest_accepted_values_serve(tmp_path: Path) -> None:
    """Whatever passes the checks starts and answers: each range's top, together."""
    tops = {
        "code_ttl": "315360000",
        "token_ttl": "315360000",
        "read_timeout": "3600",
        "callback_timeout": "3600",
        "run_start_delay": "86400",
        "callback_backoff": "86400",
        "advance_timeout": "86400",
        "lease_ttl": "3600",
        "shared_poll_interval": "60",
        "callback_retries": "100",
        "callback_workers": "256",
        "threads": "256",
        "json_max_depth": "256",
        "json_max_number_digits": "4300",
        "json_max_string_chars": str(1 << 30),
        "max_body_bytes": str(1 << 30),
        "seed": str(2**63 - 1),
    }
    args = [a for name, value in tops.items() for a in ("--set", f"{name}={value}")]
    with ServerProcess(*args, "--clock", "virtual") as srv:
        headers = login(srv.base_url)
        run = requests.post(srv.base_url + EXECUTE, json={"processPlanId": "acf42dd3"}, headers=headers, timeout=5)
        assert run.status_code == 200 and run.json()["code"] == 200, run.text
        deep = '{"processPlanId": "acf42dd3", "modelVarReq": ' + "[" * 250 + "]" * 250 + "}"
        big = '{"processPlanId": "acf42dd3", "x": ' + "9" * 4300 + "}"
        for body, code in ((deep, 400), (big, 200)):  # an unknown field is ignored, however large
            answer = requests.post(
                srv.base_url + EXECUTE,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                timeout=5,
            )
            assert answer.status_code == code and answer.json()["code"] == code, answer.text


# -- F5: a fixture number that froze the run engine -------------------------------------------------
def test_fixtures_with_a_nan_duration(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures", fixtures)
    plans = fixtures / "plans.yaml"
    plans.write_text(
        plans.read_text(encoding="utf-8").replace("duration: 0.5,", "duration: .nan,", 1), encoding="utf-8"
    )
    line = refused("--fixtures", str(fixtures), cwd=tmp_path)
    assert line == f"dpa-mock: {plans}: plans[0].workflows[0].nodes[0].duration: nan is not a finite number " + (
        "(.nan and .inf are refused)"
    )


# -- F16: a state file whose plans left the fixtures ----------------------------------------------
def _orphan_records() -> dict[str, dict[str, dict[str, Any]]]:
    run = {"plan_id": "gone0001", "nodes": [["done", "", 0.0, 1.0]], "status": "SUCCESS"}
    scene = {"plan_id": "gone0001", "active": True, "next_fire": 10.0, "model_var_req": None}
    return {
        "run": {"in1": run, "in2": {**run}, "in3": {**run, "plan_id": "acf42dd3", "nodes": []}},
        "scene": {
            "in4": scene,
            "in5": {**scene, "active": False, "next_fire": None},  # already inactive: no word about it
            "in6": {**scene, "plan_id": "acf42dd3", "model_var_req": [{"modelId": "nope", "mapParam": {}}]},
        },
        "meta": {"clock-virtual": {"offset": 0}},
    }


def test_orphaned_runs_and_scenes_are_named_once_per_plan_and_scenes_restored_inactive() -> None:
    catalog = load_catalog()
    warnings: list[str] = []
    records = _orphan_records()
    screened = screen_orphans(records, catalog, warnings.append)
    assert screened["run"] == records["run"]  # the run engine itself leaves out runs it cannot serve
    assert screened["meta"] == records["meta"]
    assert screened["scene"]["in4"] == {**records["scene"]["in4"], "active": False, "next_fire": None}
    assert screened["scene"]["in5"] == records["scene"]["in5"]
    assert screened["scene"]["in6"]["active"] is False
    assert records["scene"]["in4"]["active"] is True  # the store's records are not changed
    assert warnings == [
        "stored state of plan 'acf42dd3', which has other nodes in the fixtures now: 1 run (in3) kept in the "
        "state file, frozen; 1 active scene (in6) kept, not fired (shown inactive) (serve fixtures that "
        "have the plan as it was to carry on)",
        "stored state of plan 'gone0001', which is no longer in the fixtures: 2 runs (in1, in2) kept in the "
        "state file, frozen; 1 active scene (in4) kept, not fired (shown inactive) (serve fixtures that "
        "have the plan as it was to carry on)",
    ]


def test_a_registry_with_the_catalog_warns_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    class Seen:
        kind = "scene"

        def __init__(self) -> None:
            self.restored: dict[str, dict[str, Any]] = {}

        def reset(self) -> None: ...

        def restore(self, records: dict[str, dict[str, Any]]) -> None:
            self.restored = records

        def apply(self, key: str, record: dict[str, Any] | None) -> None: ...

    components = Components(load_catalog())
    seen = components.register(Seen())
    with caplog.at_level(logging.WARNING, logger="dpa_mock.engine"):
        components.restore(_orphan_records())
        components.restore(_orphan_records())  # a reload (lease change, another process's reset)
    assert seen.restored["in4"]["active"] is False
    assert [r.getMessage()[:40] for r in caplog.records] == [
        "stored state of plan 'acf42dd3', which h",
        "stored state of plan 'gone0001', which i",
    ]
    plain = Components()  # no catalog: records pass untouched
    plain.register(seen)
    plain.restore(_orphan_records())
    assert seen.restored["in4"]["active"] is True


def _renamed_fixtures(tmp_path: Path) -> Path:
    """The bundled fixtures with plan acf42dd3 renamed: to the state, acf42dd3 has left them."""
    renamed = tmp_path / "renamed"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures", renamed)
    plans = renamed / "plans.yaml"
    text = plans.read_text(encoding="utf-8").replace("processPlanId: acf42dd3", "processPlanId: zzz00001")
    plans.write_text(text, encoding="utf-8")
    return renamed


def _a_running_run_and_a_scene(state: str) -> str:
    """Serve `state`, leave in it a RUNNING run and an active 5 s cycle scene of acf42dd3; the run's id."""
    with ServerProcess("--state", state, "--clock", "virtual") as srv:
        headers = login(srv.base_url)
        run = requests.post(srv.base_url + EXECUTE, json={"processPlanId": "acf42dd3"}, headers=headers, timeout=5)
        scene = requests.post(
            srv.base_url + "/api/dpa/process/processPlan/saveTimingParam",
            data={
                "processPlanId": "acf42dd3",
                "callbackUrl": "http://127.0.0.1:9/",
                "dimension": "seconds",
                "intervals": "5",
                "executeStrategy": "cycle",
                "sceneName": "c",
            },
            headers=headers,
            timeout=5,
        )
        assert scene.json()["code"] == 200, scene.text
        requests.post(srv.base_url + "/__admin/clock/advance", json={"seconds": 0.3}, timeout=30)
        iid = str(run.json()["data"][0]["planInstanceId"])
        assert requests.get(srv.base_url + f"/__admin/runs/{iid}", timeout=5).json()["data"]["status"] == "RUNNING"
        return iid


def _advance(base: str, seconds: float) -> None:
    answer = requests.post(base + "/__admin/clock/advance", json={"seconds": seconds}, timeout=30)
    assert answer.json()["code"] == 200, answer.text


def test_restart_with_fixtures_that_lost_a_plan(tmp_path: Path) -> None:
    """Runs and scenes of a plan the fixtures no longer have: one warning at start-up, the scene is shown
    inactive and never fires (before: a KeyError traceback per firing while advance answered 200), and with
    the plan back in the fixtures the run and the scene carry on."""
    state, log = str(tmp_path / "s.db"), tmp_path / "serve.log"
    iid = _a_running_run_and_a_scene(state)
    renamed = _renamed_fixtures(tmp_path)
    with ServerProcess("--state", state, "--clock", "virtual", "--fixtures", str(renamed), log=log) as srv:
        _advance(srv.base_url, 30)
        scenes = requests.get(srv.base_url + "/__admin/scenes", timeout=5).json()["data"]
        assert [(s["processPlanId"], s["active"], s["firedCount"]) for s in scenes] == [("acf42dd3", False, 0)]
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "KeyError" not in text, text[-2000:]
    warnings = [line for line in text.splitlines() if "stored state of plan 'acf42dd3'" in line]
    assert len(warnings) == 1 and f"1 run ({iid})" in warnings[0] and "1 active scene" in warnings[0], text
    with ServerProcess("--state", state, "--clock", "virtual") as srv:  # the plan is back
        _advance(srv.base_url, 30)
        assert requests.get(srv.base_url + f"/__admin/runs/{iid}", timeout=5).json()["data"]["status"] == "SUCCESS"
        scenes = requests.get(srv.base_url + "/__admin/scenes", timeout=5).json()["data"]
        assert [s["active"] for s in scenes] == [True] and scenes[0]["firedCount"] > 0


def test_runs_of_a_lost_plan_stay_readable_and_frozen(tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    iid = _a_running_run_and_a_scene(state)
    renamed = _renamed_fixtures(tmp_path)
    with ServerProcess("--state", state, "--clock", "virtual", "--fixtures", str(renamed)) as srv:
        before = requests.get(srv.base_url + f"/__admin/runs/{iid}", timeout=5).json()
        assert before["code"] == 200 and before["data"]["status"] == "RUNNING", before
        _advance(srv.base_url, 30)
        assert requests.get(srv.base_url + f"/__admin/runs/{iid}", timeout=5).json() == before  # frozen
        assert [
            r["planInstanceId"] for r in requests.get(srv.base_url + "/__admin/runs", timeout=5).json()["data"]
        ] == [iid]
        resume = requests.post(srv.base_url + f"/__admin/runs/{iid}/resume", timeout=5).json()
        assert resume["code"] == 400 and "no longer in the fixtures" in resume["message"], resume
