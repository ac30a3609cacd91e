"""The emulator's own narrower choices, checked as an overlay on the contract (never written into it).

The contract (openapi/dpa-platform.yaml) lets a deployment send any documented error envelope with any HTTP
status, extra fields and any wording. dpa-mock chooses one reading (docs/spec-decisions.md D1, D6, D17, D19,
D27, D28): each answer below must conform to the contract AND to that stricter overlay.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from werkzeug.test import TestResponse

from tests.plugins.foundation import built_app

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "dpa-platform.yaml"
POC = {"client_id": "JhYhK/XcFKuVlpVijwLCkw==", "client_secret": "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="}
MIRRORED = {200, 400, 403, 404, 500, 503}
PLAN_FIELDS = {
    "processPlanId",
    "title",
    "status",
    "stepNums",
    "version",
    "createTime",
    "createUser",
    "updateTime",
    "updateUser",
}
OAUTH = ("authorize", "getToken")


def _inline(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _inline(target, root)
        return {k: _inline(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, root) for v in node]
    return node


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))


def conforms(contract: dict[str, Any], op_id: str, response: TestResponse) -> None:
    """The answer is valid under the contract's response for its HTTP status (or `default`)."""
    operation = next(
        op
        for item in contract["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and op.get("operationId") == op_id
    )
    declared = operation["responses"].get(str(response.status_code)) or operation["responses"]["default"]
    schema = _inline(declared, contract)["content"]["application/json"]["schema"]
    errors = [e.message for e in OAS30Validator(schema).iter_errors(response.get_json())]
    assert not errors, (op_id, response.status_code, errors[:3])


def overlay(op_id: str, response: TestResponse, mode: str) -> dict[str, Any]:
    """dpa-mock's own reading on top of the contract; returns the body."""
    body = response.get_json()
    assert set(body) == {"code", "message", "data"}, body  # D27: exactly the envelope, compact
    code = body["code"]
    expected_status = 200 if mode == "always200" or code not in MIRRORED else code  # D1
    assert response.status_code == expected_status, (op_id, mode, response.status_code, code)
    if code == 200:
        assert body["message"] == ("" if op_id in OAUTH else "success"), body  # D28
    else:
        assert body["data"] is None and body["message"].strip(), body  # D28: a message saying why, data null
    return body


@pytest.fixture(params=["mirror", "always200"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(mode: str) -> Iterator[FlaskClient]:
    with built_app(http_status=mode) as app:
        yield app.test_client()


def test_success_answers(contract: dict[str, Any], client: FlaskClient, mode: str) -> None:
    def check(op_id: str, response: TestResponse) -> Any:
        conforms(contract, op_id, response)
        body = overlay(op_id, response, mode)
        assert body["code"] == 200, body
        return body["data"]

    data = check(
        "authorize",
        client.get(
            "/api/dp/auth/oauth/authorize",
            query_string={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
        ),
    )
    assert re.fullmatch(r"[A-Z0-9_-]{48}", data["code"]), data  # D17: uppercase base64url of a UUID, 48 chars
    token = check(
        "getToken",
        client.post("/api/dp/auth/oauth/token", json={"code": data["code"], **POC, "grant_type": "authorization_code"}),
    )
    assert set(token) == {"token_type", "access_token"} and token["token_type"] == "Bearer"
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    plans = check("listPlans", client.get("/api/dpa/process/processPlan/queryPlanByUserId", headers=auth))
    assert plans and all(set(p) == PLAN_FIELDS for p in plans), plans  # D6: exactly the nine fields
    models = check(
        "queryModelByPlanId",
        client.post(
            "/api/dpa/process/processPlan/queryModelByPlanId", headers=auth, json={"processPlanId": "acf42dd3"}
        ),
    )
    assert all(set(m) == {"modelName", "processModelId", "mapParam"} for m in models), models
    runs = check(
        "executePlan",
        client.post(
            "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3",
            headers=auth,
            json={"processPlanId": "acf42dd3"},
        ),
    )
    assert len(runs) == 1 and re.fullmatch(r"in\d{13}", runs[0]["planInstanceId"]), runs  # D25
    check(
        "queryPlanRunOutParam",
        client.get(
            "/api/dpa/process//processPlan/queryPlanRunOutParam",
            headers=auth,
            query_string={"processPlanId": "acf42dd3", "planInstanceId": runs[0]["planInstanceId"]},
        ),
    )


def test_error_answers(contract: dict[str, Any], client: FlaskClient, mode: str) -> None:
    code = client.get(
        "/api/dp/auth/oauth/authorize",
        query_string={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
    ).get_json()["data"]["code"]
    token = client.post("/api/dp/auth/oauth/token", json={"code": code, **POC, "grant_type": "authorization_code"})
    auth = {"Authorization": f"Bearer {token.get_json()['data']['access_token']}"}
    cases = [
        (
            "authorize",
            400,
            client.get(
                "/api/dp/auth/oauth/authorize", query_string={"client_id": POC["client_id"], "response_type": "code"}
            ),
        ),
        (
            "getToken",
            403,
            client.post("/api/dp/auth/oauth/token", json={"code": code, **POC, "grant_type": "authorization_code"}),
        ),
        (
            "getToken",
            998,
            client.post(
                "/api/dp/auth/oauth/token",
                json={
                    "code": client.get(
                        "/api/dp/auth/oauth/authorize",
                        query_string={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
                    ).get_json()["data"]["code"],
                    **POC,
                    "grant_type": "authorization_code",
                    "user_id": "no-such-user",
                },
            ),
        ),
        ("listPlans", 403, client.get("/api/dpa/process/processPlan/queryPlanByUserId")),
        (
            "queryModelByPlanId",
            404,
            client.post(
                "/api/dpa/process/processPlan/queryModelByPlanId", headers=auth, json={"processPlanId": "no-such-plan"}
            ),
        ),  # D19
        (
            "queryPlanRunOutParam",
            404,
            client.get(
                "/api/dpa/process//processPlan/queryPlanRunOutParam",
                headers=auth,
                query_string={"processPlanId": "acf42dd3", "planInstanceId": "in0000000000000"},
            ),
        ),
        (
            "executePlan",
            400,
            client.post(
                "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3",
                headers=auth,
                json={"processPlanId": "d4a8e6f1"},
            ),
        ),  # D23: path and body disagree
    ]
    for op_id, expected, response in cases:
        conforms(contract, op_id, response)
        assert overlay(op_id, response, mode)["code"] == expected, (op_id, response.get_json())


def test_unknown_path_and_wrong_method(client: FlaskClient, mode: str) -> None:
    unknown = client.get("/api/dpa/process/processPlan/noSuchOperation")
    assert overlay("unknown", unknown, mode)["code"] == 404  # D27
    wrong = client.post("/api/dpa/process/processPlan/queryPlanByUserId", json={})
    body = wrong.get_json()
    assert body["code"] == 404 and body["data"] is None, body  # D27: code 404 with HTTP 405 and Allow
    if mode == "mirror":
        assert wrong.status_code == 405 and "GET" in wrong.headers.get("Allow", ""), (wrong.status_code, wrong.headers)


def test_the_overlay_is_stricter_than_the_contract(contract: dict[str, Any]) -> None:
    """What the overlay refuses, the contract allows: the emulator's choices are not the contract's."""
    with built_app(http_status="always200") as app:
        answer = app.test_client().get("/api/dpa/process/processPlan/queryPlanByUserId")
    conforms(contract, "listPlans", answer)  # HTTP 200 carrying code 403 is the document's promise kept
    with pytest.raises(AssertionError):
        overlay("listPlans", answer, "mirror")
