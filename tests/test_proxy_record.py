"""`--record DIR`: a second emulator serving the recording answers interfaces 2, 3 and 6 as the original did."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from mock_server.fixtures import DEFAULT_FIXTURES
from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import EXECUTE, LIST_PLANS, MODELS, OUT_PARAMS, POC
from tests.plugins.engine import http_admin, http_advance, http_login
from tests.plugins.proxy import ROOT, proxy_process

pytestmark = pytest.mark.http
PLANS = ("acf42dd3", "b7e1c0a2", "c3d9f4e5")
INPUTS = {"b7e1c0a2": [{"mapParam": {"TARGET_HOST": "db01", "REPORT_FORMAT": "html"}}]}


def _data(reply: requests.Response) -> Any:
    body = reply.json()
    assert body["code"] == 200, body
    return body["data"]


def _exercise(base: str, admin_base: str, headers: dict[str, str], callback: str) -> dict[str, Any]:
    """Interfaces 2, 3, 5 and 6 for PLANS (runs driven to their end through `admin_base`); the answers."""
    seen: dict[str, Any] = {"list": _data(requests.get(base + LIST_PLANS, headers=headers, timeout=10))}
    runs = {}
    for plan in PLANS:
        seen[f"models {plan}"] = _data(
            requests.post(base + MODELS, headers=headers, timeout=10, json={"processPlanId": plan})
        )
        body: dict[str, Any] = {"processPlanId": plan, "callbackUrl": callback, "modelVarReq": INPUTS.get(plan, [])}
        runs[plan] = _data(requests.post(base + EXECUTE.format(plan), headers=headers, json=body, timeout=10))[0][
            "planInstanceId"
        ]
    http_advance(admin_base, 60)
    for plan, instance in runs.items():
        outputs = _data(
            requests.get(
                base + OUT_PARAMS,
                headers=headers,
                timeout=10,
                params={"processPlanId": plan, "planInstanceId": instance},
            )
        )
        # The instance id differs between two emulators; everything else must not.
        seen[f"outputs {plan}"] = [
            {**w, "mapParam": [{**p, "result": p["result"].replace(instance, "<id>")} for p in w["mapParam"]]}
            for w in outputs
        ]
        seen[f"status {plan}"] = http_admin(admin_base, "GET", f"/__admin/runs/{instance}")["status"]
    return seen


def _check_fixtures(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_server", "check-fixtures", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_a_recording_served_by_a_second_emulator_answers_as_the_original(
    live: ServerProcess, receiver: CallbackReceiver, tmp_path: Path
) -> None:
    recording = tmp_path / "recorded"
    with proxy_process(live.base_url, "--record", str(recording), "--quiet") as proxy:
        headers = http_login(proxy.base_url)
        original = _exercise(proxy.base_url, live.base_url, headers, receiver.url)
        assert receiver.wait_for(lambda d: len(d) >= 9, timeout=10)  # three runs, three statuses each
    assert original["status c3d9f4e5"] == "FAIL" and original["status acf42dd3"] == "SUCCESS"
    assert any("db01" in p["result"] for w in original["outputs b7e1c0a2"] for p in w["mapParam"])

    text = (recording / "recorded-plans.yaml").read_text(encoding="utf-8")
    for secret in (POC["client_secret"], headers["Authorization"].split()[1], POC["client_id"]):
        assert secret not in text  # no apps, no secrets, no tokens
    assert "apps:" not in text

    # Without an apps file, check-fixtures says exactly that.
    missing = _check_fixtures(recording)
    assert missing.returncode == 2 and "no app defined" in missing.stderr and "apps.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr
    shutil.copy(DEFAULT_FIXTURES / "apps.yaml", recording / "apps.yaml")
    ok = _check_fixtures(recording)
    assert ok.returncode == 0, ok.stderr
    assert f"{len(original['list'])} plans" in ok.stdout

    with ServerProcess("--clock", "virtual", "--fixtures", str(recording)) as second, CallbackReceiver() as other:
        replay = _exercise(second.base_url, second.base_url, http_login(second.base_url), other.url)
    assert replay == original


def test_re_recording_merges_plans_and_users(live: ServerProcess, tmp_path: Path) -> None:
    recording = tmp_path / "recorded"
    with proxy_process(live.base_url, "--record", str(recording), "--quiet") as proxy:
        first = http_login(proxy.base_url)
        listed = _data(requests.get(proxy.base_url + LIST_PLANS, headers=first, timeout=10))
        requests.post(proxy.base_url + MODELS, headers=first, json={"processPlanId": "acf42dd3"}, timeout=10)
    before = yaml.safe_load((recording / "recorded-plans.yaml").read_text(encoding="utf-8"))["plans"]
    with proxy_process(live.base_url, "--record", str(recording), "--quiet") as proxy:
        guest = http_login(proxy.base_url, user_id="U100002")
        listed_by_guest = _data(requests.get(proxy.base_url + LIST_PLANS, headers=guest, timeout=10))
        _data(requests.get(proxy.base_url + LIST_PLANS, headers=first, timeout=10))  # again: nothing duplicated
    after = yaml.safe_load((recording / "recorded-plans.yaml").read_text(encoding="utf-8"))["plans"]
    ids = [p["processPlanId"] for p in after]
    assert len(ids) == len(set(ids)) == len({p["processPlanId"] for p in listed + listed_by_guest})
    by_id = {p["processPlanId"]: p for p in after}
    assert by_id["acf42dd3"]["visibleTo"] == ["U100000", "U100002"]
    assert by_id["f6c1a3d8"]["visibleTo"] == ["U100002"]  # only the guest's traffic saw it
    # What the first session learned about the workflows survives the second.
    assert by_id["acf42dd3"]["workflows"] == {p["processPlanId"]: p for p in before}["acf42dd3"]["workflows"]
    assert by_id["acf42dd3"]["workflows"][0]["processModelId"] == "md1606743910508"
    shutil.copy(DEFAULT_FIXTURES / "apps.yaml", recording / "apps.yaml")
    assert _check_fixtures(recording).returncode == 0


def test_check_fixtures_names_a_recorded_user_no_app_has(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_FIXTURES / "apps.yaml", tmp_path / "apps.yaml")
    (tmp_path / "recorded-plans.yaml").write_text(
        yaml.safe_dump(
            {
                "plans": [
                    {
                        "processPlanId": "p1",
                        "title": "t",
                        "visibleTo": ["U100000", "staging-user-7"],
                        "workflows": [
                            {
                                "processModelId": "m1",
                                "modelName": "w",
                                "nodes": [{"nodeName": "n", "nodeType": "api", "duration": 0.5}],
                            }
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    result = _check_fixtures(tmp_path)
    assert result.returncode == 2
    assert "recorded-plans.yaml: plans[0].visibleTo[1]: user 'staging-user-7' is not a user of any app" in result.stderr
