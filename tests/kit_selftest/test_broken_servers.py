"""Each broken server differs from the healthy emulator in exactly the observations its defect names."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from mock_server.testing.receiver import CallbackReceiver
from tests.kit_selftest.broken import AUTHORIZE, DEFECTS, LIST_PLANS, MODELS, TOKEN, build

POC_ID, POC_SECRET = "JhYhK/XcFKuVlpVijwLCkw==", "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="
EXECUTE = "/api/dpa/process{}processPlan/opExecutePlanByApi/acf42dd3"
OTHER_PLAN = "c3d9f4e5"  # fails at its second node: a finished run of a plan other than the example
OUT_PARAMS = "/api/dpa/process{}processPlan/queryPlanRunOutParam"

# Observation names each defect must change; every other observation must equal the healthy server's.
SUCCESS_OBSERVATIONS = {
    "authorize",
    "token",
    "list",
    "models",
    "execute_double",
    "execute_single",
    "out_double",
    "out_single",
}
EXPECTED_CHANGES: dict[str, set[str]] = {
    "healthy": set(),
    "missing-envelope-field": {
        "authorize",
        "token",
        "token_again",
        "list",
        "models",
        "execute_double",
        "out_double",
        "authorize_no_scope",
        "list_no_token",
        "list_bad_token",
        "models_odd_id",
        "execute_single",
        "out_single",
        "unknown_path",
    },
    "wrong-field-type": {"list"},
    "success-code-not-200": SUCCESS_OBSERVATIONS,
    "ignores-token": {"list_no_token", "list_bad_token"},
    "code-reuse": {"token_again"},
    "500-on-input": {"models_odd_id"},
    "validation-as-success": {"authorize_no_scope"},
    "callbacks-never-retried": {"callback_attempts", "callback_refused_attempts"},
    "callbacks-retried-too-much": {"callback_attempts", "callback_refused_attempts"},
    "illegal-callback-status": {"callback_statuses"},
    "out-params-missing-nodename": {"out_double", "out_single"},
    "double-slash-not-served": {"execute_double", "out_double"},
    "callback-no-answer-acknowledged": {"callback_refused_attempts"},
    "callback-plan-fixed": {"callback_plans"},
    "authorize-not-envelope": {"authorize", "authorize_no_scope"},
    "callback-text-plain": {"callback_media"},
}
# What some observations must have become (the others are checked by the healthy test plus the diff).
CHANGED_TO: dict[str, dict[str, Any]] = {
    "missing-envelope-field": {"list_no_token": (403, 403, False), "unknown_path": (404, 404, False)},
    "wrong-field-type": {"list": (200, 200, True, "str", "int")},
    "success-code-not-200": {"list": (200, 0, True, "int", "int"), "token": (200, 0, True)},
    "ignores-token": {"list_no_token": (200, 200, True), "list_bad_token": (200, 200, True)},
    "code-reuse": {"token_again": (200, 200, True)},
    "500-on-input": {"models_odd_id": (500, "not an envelope")},
    "authorize-not-envelope": {"authorize": (200, "not an envelope"), "authorize_no_scope": (200, "not an envelope")},
    "validation-as-success": {"authorize_no_scope": (200, 200, True)},
    "callbacks-never-retried": {"callback_attempts": (1, 1, 1)},
    "callbacks-retried-too-much": {"callback_attempts": (6, 6, 6)},
    "callback-no-answer-acknowledged": {"callback_refused_attempts": (1, 1, 1)},
    "callback-plan-fixed": {"callback_plans": ("acf42dd3",)},
    "callback-text-plain": {"callback_media": ("text/plain;charset=UTF-8",)},
    "illegal-callback-status": {"callback_statuses": ("DEFAULT", "STARTED", "SUCCESS")},
    "out-params-missing-nodename": {"out_single": (200, 200, True, [("result",)] * 2)},
    "double-slash-not-served": {
        "execute_double": (404, 404, True),
        "out_single": (200, 200, True, [("nodeName", "result")] * 2),
    },
}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _body(response: TestResponse) -> Any:
    return response.get_json(silent=True) if response.is_json else None


def _shape(response: TestResponse) -> tuple[Any, ...]:
    """HTTP status, business code and whether the envelope carries its `message`."""
    body = _body(response)
    if not isinstance(body, dict):
        return (response.status_code, "not an envelope")
    return (response.status_code, body.get("code"), "message" in body)


def observe(defect: str) -> dict[str, Any]:
    """Drive one server through the document's flow and a few bad inputs; record what a client sees."""
    with CallbackReceiver() as receiver:
        return _observe(defect, receiver)


def _observe(defect: str, receiver: CallbackReceiver) -> dict[str, Any]:
    wsgi, app = build(defect)
    # A bare werkzeug client sends no REMOTE_ADDR; the admin API answers loopback clients only.
    client = Client(lambda environ, start: wsgi({"REMOTE_ADDR": "127.0.0.1", **environ}, start))
    seen: dict[str, Any] = {}
    try:
        query = {"client_id": POC_ID, "response_type": "code", "scope": "all"}
        authorize = client.get(AUTHORIZE, query_string=query)
        seen["authorize"] = _shape(authorize)
        seen["authorize_no_scope"] = _shape(client.get(AUTHORIZE, query_string={**query, "scope": None}))
        issued = (_body(authorize) or {}).get("data")
        if not isinstance(issued, dict):  # authorize-not-envelope: the rest of the flow with a code of its own
            issued = {"code": app.extensions["dpa_platform"].oauth.authorize(POC_ID, "code", "all")}
        grant = {
            "code": issued["code"],
            "client_id": POC_ID,
            "client_secret": POC_SECRET,
            "grant_type": "authorization_code",
        }
        token = client.post(TOKEN, json=grant)
        seen["token"] = _shape(token)
        seen["token_again"] = _shape(client.post(TOKEN, json=grant))
        auth = {"Authorization": "Bearer " + token.get_json()["data"]["access_token"]}

        plans = client.get(LIST_PLANS, headers=auth)
        first = plans.get_json()["data"][0]
        seen["list"] = (*_shape(plans), type(first["createTime"]).__name__, type(first["updateTime"]).__name__)
        seen["list_no_token"] = _shape(client.get(LIST_PLANS))
        seen["list_bad_token"] = _shape(client.get(LIST_PLANS, headers={"Authorization": auth["Authorization"] + "x"}))
        seen["models"] = _shape(client.post(MODELS, headers=auth, json={"processPlanId": "acf42dd3"}))
        seen["models_odd_id"] = _shape(client.post(MODELS, headers=auth, json={"processPlanId": "acf-42"}))
        seen["unknown_path"] = _shape(client.get("/api/dpa/no/such/path"))

        receiver.fail()  # never acknowledge: every status is retried until the server gives up
        run = {"processPlanId": "acf42dd3", "callbackUrl": receiver.url}
        double = client.post(EXECUTE.format("//"), headers=auth, json=run)
        single = client.post(EXECUTE.format("/"), headers=auth, json=run)
        seen["execute_double"], seen["execute_single"] = _shape(double), _shape(single)
        instance = single.get_json()["data"][0]["planInstanceId"]
        assert client.post("/__admin/clock/advance", json={"seconds": 30}).get_json()["code"] == 200
        for name, slashes in (("out_double", "//"), ("out_single", "/")):
            response = client.get(
                OUT_PARAMS.format(slashes),
                headers=auth,
                query_string={"processPlanId": "acf42dd3", "planInstanceId": instance},
            )
            body = _body(response)
            names = (
                [tuple(sorted(p)) for wf in body["data"] for p in wf["mapParam"]]
                if isinstance(body, dict) and isinstance(body.get("data"), list)
                else None
            )
            seen[name] = (*_shape(response), names)
        mine = receiver.for_instance(instance)
        statuses = [d.json["status"] for d in mine]
        seen["callback_statuses"] = tuple(dict.fromkeys(statuses))
        seen["callback_attempts"] = tuple(statuses.count(s) for s in dict.fromkeys(statuses))
        seen["admin_run"] = client.get(f"/__admin/runs/{instance}").get_json()["data"]["status"]

        # A callbackUrl nobody listens on: no attempt gets an HTTP answer, so each is retried until given up.
        dead = {"processPlanId": "acf42dd3", "callbackUrl": f"http://127.0.0.1:{_closed_port()}/cb"}
        refused = client.post(EXECUTE.format("/"), headers=auth, json=dead).get_json()["data"][0]["planInstanceId"]
        assert client.post("/__admin/clock/advance", json={"seconds": 30}).get_json()["code"] == 200
        ledger = client.get("/__admin/callbacks", query_string={"planInstanceId": refused}).get_json()["data"]
        seen["callback_refused_attempts"] = tuple(len(d["attempts"]) for d in ledger)

        # Another plan's run, acknowledged: the plan its callbacks name, and their media type.
        receiver.clear()
        other = {"processPlanId": OTHER_PLAN, "callbackUrl": receiver.url}
        started = client.post(EXECUTE.format("/").replace("acf42dd3", OTHER_PLAN), headers=auth, json=other)
        other_instance = started.get_json()["data"][0]["planInstanceId"]
        assert client.post("/__admin/clock/advance", json={"seconds": 30}).get_json()["code"] == 200
        theirs = receiver.for_instance(other_instance)
        seen["callback_plans"] = tuple(sorted({d.json["processPlanId"] for d in theirs}))
        seen["callback_media"] = tuple(sorted({d.headers.get("Content-Type", "") for d in theirs}))
    finally:
        app.extensions["dpa_platform"].close()
    return seen


@pytest.fixture(scope="module")
def healthy() -> dict[str, Any]:
    return observe("healthy")


def test_healthy_server_behaves_as_the_contract_says(healthy: dict[str, Any]) -> None:
    assert healthy["authorize"] == (200, 200, True)
    assert healthy["authorize_no_scope"] == (400, 400, True)
    assert healthy["token_again"] == (403, 403, True)
    assert healthy["list"] == (200, 200, True, "int", "int")
    assert healthy["list_no_token"] == healthy["list_bad_token"] == (403, 403, True)
    assert healthy["models_odd_id"] == (404, 404, True)
    assert healthy["execute_double"] == healthy["execute_single"] == (200, 200, True)
    assert healthy["out_double"][3] == [("nodeName", "result")] * 2
    assert healthy["callback_statuses"] == ("DEFAULT", "RUNNING", "SUCCESS")
    assert healthy["callback_attempts"] == (4, 4, 4)
    assert healthy["admin_run"] == "SUCCESS"
    assert healthy["callback_refused_attempts"] == (4, 4, 4)
    assert healthy["callback_plans"] == (OTHER_PLAN,)
    assert healthy["callback_media"] == ("application/json",)


@pytest.mark.parametrize("defect", sorted(set(DEFECTS) - {"healthy"}))
def test_each_broken_server_has_exactly_its_defect(defect: str, healthy: dict[str, Any]) -> None:
    seen = observe(defect)
    changed = {name for name in healthy if seen[name] != healthy[name]}
    assert changed == EXPECTED_CHANGES[defect], {name: (healthy[name], seen[name]) for name in changed}
    # The direction of the change too, so a defect cannot silently turn into another one.
    for name, value in CHANGED_TO.get(defect, {}).items():
        assert seen[name] == value, (name, seen[name])
