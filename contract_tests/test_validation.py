"""Each required parameter of each operation, missing or of a wrong type, gets an error code (400 expected)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.plugins.safety import policy
from contract_tests.support.api import OPS, Api, Req
from contract_tests.support.envelope import expect_rejected
from contract_tests.support.kit import KIT
from contract_tests.support.props import kit_settings

NOT_A_STRING = st.one_of(
    st.integers(-(10**9), 10**9),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text("abc", max_size=3), st.integers(0, 9), max_size=2),
)

Builder = Callable[[Api], Req]


def _without(values: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != name}


def _authorize(api: Api) -> dict[str, Any]:
    return dict(api.valid_request(OPS["authorize"]).kwargs["params"])


def _token(api: Api) -> dict[str, Any]:
    return dict(api.valid_request(OPS["getToken"]).kwargs["json"])


def _out(api: Api) -> dict[str, Any]:
    return dict(api.valid_request(OPS["queryPlanRunOutParam"]).kwargs["params"])


def _execute(api: Api) -> tuple[str, dict[str, Any]]:
    req = api.valid_request(OPS["executePlan"])
    return req.path, dict(req.kwargs["json"])


def _scene(api: Api) -> dict[str, Any]:
    return dict(api.valid_request(OPS["saveTimingParam"]).kwargs["data"])


def _missing_cases() -> list[Any]:
    cases: list[tuple[str, str, Builder]] = []
    for name in ("client_id", "response_type", "scope"):
        cases.append(
            (
                "authorize",
                name,
                lambda a, n=name: Req("GET", OPS["authorize"].path, {"params": _without(_authorize(a), n)}),
            )
        )
    for name in ("code", "client_id", "client_secret", "grant_type"):
        cases.append(
            ("getToken", name, lambda a, n=name: Req("POST", OPS["getToken"].path, {"json": _without(_token(a), n)}))
        )
    cases.append(
        ("queryModelByPlanId", "processPlanId", lambda a: Req("POST", OPS["queryModelByPlanId"].path, {"json": {}}))
    )
    cases.append(("queryModelByPlanId", "body", lambda a: Req("POST", OPS["queryModelByPlanId"].path)))
    for name in ("processPlanId", "callbackUrl", "dimension", "intervals", "executeStrategy", "sceneName"):
        cases.append(
            (
                "saveTimingParam",
                name,
                lambda a, n=name: Req("POST", OPS["saveTimingParam"].path, {"data": _without(_scene(a), n)}),
            )
        )
    cases.append(
        (
            "executePlan",
            "processPlanId",
            lambda a: (lambda p, b: Req("POST", p, {"json": _without(b, "processPlanId")}))(*_execute(a)),
        )
    )
    cases.append(("executePlan", "body", lambda a: Req("POST", _execute(a)[0])))
    for name in ("processPlanId", "planInstanceId"):
        cases.append(
            (
                "queryPlanRunOutParam",
                name,
                lambda a, n=name: Req("GET", OPS["queryPlanRunOutParam"].path, {"params": _without(_out(a), n)}),
            )
        )
    return [
        pytest.param(op, name, build, id=f"{op}-{name}", marks=pytest.mark.interface(OPS[op].interface))
        for op, name, build in cases
    ]


@pytest.mark.parametrize(("op_id", "name", "build"), _missing_cases())
def test_missing_required_parameter(op_id: str, name: str, build: Builder, kit_api: Api) -> None:
    if op_id == "saveTimingParam" and name == "executeStrategy" and not policy().in_process:
        pytest.skip("a form without executeStrategy is not sent to a live target (only single scenes are allowed)")
    op = OPS[op_id]
    response = kit_api.send_req(build(kit_api), token=op.secured)
    body = expect_rejected(response, f"{op_id}: required {name} missing", lenient="documented-required field missing")
    if op_id == "executePlan" and name == "processPlanId":
        KIT.observe("execute.body-plan-id", "path only" if body["code"] == 200 else "required")


def _wrong_type_cases() -> list[Any]:
    cases = [("getToken", n) for n in ("code", "client_id", "client_secret", "grant_type")]
    cases += [("queryModelByPlanId", "processPlanId"), ("executePlan", "processPlanId")]
    return [
        pytest.param(op, name, id=f"{op}-{name}", marks=pytest.mark.interface(OPS[op].interface)) for op, name in cases
    ]


@pytest.mark.parametrize(("op_id", "name"), _wrong_type_cases())
def test_required_parameter_of_wrong_type(op_id: str, name: str, kit_api: Api) -> None:
    """A JSON field the document types as String gets a number, boolean, list or object instead."""
    op = OPS[op_id]

    @kit_settings(max_examples=5)
    @given(value=NOT_A_STRING)
    def check(value: Any) -> None:
        if op_id == "getToken":
            req = Req("POST", op.path, {"json": {**_token(kit_api), name: value}})
        elif op_id == "queryModelByPlanId":
            req = Req("POST", op.path, {"json": {"processPlanId": value}})
        else:
            path, body = _execute(kit_api)
            req = Req("POST", path, {"json": {**body, name: value}})
        expect_rejected(
            kit_api.send_req(req, token=op.secured),
            f"{op_id}: {name} of type {type(value).__name__}",
            lenient="schema-violating value",
        )

    check()


@pytest.mark.parametrize(
    ("op_id", "name", "allowed"),
    [
        pytest.param(
            "authorize", "response_type", {"code"}, id="authorize-response_type", marks=pytest.mark.interface(1)
        ),
        pytest.param("authorize", "scope", {"all", "default"}, id="authorize-scope", marks=pytest.mark.interface(1)),
        pytest.param(
            "getToken", "grant_type", {"authorization_code"}, id="getToken-grant_type", marks=pytest.mark.interface(1)
        ),
    ],
)
def test_enumerated_parameter_out_of_range(op_id: str, name: str, allowed: set[str], kit_api: Api) -> None:
    """response_type is code, scope all|default, grant_type authorization_code: anything else is rejected."""
    op = OPS[op_id]

    @kit_settings(max_examples=5)
    @given(value=st.text(min_size=1, max_size=16).filter(lambda v: v not in allowed and v.strip() not in allowed))
    def check(value: str) -> None:
        if op_id == "authorize":
            req = Req("GET", op.path, {"params": {**_authorize(kit_api), name: value}})
        else:
            req = Req("POST", op.path, {"json": {**_token(kit_api), name: value}})
        expect_rejected(
            kit_api.send_req(req, token=False), f"{op_id}: {name}={value!r}", lenient="schema-violating value"
        )

    check()


@pytest.mark.interface(5)
def test_execute_path_and_body_disagree(kit_api: Api) -> None:
    """The plan id in the path and in the body must name the same plan."""
    plans = kit_api.writable_plans()
    reason = policy().can_execute()
    if reason:
        pytest.skip(reason)
    if len(plans) < 2:
        pytest.skip("needs two executable plans (give --plan-id twice)")
    path, body = _execute(kit_api)
    other = next(p for p in plans if p != body["processPlanId"])
    answer = expect_rejected(
        kit_api.send("POST", path, json={**body, "processPlanId": other}),
        "executePlan: body processPlanId differs from the path",
        lenient="path and body disagree",
    )
    KIT.observe("execute.path-body-mismatch", "accepted" if answer["code"] == 200 else "rejected")
