"""Interface 6: output parameters of finished api/shell nodes only, per workflow, and who may read them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.emulator import DOC_CLIENT, OUT_PARAMS, Api


def outputs(api: Api, headers: dict[str, str], plan_id: str, instance_id: str) -> list[dict[str, Any]]:
    body = api.out_params(headers, plan_id, instance_id).get_json()
    assert body["code"] == 200 and body["message"] == "success", body
    return body["data"]


def node_results(data: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    return [[(p["nodeName"], p["result"]) for p in wf["mapParam"]] for wf in data]


def test_acf42dd3_reports_nodes_as_they_finish_and_never_the_end_node(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth)
    assert outputs(api, auth, "acf42dd3", instance) == [
        {"modelName": "工作流名称", "processModelId": "md1606743910508", "mapParam": []}
    ]
    api.advance(1.0)  # the shell node finished at 0.7 s, the api node runs until 1.2 s
    assert node_results(outputs(api, auth, "acf42dd3", instance)) == [
        [("准备工作目录", "mkdir -p /opt/dpa/work && echo ok")]
    ]
    api.advance(0.35)  # api node done at 1.2 s, the `end` node still running until 1.5 s
    mid = node_results(outputs(api, auth, "acf42dd3", instance))
    api.advance(5)
    assert api.run(instance)["status"] == "SUCCESS"
    final = node_results(outputs(api, auth, "acf42dd3", instance))
    expected = [
        [
            ("准备工作目录", "mkdir -p /opt/dpa/work && echo ok"),
            ("调用健康检查", '{"status":"UP","workdir":"/opt/dpa/work"}'),
        ]
    ]
    assert mid == expected and final == expected  # the finished `end` node adds nothing


def test_b7e1c0a2_lists_both_workflows_in_order_without_the_script_node(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(
        auth, "b7e1c0a2", modelVarReq=[{"modelId": "md1606743910601", "mapParam": {"TARGET_HOST": "10.0.0.8"}}]
    )
    api.advance(3.5)  # first workflow done at 3.2 s, the script node runs until 4.2 s
    data = outputs(api, auth, "b7e1c0a2", instance)
    assert [(wf["modelName"], wf["processModelId"]) for wf in data] == [
        ("主机巡检", "md1606743910601"),
        ("报告生成", "md1606743910602"),
    ]
    assert node_results(data) == [
        [("连通性检查", "ping 10.0.0.8: 0% loss"), ("磁盘检查", "df -h on 10.0.0.8 (basic): 42% used")],
        [],
    ]
    api.advance(1.0)  # script node finished at 4.2 s: still nothing for it
    assert node_results(outputs(api, auth, "b7e1c0a2", instance))[1] == []
    api.advance(5)
    assert api.run(instance)["status"] == "SUCCESS"
    assert node_results(outputs(api, auth, "b7e1c0a2", instance))[1] == [("生成报告", f"/reports/{instance}.pdf")]


def test_a_failed_node_is_reported_with_its_result_and_later_nodes_are_not(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth, "c3d9f4e5")
    api.advance(5)
    assert api.run(instance)["status"] == "FAIL"
    assert node_results(outputs(api, auth, "c3d9f4e5", instance)) == [
        [("锁定表", "locked orders"), ("导出数据", "mysqldump: error 2013 lost connection")]
    ]


def test_approval_node_is_never_reported(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth, "d4a8e6f1", modelVarReq=[{"mapParam": {"CHANGE_ID": "CHG-42"}}])
    api.advance(10)
    assert api.run(instance)["status"] == "PENDING"
    assert node_results(outputs(api, auth, "d4a8e6f1", instance)) == [[("变更预检", "precheck CHG-42 ok")]]
    assert api.client.post(f"/__admin/runs/{instance}/resume").get_json()["code"] == 200
    api.advance(5)
    assert api.run(instance)["status"] == "SUCCESS"
    assert node_results(outputs(api, auth, "d4a8e6f1", instance)) == [
        [("变更预检", "precheck CHG-42 ok"), ("执行变更", "applied CHG-42")]
    ]


def _error(response: Any, code: int) -> str:
    body = response.get_json()
    assert response.status_code == code and body["code"] == code and body["data"] is None, body
    return str(body["message"])


def test_unknown_instance_is_404(api: Api, auth: dict[str, str]) -> None:
    assert "in0000000000001" in _error(api.out_params(auth, "acf42dd3", "in0000000000001"), 404)


def test_instance_queried_under_another_plan_is_404(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth)
    api.advance(5)
    assert "acf42dd3" in _error(api.out_params(auth, "c3d9f4e5", instance), 404)


def test_unknown_plan_is_404(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth)
    _error(api.out_params(auth, "ffffffff", instance), 404)


@pytest.mark.parametrize("who", ["user-1", "other-app"])
def test_another_users_instance_is_403(api: Api, auth: dict[str, str], who: str) -> None:
    instance = api.start(auth)
    api.advance(5)
    other = api.login(user_id="1") if who == "user-1" else api.login(app=DOC_CLIENT)
    _error(api.out_params(other, "acf42dd3", instance), 403)
    assert outputs(api, auth, "acf42dd3", instance)[0]["mapParam"]  # the owner still reads it


@pytest.mark.parametrize("missing", ["processPlanId", "planInstanceId"])
def test_missing_query_parameter_is_400_naming_it(api: Api, auth: dict[str, str], missing: str) -> None:
    instance = api.start(auth)
    query = {"processPlanId": "acf42dd3", "planInstanceId": instance}
    del query[missing]
    assert missing in _error(api.client.get(OUT_PARAMS, headers=auth, query_string=query), 400)


def test_out_params_needs_a_bearer_token(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth)
    _error(api.out_params({}, "acf42dd3", instance), 403)
