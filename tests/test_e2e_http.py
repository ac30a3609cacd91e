"""End to end over real HTTP: `dpa-mock serve` as a process, a real callback receiver, the document's requests."""

from __future__ import annotations

import collections
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import OUT_PARAMS, SCENE
from tests.plugins.engine import http_admin, http_advance, http_execute, http_login, statuses

pytestmark = pytest.mark.http


def run_of(base: str, instance_id: str) -> dict[str, Any]:
    return http_admin(base, "GET", f"/__admin/runs/{instance_id}")


def arrived(n: int) -> Any:
    return lambda deliveries: len(deliveries) >= n


def test_run_to_success_with_callbacks(live: ServerProcess, receiver: CallbackReceiver) -> None:
    headers = http_login(live.base_url)
    instance = http_execute(live.base_url, headers, callbackUrl=receiver.url)
    assert receiver.wait_for(arrived(1), timeout=5), "DEFAULT is due at once and must go out without an advance"
    http_advance(live.base_url, 5)
    assert receiver.wait_for(arrived(3), timeout=10)
    assert [d.json for d in receiver.deliveries] == [
        {"planInstanceId": instance, "processPlanId": "acf42dd3", "status": s}
        for s in ("DEFAULT", "RUNNING", "SUCCESS")
    ]
    assert run_of(live.base_url, instance)["status"] == "SUCCESS"
    out = requests.get(
        live.base_url + OUT_PARAMS,
        headers=headers,
        timeout=10,
        params={"processPlanId": "acf42dd3", "planInstanceId": instance},
    ).json()
    assert [p["nodeName"] for p in out["data"][0]["mapParam"]] == ["准备工作目录", "调用健康检查"]


def test_run_to_fail_with_callbacks(live: ServerProcess, receiver: CallbackReceiver) -> None:
    instance = http_execute(live.base_url, http_login(live.base_url), "c3d9f4e5", callbackUrl=receiver.url)
    http_advance(live.base_url, 5)
    assert receiver.wait_for(arrived(3), timeout=10)
    assert statuses(receiver.for_instance(instance)) == ["DEFAULT", "RUNNING", "FAIL"]
    assert run_of(live.base_url, instance)["status"] == "FAIL"


def test_pending_resume_success_with_callbacks(live: ServerProcess, receiver: CallbackReceiver) -> None:
    instance = http_execute(live.base_url, http_login(live.base_url), "d4a8e6f1", callbackUrl=receiver.url)
    http_advance(live.base_url, 3600)
    assert receiver.wait_for(arrived(3), timeout=10)
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "PENDING"]
    assert run_of(live.base_url, instance)["status"] == "PENDING"
    assert http_admin(live.base_url, "POST", f"/__admin/runs/{instance}/resume")["status"] == "RUNNING"
    http_advance(live.base_url, 5)
    assert receiver.wait_for(arrived(5), timeout=10)
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"]


def test_receiver_failing_twice_then_acking(live: ServerProcess, receiver: CallbackReceiver) -> None:
    receiver.fail(times=2)
    instance = http_execute(live.base_url, http_login(live.base_url), callbackUrl=receiver.url)
    http_advance(live.base_url, 5)
    assert receiver.wait_for(arrived(5), timeout=10)
    assert statuses(receiver.deliveries) == ["DEFAULT"] * 3 + ["RUNNING", "SUCCESS"]
    ledger = http_admin(live.base_url, "GET", "/__admin/callbacks", params={"planInstanceId": instance})
    assert [[a["verdict"] for a in d["attempts"]] for d in ledger] == [["retry", "retry", "ack"], ["ack"], ["ack"]]


def test_receiver_never_acking_gets_four_attempts(live: ServerProcess, receiver: CallbackReceiver) -> None:
    receiver.fail()
    instance = http_execute(live.base_url, http_login(live.base_url), "c3d9f4e5", callbackUrl=receiver.url)
    http_advance(live.base_url, 10)
    assert receiver.wait_for(arrived(12), timeout=10)
    http_advance(live.base_url, 60)
    time.sleep(0.2)  # nothing more may arrive
    assert statuses(receiver.deliveries) == ["DEFAULT"] * 4 + ["RUNNING"] * 4 + ["FAIL"] * 4
    ledger = http_admin(live.base_url, "GET", "/__admin/callbacks", params={"planInstanceId": instance})
    assert [(d["state"], len(d["attempts"])) for d in ledger] == [("gave_up", 4)] * 3


def test_200_concurrent_executions_all_finish_and_every_status_arrives_once(
    live: ServerProcess, receiver: CallbackReceiver
) -> None:
    headers = http_login(live.base_url)
    plans = ["acf42dd3", "c3d9f4e5", "e5f2b7c9"]
    local = threading.local()

    def start(i: int) -> str:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return http_execute(live.base_url, headers, plans[i % 3], session=local.session, callbackUrl=receiver.url)

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(start, range(200)))
    assert len(set(ids)) == 200
    http_advance(live.base_url, 5)
    runs = {r["planInstanceId"]: r for r in http_admin(live.base_url, "GET", "/__admin/runs")}
    assert set(ids) <= set(runs)
    assert all(runs[i]["status"] in ("SUCCESS", "FAIL") for i in ids)
    assert receiver.wait_for(arrived(600), timeout=30), len(receiver.deliveries)
    time.sleep(0.2)  # a duplicate would show up now
    by_instance: dict[str, list[str]] = collections.defaultdict(list)
    for delivery in receiver.deliveries:
        by_instance[delivery.json["planInstanceId"]].append(delivery.json["status"])
    assert set(by_instance) == set(ids)
    for i in ids:
        assert by_instance[i] == ["DEFAULT", "RUNNING", runs[i]["status"]], i
    assert len(receiver.deliveries) == 600


def test_the_documents_execute_request_verbatim(live: ServerProcess, receiver: CallbackReceiver) -> None:
    headers = http_login(live.base_url)
    raw = (
        '{"processPlanId":"acf42dd3","callbackUrl":"' + receiver.url + '","modelVarReq":[{"modelId":'
        '"md1606743910508","mapParam":{"DPA_MODEL_WORKDIR":"/opt/dpa/doc"}}]}'
    )
    response = requests.post(
        live.base_url + "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3",
        data=raw.encode(),
        timeout=10,
        headers={**headers, "Content-Type": "application/json"},
    )
    body = response.json()
    assert response.status_code == 200 and body["code"] == 200 and body["message"] == "success", body
    instance = body["data"][0]["planInstanceId"]
    assert body["data"] == [{"processPlanId": "acf42dd3", "planInstanceId": instance}]
    http_advance(live.base_url, 5)
    assert receiver.wait_for(arrived(3), timeout=10)
    assert statuses(receiver.for_instance(instance)) == ["DEFAULT", "RUNNING", "SUCCESS"]
    out = requests.get(
        live.base_url + OUT_PARAMS,
        headers=headers,
        timeout=10,
        params={"processPlanId": "acf42dd3", "planInstanceId": instance},
    ).json()
    assert out["data"][0]["mapParam"][0]["result"] == "mkdir -p /opt/dpa/doc && echo ok"


def test_the_schedule_request_as_a_form(live: ServerProcess, receiver: CallbackReceiver) -> None:
    headers = http_login(live.base_url)
    form = {
        "processPlanId": "acf42dd3",
        "callbackUrl": receiver.url,
        "dimension": "minutes",
        "intervals": "5",
        "executeStrategy": "cycle",
        "sceneName": "每5分钟巡检",
        "modelVarReq": json.dumps(
            [{"modelId": "md1606743910508", "mapParam": {"DPA_MODEL_WORKDIR": "/opt/dpa/scene"}}]
        ),
    }
    response = requests.post(live.base_url + SCENE, headers=headers, data=form, timeout=10)
    assert response.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    body = response.json()
    assert body["code"] == 200, body
    assert body["data"]["modelId"] == "md1606743910508" and body["data"]["status"] == "DEFAULT"
    scene_id = body["data"]["instanceId"]
    http_advance(live.base_url, 299)
    assert http_admin(live.base_url, "GET", "/__admin/runs") == []
    http_advance(live.base_url, 3)
    runs = http_admin(live.base_url, "GET", "/__admin/runs")
    assert len(runs) == 1 and runs[0]["sceneId"] == scene_id and runs[0]["status"] == "SUCCESS"
    assert runs[0]["inputs"]["md1606743910508"]["DPA_MODEL_WORKDIR"] == "/opt/dpa/scene"
    assert receiver.wait_for(arrived(3), timeout=10)
    assert statuses(receiver.for_instance(runs[0]["planInstanceId"])) == ["DEFAULT", "RUNNING", "SUCCESS"]


def test_real_clock_server_runs_acf42dd3_in_wall_time(receiver: CallbackReceiver, tmp_path: Any) -> None:
    with ServerProcess(log=tmp_path / "real.log") as server:
        assert http_admin(server.base_url, "GET", "/__admin/clock")["mode"] == "real"
        instance = http_execute(server.base_url, http_login(server.base_url), callbackUrl=receiver.url)
        assert receiver.wait_for(arrived(3), timeout=5), statuses(receiver.deliveries)
        assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"]
        assert run_of(server.base_url, instance)["status"] == "SUCCESS"
        first, last = receiver.deliveries[0].at, receiver.deliveries[-1].at
        assert last - first >= 1.2  # the fixture's 1.5 s passed in wall time, not at once


def test_callbacks_addressed_to_the_server_itself_do_not_stall_an_advance(live: ServerProcess) -> None:
    """With one server thread busy in the advance, a callback to the server's own address is answered
    in-process (a 404 envelope, so retried and given up) instead of waiting out its timeouts."""
    headers = http_login(live.base_url)
    instance = http_execute(live.base_url, headers, callbackUrl=f"http://127.0.0.1:{live.port}/not/a/receiver")
    started = time.monotonic()
    advanced = requests.post(live.base_url + "/__admin/clock/advance", json={"seconds": 10}, timeout=30).json()
    assert advanced["code"] == 200
    assert time.monotonic() - started < 5  # three statuses × four attempts would be 24 s of timeouts
    ledger = requests.get(live.base_url + "/__admin/callbacks", params={"planInstanceId": instance}, timeout=5).json()[
        "data"
    ]
    assert [d["status"] for d in ledger] == ["DEFAULT", "RUNNING", "SUCCESS"]
    assert all(d["state"] == "gave_up" and len(d["attempts"]) == 4 for d in ledger)
    assert all(a["httpStatus"] == 404 and a["verdict"] in ("retry", "gave_up") for d in ledger for a in d["attempts"])


def test_a_server_process_started_twice_is_refused_and_the_first_still_stops(live: ServerProcess) -> None:
    # `with srv.start():` used to start a second server and stop only that one, leaving the first running.
    assert live.proc is not None
    first = live.proc
    with pytest.raises(RuntimeError, match="already started"):
        live.start()
    assert live.proc is first and first.poll() is None
