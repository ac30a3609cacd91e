"""The service against an emulated platform: runs that succeed, fail, wait for approval, repeat, or fire later."""

from __future__ import annotations

from typing import Any

from integrator_service.tests.conftest import Service


def statuses(order: dict[str, Any]) -> list[str]:
    return [h["status"] for h in order["history"]]


def test_remediation_runs_the_plan_and_records_every_status(service: Service, dpa_platform: Any) -> None:
    started = service.post("/orders/1001/remediate")
    assert started.status_code == 202, started.text
    instance_id = started.json()["planInstanceId"]
    # The platform ran the configured plan and will call this service back about this order.
    run = dpa_platform.run(instance_id)
    assert run["processPlanId"] == "acf42dd3"
    assert run["callbackUrl"] == f"{service.url}/dpa/callback?orderId=1001"

    dpa_platform.wait_for_callback(instance_id, "DEFAULT")
    assert service.order("1001")["status"] == "DEFAULT"

    dpa_platform.advance(seconds=5)  # the plan takes about 1.5 s of platform time
    dpa_platform.wait_for_callback(instance_id, "SUCCESS")
    order = service.order("1001")
    assert order["status"] == "SUCCESS"
    assert order["planInstanceId"] == instance_id
    assert statuses(order) == ["DEFAULT", "RUNNING", "SUCCESS"]
    # Every callback was acknowledged at the first attempt: the service answered exactly SUCCESS.
    assert [len(d["attempts"]) for d in dpa_platform.callbacks(instance_id)] == [1, 1, 1]

    output = service.get("/orders/1001/output").json()
    assert list(output[0]["outputs"]) == ["准备工作目录", "调用健康检查"]  # api and shell nodes report output


def test_a_failing_plan_leaves_the_order_failed_with_the_node_error(service: Service, dpa_platform: Any) -> None:
    instance_id = service.post("/orders/1002/remediate", json={"planId": "c3d9f4e5"}).json()["planInstanceId"]
    dpa_platform.advance(seconds=10)
    dpa_platform.wait_for_callback(instance_id, "FAIL")
    order = service.order("1002")
    assert order["status"] == "FAIL"
    assert statuses(order) == ["DEFAULT", "RUNNING", "FAIL"]
    outputs = service.get("/orders/1002/output").json()[0]["outputs"]
    assert "lost connection" in outputs["导出数据"]


def test_a_pending_run_resumed_by_the_approver_completes(service: Service, dpa_platform: Any) -> None:
    instance_id = service.post("/orders/1003/remediate", json={"planId": "d4a8e6f1"}).json()["planInstanceId"]
    dpa_platform.advance(seconds=5)
    dpa_platform.wait_for_callback(instance_id, "PENDING")
    assert service.order("1003")["status"] == "PENDING"

    dpa_platform.advance(seconds=60)  # nothing moves while the approval is outstanding
    assert service.order("1003")["status"] == "PENDING"

    dpa_platform.resume(instance_id)  # what the approver does in the platform's UI
    dpa_platform.advance(seconds=5)
    dpa_platform.wait_for_callback(instance_id, "SUCCESS")
    # RUNNING comes twice (before and after the approval); the service keeps both.
    assert statuses(service.order("1003")) == ["DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"]


def test_a_repeated_callback_is_acknowledged_and_recorded_once(service: Service, dpa_platform: Any) -> None:
    instance_id = service.post("/orders/1004/remediate").json()["planInstanceId"]
    dpa_platform.advance(seconds=5)
    delivered = {d["status"]: d["attempts"][-1] for d in dpa_platform.callbacks(instance_id)}
    before = service.order("1004")

    # Send again exactly what the platform sent, as it does when an acknowledgement gets lost on the way.
    for status in ("SUCCESS", "SUCCESS", "RUNNING"):
        repeat = service.post(delivered[status]["url"].removeprefix(service.url), json=delivered[status]["payload"])
        assert (repeat.status_code, repeat.text) == (200, "SUCCESS")
    assert service.order("1004") == before
    assert statuses(before) == ["DEFAULT", "RUNNING", "SUCCESS"]


def test_a_scheduled_run_fires_when_its_time_comes(service: Service, dpa_platform: Any) -> None:
    scheduled = service.post("/orders/1005/schedule", json={"afterSeconds": 120})
    assert scheduled.status_code == 202, scheduled.text
    scene_id = scheduled.json()["sceneId"]
    [scene] = [s for s in dpa_platform.scenes() if s["instanceId"] == scene_id]
    assert (scene["executeStrategy"], scene["dimension"], scene["intervals"]) == ("single", "seconds", 120)
    assert scene["nextFireTime"] - scene["createTime"] == 120_000
    # The scene was saved form-encoded, as interface 4 requires.
    [saved] = [r for r in dpa_platform.journal() if r["path"].endswith("saveTimingParam")]
    assert saved["body"]["callbackUrl"] == f"{service.url}/dpa/callback?orderId=1005"

    dpa_platform.advance(seconds=119)
    assert dpa_platform.runs(plan_id="acf42dd3") == []
    assert service.get("/orders/1005").json()["status"] is None

    dpa_platform.advance(seconds=10)
    [run] = dpa_platform.runs(plan_id="acf42dd3")
    assert run["sceneId"] == scene_id
    dpa_platform.wait_for_callback(run["planInstanceId"], "SUCCESS")
    order = service.order("1005")
    assert (order["planInstanceId"], order["status"]) == (run["planInstanceId"], "SUCCESS")


def test_platform_errors_surface_as_502_and_the_next_call_works(service: Service, dpa_platform: Any) -> None:
    dpa_platform.fault(method="POST", path="opExecutePlanByApi", code=503, times=1, message="platform busy")
    refused = service.post("/orders/1006/remediate")
    assert refused.status_code == 502
    assert refused.json() == {"error": "platform busy", "platformCode": 503}
    assert service.post("/orders/1006/remediate").status_code == 202


def test_an_expired_token_is_renewed_without_the_caller_noticing(service: Service, dpa_platform: Any) -> None:
    first = service.post("/orders/1007/remediate").json()["planInstanceId"]
    dpa_platform.advance(seconds=3 * 3600)  # past the 2-hour token lifetime
    second = service.post("/orders/1007/remediate")
    assert second.status_code == 202, second.text
    assert second.json()["planInstanceId"] != first
    tokens = [r for r in dpa_platform.journal() if r["path"].endswith("/oauth/token")]
    assert len(tokens) == 2  # logged in once at first use and once more after the 403


def test_plan_inputs_reach_the_run_and_a_missing_one_is_refused(service: Service, dpa_platform: Any) -> None:
    missing = service.post("/orders/1008/remediate", json={"planId": "b7e1c0a2"})
    assert missing.status_code == 502
    assert missing.json()["platformCode"] == 400 and "TARGET_HOST" in missing.json()["error"]

    started = service.post("/orders/1008/remediate", json={"planId": "b7e1c0a2", "params": {"TARGET_HOST": "db-01"}})
    assert started.status_code == 202, started.text
    dpa_platform.advance(seconds=10)
    dpa_platform.wait_for_callback(started.json()["planInstanceId"], "SUCCESS")
    outputs = service.get("/orders/1008/output").json()[0]["outputs"]
    assert outputs["连通性检查"] == "ping db-01: 0% loss"
