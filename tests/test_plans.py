"""Interfaces 2 and 3: listPlans (fields, visibility, live status) and queryModelByPlanId."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.plugins.emulator import LIST_PLANS, MODELS, Api
from tests.plugins.foundation import envelope_of, expect_error

EVERYONES = ["acf42dd3", "b7e1c0a2", "c3d9f4e5", "d4a8e6f1", "e5f2b7c9"]
PLAN_FIELDS = {
    "processPlanId": str,
    "title": str,
    "status": str,
    "stepNums": int,
    "version": int,
    "createTime": int,
    "createUser": str,
    "updateTime": int,
    "updateUser": str,
}


def plans(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(LIST_PLANS, headers=headers)
    body = envelope_of(response)
    assert response.status_code == 200 and body["code"] == 200 and body["message"] == "success", body
    return body["data"]


def models(client: FlaskClient, headers: dict[str, str], plan_id: str) -> list[dict[str, Any]]:
    body = envelope_of(client.post(MODELS, headers=headers, json={"processPlanId": plan_id}))
    assert body["code"] == 200 and body["message"] == "success", body
    return body["data"]


def test_list_plans_fields_and_types(client: FlaskClient, auth: dict[str, str]) -> None:
    data = plans(client, auth)
    assert [p["processPlanId"] for p in data] == EVERYONES
    for plan in data:
        assert list(plan) == list(PLAN_FIELDS), plan  # exactly these keys, in the document's order
        for name, kind in PLAN_FIELDS.items():
            # bool is an int subclass in Python; epoch ms must be real integers.
            assert type(plan[name]) is kind, (name, plan[name])
        assert plan["createTime"] > 10**12 and plan["updateTime"] >= plan["createTime"]  # milliseconds
        assert plan["status"] == "DEFAULT"
    # The document's example, field for field.
    assert data[0] == {
        "processPlanId": "acf42dd3",
        "title": "测试预案",
        "status": "DEFAULT",
        "stepNums": 1,
        "version": 0,
        "createTime": 1626944836628,
        "createUser": "U100000",
        "updateTime": 1626944836628,
        "updateUser": "",
    }


def test_step_nums_is_the_number_of_workflows(client: FlaskClient, api: Api) -> None:
    headers = api.login(scope="all")
    for plan in plans(client, headers):
        assert plan["stepNums"] == len(models(client, headers, plan["processPlanId"])), plan
    assert {p["processPlanId"]: p["stepNums"] for p in plans(client, headers)}["b7e1c0a2"] == 2


@pytest.mark.parametrize(
    "user,scope,expected",
    [
        ("U100000", "default", EVERYONES),
        ("1", "default", EVERYONES),
        ("U100002", "default", [*EVERYONES, "f6c1a3d8"]),
        ("U100000", "all", [*EVERYONES, "f6c1a3d8"]),
    ],
)
def test_visibility_by_user_and_scope(
    client: FlaskClient, api: Api, user: str, scope: str, expected: list[str]
) -> None:
    headers = api.login(scope=scope, user_id=user)
    assert [p["processPlanId"] for p in plans(client, headers)] == expected


def test_status_reflects_the_latest_instance(client: FlaskClient, api: Api, auth: dict[str, str]) -> None:
    def status(plan_id: str) -> str:
        return {p["processPlanId"]: p["status"] for p in plans(client, auth)}[plan_id]

    api.start(auth, "acf42dd3")
    assert status("acf42dd3") == "DEFAULT"
    api.advance(0.3)
    assert status("acf42dd3") == "RUNNING"
    api.advance(10)
    assert status("acf42dd3") == "SUCCESS"
    api.start(auth, "c3d9f4e5")
    api.advance(10)
    assert status("c3d9f4e5") == "FAIL"
    # A newer instance of acf42dd3 takes over the plan's status from the finished one.
    api.start(auth, "acf42dd3")
    api.advance(0.3)
    assert status("acf42dd3") == "RUNNING"
    assert status("b7e1c0a2") == "DEFAULT"


def test_models_of_acf42dd3(client: FlaskClient, auth: dict[str, str]) -> None:
    assert models(client, auth, "acf42dd3") == [
        {
            "modelName": "工作流名称",
            "processModelId": "md1606743910508",
            "mapParam": [{"name": "DPA_MODEL_WORKDIR", "type": "running"}],
        }
    ]


def test_models_of_b7e1c0a2(client: FlaskClient, auth: dict[str, str]) -> None:
    assert models(client, auth, "b7e1c0a2") == [
        {
            "modelName": "主机巡检",
            "processModelId": "md1606743910601",
            "mapParam": [{"name": "TARGET_HOST", "type": "running"}, {"name": "CHECK_LEVEL", "type": "running"}],
        },
        {
            "modelName": "报告生成",
            "processModelId": "md1606743910602",
            "mapParam": [{"name": "REPORT_FORMAT", "type": "running"}],
        },
    ]


def test_models_of_a_plan_without_inputs_has_an_empty_map_param(client: FlaskClient, auth: dict[str, str]) -> None:
    assert models(client, auth, "e5f2b7c9") == [
        {"modelName": "故障注入", "processModelId": "md1606743910901", "mapParam": []}
    ]


def test_models_of_unknown_plan_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    expect_error(
        client.post(MODELS, headers=auth, json={"processPlanId": "nope0000"}), 404, "'nope0000'", "does not exist"
    )


def test_models_of_invisible_plan_is_404_and_visible_to_its_user(
    client: FlaskClient, api: Api, auth: dict[str, str]
) -> None:
    expect_error(
        client.post(MODELS, headers=auth, json={"processPlanId": "f6c1a3d8"}), 404, "'f6c1a3d8'", "not visible"
    )
    guest = api.login(user_id="U100002")
    assert models(client, guest, "f6c1a3d8")[0]["processModelId"] == "md1606743911001"
    everything = api.login(scope="all")
    assert models(client, everything, "f6c1a3d8")[0]["modelName"] == "访客流程"


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({}, "processPlanId: is required"),
        ({"processPlanId": ""}, "processPlanId"),
        ({"processPlanId": 42}, "processPlanId"),
        ({"processPlanId": None}, "processPlanId: is required"),
        ([], "body"),
    ],
)
def test_models_with_a_bad_body_is_400(client: FlaskClient, auth: dict[str, str], body: Any, fragment: str) -> None:
    expect_error(client.post(MODELS, headers=auth, json=body), 400, fragment)


@pytest.mark.parametrize(
    "raw,content_type,fragment",
    [
        ("processPlanId=acf42dd3", "application/x-www-form-urlencoded", "Content-Type"),
        ("{processPlanId: acf42dd3}", "application/json", "malformed JSON"),
        ("acf42dd3", "text/plain", "Content-Type"),
        ("", "application/json", "request body is required"),
    ],
)
def test_models_with_a_non_json_body_is_400(
    client: FlaskClient, auth: dict[str, str], raw: str, content_type: str, fragment: str
) -> None:
    expect_error(client.post(MODELS, headers=auth, data=raw, content_type=content_type), 400, fragment)


def test_plan_endpoints_require_a_bearer_token(client: FlaskClient) -> None:
    expect_error(client.get(LIST_PLANS), 403, "Authorization")
    expect_error(client.post(MODELS, json={"processPlanId": "acf42dd3"}), 403, "Authorization")
