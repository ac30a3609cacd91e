"""The `{code, message, data}` envelope on every response of every operation, errors included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.plugins.safety import policy
from contract_tests.support.api import OPS, Api, Op, Req, op_params
from contract_tests.support.envelope import (
    DOCUMENTED_CODES,
    NOT_AN_ENVELOPE,
    check_envelope,
    envelope_problems,
    expect_rejected,
    expect_success,
    is_epoch_ms,
)
from contract_tests.support.kit import KIT
from contract_tests.support.props import kit_settings

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
SCENE_FIELDS = ("callbackUrl", "dimension", "intervals", "sceneName", "modelVarReq")
FIELDS = [
    "processPlanId",
    "planInstanceId",
    "callbackUrl",
    "modelVarReq",
    "code",
    "client_id",
    "client_secret",
    "grant_type",
    "user_id",
    "response_type",
    "scope",
    "dimension",
    "intervals",
    "executeStrategy",
    "sceneName",
    "x",
]


@pytest.mark.parametrize("op", op_params())
def test_success_envelope(op: Op, kit_api: Api) -> None:
    """A request the document says succeeds gets code exactly 200, a string message and data present."""
    req = kit_api.valid_request(op)
    response = kit_api.send_req(req, token=op.secured)
    data = expect_success(response, op.id)
    body = response.json()
    KIT.observe(f"success-message.{'oauth' if op.interface == 1 else 'process'}", repr(body["message"]))
    ctype = response.headers.get("Content-Type", "")
    if "application/json" not in ctype:
        KIT.observe("envelope.content-type", ctype or "(none)")
    assert data is not None


def _error_variants(op: Op, api: Api) -> list[tuple[str, Req, Any]]:
    """Requests the document says fail (each: label, request, token to send)."""
    variants: list[tuple[str, Req, Any]] = []
    if op.id == "listPlans":
        pass  # no parameter at all: only a bad token can be refused (a POST would be a wrong method)
    elif op.method == "GET":
        variants.append(("no parameters", Req("GET", op.path), True))
        variants.append(("junk parameters", Req("GET", op.path, {"params": {"x": "1"}}), True))
    elif op.write == "scene":
        plan = api.first_scene_plan()
        variants += [
            ("no callbackUrl", Req("POST", op.path, {"data": api.scene_form(plan, callbackUrl=None)}), True),
            ("bad dimension", Req("POST", op.path, {"data": api.scene_form(plan, dimension="fortnight")}), True),
            ("bad intervals", Req("POST", op.path, {"data": api.scene_form(plan, intervals="zero")}), True),
        ]
    else:
        path = op.path
        if op.write == "execute":
            path = op.url_path(api.first_writable_plan())
        variants += [
            ("empty JSON object", Req("POST", path, {"json": {}}), True),
            (
                "malformed JSON",
                Req("POST", path, {"data": b'{"processPlanId": ', "headers": {"Content-Type": "application/json"}}),
                True,
            ),
            ("no body", Req("POST", path), True),
            ("a JSON array", Req("POST", path, {"json": [1, 2]}), True),
        ]
    if op.secured:
        valid = api.valid_request(op)
        variants.append(("no Authorization header", valid, None))
        variants.append(("garbage bearer token", valid, "Bearer not-a-token"))
    return variants


@pytest.mark.parametrize("op", op_params())
def test_error_envelopes(op: Op, kit_api: Api) -> None:
    """Requests the document rejects get an envelope with a documented code (a violation if not); accepting
    one is a leniency, except a missing or garbage token (a violation: the document's OAuth)."""
    for label, req, token in _error_variants(op, kit_api):
        response = kit_api.send_req(req, token=token)
        what = f"{op.id} with {label}"
        if token is True:
            body = expect_rejected(response, what, lenient="request the document forbids")
        else:
            body = expect_rejected(response, what, expected=403, topic="oauth.bad-token.code", exact=True)
        if body["code"] != 200 and not body.get(NOT_AN_ENVELOPE):
            KIT.observe("error.data", "absent" if "data" not in body else "null" if body["data"] is None else "filled")


def _random_request(op: Op, api: Api) -> Any:
    """A strategy of arbitrary requests to `op` that the safety options allow sending."""
    if op.method == "GET":
        return st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=20), max_size=4).map(
            lambda q: Req("GET", op.path, {"params": q})
        )
    path = op.url_path(api.first_writable_plan()) if op.write == "execute" else op.path
    if op.write == "scene":
        plan = api.first_scene_plan()
        # The form always names an allowed plan and the single strategy, so the safety policy lets it through.
        forms = st.fixed_dictionaries(
            {"processPlanId": st.just(plan), "executeStrategy": st.just("single")},
            optional={f: st.text(max_size=12) for f in SCENE_FIELDS},
        )
        return forms.map(lambda f: Req("POST", path, {"data": f}))
    bodies = st.dictionaries(st.sampled_from([f for f in FIELDS if f != "processPlanId"]), JSON_VALUES, max_size=4)
    if op.write == "execute":
        plan = path.rsplit("/", 1)[-1]
        bodies = st.tuples(bodies, st.one_of(st.just(plan), JSON_VALUES.filter(lambda v: not isinstance(v, str)))).map(
            lambda t: {**t[0], "processPlanId": t[1]}
        )
    raw = st.one_of(
        bodies.map(lambda b: {"json": b}),
        st.binary(max_size=40).map(lambda b: {"data": b, "headers": {"Content-Type": "application/json"}}),
        st.text(max_size=40).map(lambda t: {"data": t.encode(), "headers": {"Content-Type": "text/plain"}}),
    )
    return raw.map(lambda kw: Req("POST", path, kw))


@pytest.mark.parametrize("op", op_params())
def test_envelope_on_arbitrary_requests(op: Op, kit_api: Api) -> None:
    """Property: whatever the query or body, the answer is an envelope with a documented code."""
    if op.write == "scene" and not policy().in_process:
        pytest.skip("arbitrary saveTimingParam forms could create scenes on a live target; checked in-process")
    if op.write == "execute" and policy().can_execute() is None and not policy().in_process and policy().max_runs:
        KIT.observe("fuzzing.max-runs", "envelope fuzzing of executePlan counts against --max-runs")
    strategy = _random_request(op, kit_api)
    token = st.sampled_from([True, None, "Bearer x.y.z"]) if op.secured else st.just(None)

    @kit_settings(max_examples=15)
    @given(req=strategy, auth=token)
    def check(req: Req, auth: Any) -> None:
        response = kit_api.send_req(req, token=auth)
        check_envelope(response, f"{op.id} with an arbitrary request", refused_request=True)

    check()


def _refusal(response: Any, what: str) -> str:
    """An unknown path or a wrong method: any documented error envelope, or a plain HTTP 404/405 with any body
    (a framework's own page; the document promises nothing more). Returns the code seen (`none`: no envelope)."""
    KIT.blame(response)
    body, problems = envelope_problems(response)
    code = body.get("code") if body is not None else None
    assert code != 200 and not (body is None and 200 <= response.status_code < 300), (
        f"{what}: answered success (HTTP {response.status_code}, code {code})"
    )
    assert response.status_code < 500 or response.status_code == 503, (
        f"{what}: server error HTTP {response.status_code}"
    )
    if response.status_code not in (404, 405):
        # Not the plain HTTP answer: then it must be an error envelope with a documented code.
        assert not problems, f"{what}: HTTP {response.status_code} and not a valid envelope: {'; '.join(problems)}"
    return "none" if body is None or not isinstance(code, int) else str(code)


@pytest.mark.interface(0)
def test_unknown_path_and_wrong_method(kit_api: Api) -> None:
    """请求路径异常: an unknown path or a wrong method is refused, with a documented error envelope or plain HTTP
    404/405 (the choice is observed); 405 without `Allow` is a leniency (RFC 9110 requires it)."""
    unknown = kit_api.send("GET", "/api/dpa/process/processPlan/kitNoSuchOperation")
    KIT.observe("unknown-path.code", _refusal(unknown, "GET of an unknown path"))
    KIT.observe("unknown-path.http-status", str(unknown.status_code))
    wrong = kit_api.send("POST", OPS["listPlans"].path, json={})
    wrong_body, _ = envelope_problems(wrong)
    if wrong_body is not None and wrong_body.get("code") == 200:
        # Spring's @RequestMapping without `method` answers POST as GET: a leniency when the answer is the
        # documented method's own; any other success (a bare or different body) is a violation.
        right_body, _ = envelope_problems(kit_api.list_plans())
        assert right_body is not None and wrong_body.get("data") == right_body.get("data"), (
            f"POST to the GET-only listPlans path: answered success (HTTP {wrong.status_code}, code 200) with "
            f"data that is not listPlans' answer: {str(wrong_body.get('data'))[:120]}"
        )
        KIT.lenient(
            "wrong method accepted",
            f"POST to the GET-only listPlans path: answered as GET (HTTP {wrong.status_code}, code 200)",
            wrong,
        )
        KIT.observe("wrong-method.code", "200")
        KIT.observe("wrong-method.http-status", str(wrong.status_code))
        return
    code = _refusal(wrong, "POST to the GET-only listPlans path")
    allow = wrong.headers.get("Allow")
    KIT.observe("wrong-method.code", code)
    KIT.observe("wrong-method.http-status", str(wrong.status_code))
    KIT.observe("wrong-method.allow-header", "present" if allow else "absent")
    if wrong.status_code == 405 and not allow:
        KIT.lenient("405 without Allow", "POST to the GET-only listPlans path: HTTP 405 without an Allow header", wrong)
    assert code == "none" or int(code) in DOCUMENTED_CODES or wrong.status_code == 405, code


@pytest.mark.interface(2)
def test_epoch_ms_fields(kit_api: Api) -> None:
    """createTime/updateTime are integers in epoch milliseconds (not seconds, strings or floats)."""
    data = expect_success(kit_api.list_plans(), "listPlans")
    assert isinstance(data, list), "listPlans: data is not a list"
    for plan in data:
        for name in ("createTime", "updateTime"):
            value = plan.get(name) if isinstance(plan, dict) else None
            assert is_epoch_ms(value), (
                f"listPlans {plan.get('processPlanId')}.{name} = {json.dumps(value)} is not an epoch-ms integer"
            )
