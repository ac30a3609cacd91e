"""Form decoding of modelVarReq (JSON, repeated, Spring and bracket keys) and validation of workflow inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from mock_server.domain.errors import ValidationError
from mock_server.http.spec import form_to_dict, vendor_contract
from tests.plugins.emulator import EXECUTE, SCENE, Api
from tests.plugins.foundation import ADMIN_ADVANCE, built_app, envelope_of, expect_error

SCHEMA = vendor_contract().operations["saveTimingParam"].bodies["application/x-www-form-urlencoded"].schema
HOST_MODEL, REPORT_MODEL, ACF_MODEL = "md1606743910601", "md1606743910602", "md1606743910508"
SCENE_FORM = {
    "processPlanId": "b7e1c0a2",
    "callbackUrl": "http://127.0.0.1:9/callback",
    "dimension": "seconds",
    "intervals": "1",
    "executeStrategy": "single",
    "sceneName": "表单测试",
}


def decode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return form_to_dict(MultiDict(pairs), SCHEMA)


# -- form_to_dict ------------------------------------------------------------------------------------


def test_model_var_req_as_one_json_string() -> None:
    items = [{"modelId": HOST_MODEL, "mapParam": {"TARGET_HOST": "h1"}}, {"modelId": REPORT_MODEL}]
    assert decode([("processPlanId", "b7e1c0a2"), ("modelVarReq", json.dumps(items))]) == {
        "processPlanId": "b7e1c0a2",
        "modelVarReq": items,
    }


def test_model_var_req_as_repeated_json_fields() -> None:
    a = {"modelId": HOST_MODEL, "mapParam": {"TARGET_HOST": "h1"}}
    b = {"modelId": REPORT_MODEL, "mapParam": [{"name": "REPORT_FORMAT", "value": "csv"}]}
    assert decode([("modelVarReq", json.dumps(a)), ("modelVarReq", json.dumps(b))])["modelVarReq"] == [a, b]


def test_model_var_req_spring_dotted_keys() -> None:
    form = decode(
        [
            ("modelVarReq[0].modelId", HOST_MODEL),
            ("modelVarReq[0].mapParam.TARGET_HOST", "h1"),
            ("modelVarReq[0].mapParam.CHECK_LEVEL", "deep"),
            ("modelVarReq[1].modelId", REPORT_MODEL),
            ("modelVarReq[1].mapParam[REPORT_FORMAT]", "csv"),
        ]
    )
    assert form["modelVarReq"] == [
        {"modelId": HOST_MODEL, "mapParam": {"TARGET_HOST": "h1", "CHECK_LEVEL": "deep"}},
        {"modelId": REPORT_MODEL, "mapParam": {"REPORT_FORMAT": "csv"}},
    ]


def test_model_var_req_bracket_keys() -> None:
    form = decode(
        [
            ("modelVarReq[0][modelId]", HOST_MODEL),
            ("modelVarReq[0][mapParam][0][name]", "TARGET_HOST"),
            ("modelVarReq[0][mapParam][0][value]", "h1"),
            ("modelVarReq[0][mapParam][1][name]", "CHECK_LEVEL"),
            ("modelVarReq[0][mapParam][1][value]", "deep"),
        ]
    )
    assert form["modelVarReq"] == [
        {
            "modelId": HOST_MODEL,
            "mapParam": [{"name": "TARGET_HOST", "value": "h1"}, {"name": "CHECK_LEVEL", "value": "deep"}],
        }
    ]


def test_indexed_keys_are_ordered_by_index_with_gaps_closed() -> None:
    form = decode([("modelVarReq[5].modelId", "c"), ("modelVarReq[0].modelId", "a"), ("modelVarReq[2].modelId", "b")])
    assert form["modelVarReq"] == [{"modelId": "a"}, {"modelId": "b"}, {"modelId": "c"}]


def test_repeated_scalar_fields_keep_the_first_value() -> None:
    assert decode([("sceneName", "first"), ("sceneName", "second")]) == {"sceneName": "first"}


@pytest.mark.parametrize("raw", ["[{bad", '{"modelId": ', "[1, 2"])
def test_malformed_json_in_model_var_req_is_a_validation_error(raw: str) -> None:
    with pytest.raises(ValidationError, match=r"^modelVarReq: not valid JSON"):
        decode([("modelVarReq", raw)])


# -- through saveTimingParam -------------------------------------------------------------------------


@pytest.fixture
def scene_app() -> Iterator[Flask]:
    with built_app() as app:
        yield app


def _fired_inputs(
    client: FlaskClient, headers: dict[str, str], form: Any, content_type: str = "application/x-www-form-urlencoded"
) -> dict[str, dict[str, str]]:
    """Save the scene, let it fire once, and return the inputs of the run it started."""
    body = envelope_of(client.post(SCENE, headers=headers, data=form, content_type=content_type))
    assert body["code"] == 200 and body["data"]["modelId"] == HOST_MODEL, body
    scene_id = body["data"]["instanceId"]
    assert envelope_of(client.post(ADMIN_ADVANCE, json={"seconds": 2}))["code"] == 200
    runs = [r for r in envelope_of(client.get("/__admin/runs"))["data"] if r["sceneId"] == scene_id]
    assert len(runs) == 1, runs
    return runs[0]["inputs"]


@pytest.mark.parametrize("style", ["json", "repeated", "spring", "bracket", "multipart"])
def test_save_timing_param_decodes_every_form_style(scene_app: Flask, style: str) -> None:
    client = scene_app.test_client()
    headers = Api(client, scene_app.extensions["dpa_platform"]).login()
    host = {"modelId": HOST_MODEL, "mapParam": {"TARGET_HOST": f"host-{style}"}}
    report = {"modelId": REPORT_MODEL, "mapParam": [{"name": "REPORT_FORMAT", "value": "csv"}]}
    if style in ("json", "multipart"):
        form: Any = {**SCENE_FORM, "modelVarReq": json.dumps([host, report])}
    elif style == "repeated":
        form = MultiDict([*SCENE_FORM.items(), ("modelVarReq", json.dumps(host)), ("modelVarReq", json.dumps(report))])
    elif style == "spring":
        form = {
            **SCENE_FORM,
            "modelVarReq[0].modelId": HOST_MODEL,
            "modelVarReq[0].mapParam.TARGET_HOST": "host-spring",
            "modelVarReq[1].modelId": REPORT_MODEL,
            "modelVarReq[1].mapParam.REPORT_FORMAT": "csv",
        }
    else:
        form = {
            **SCENE_FORM,
            "modelVarReq[0][modelId]": HOST_MODEL,
            "modelVarReq[0][mapParam][0][name]": "TARGET_HOST",
            "modelVarReq[0][mapParam][0][value]": "host-bracket",
            "modelVarReq[1][modelId]": REPORT_MODEL,
            "modelVarReq[1][mapParam][0][name]": "REPORT_FORMAT",
            "modelVarReq[1][mapParam][0][value]": "csv",
        }
    content_type = "multipart/form-data" if style == "multipart" else "application/x-www-form-urlencoded"
    inputs = _fired_inputs(client, headers, form, content_type)
    assert inputs == {
        HOST_MODEL: {"TARGET_HOST": f"host-{style}", "CHECK_LEVEL": "basic"},
        REPORT_MODEL: {"REPORT_FORMAT": "csv"},
    }


@pytest.mark.parametrize("raw", ["[{bad json", '{"modelId": 1', "not json at all"])
def test_save_timing_param_rejects_bad_model_var_req(client: FlaskClient, auth: dict[str, str], raw: str) -> None:
    expect_error(client.post(SCENE, headers=auth, data={**SCENE_FORM, "modelVarReq": raw}), 400, "modelVarReq")


def test_save_timing_param_required_input_missing_names_it(client: FlaskClient, auth: dict[str, str]) -> None:
    expect_error(client.post(SCENE, headers=auth, data=SCENE_FORM), 400, "TARGET_HOST")
    only_report = json.dumps([{"modelId": REPORT_MODEL, "mapParam": {"REPORT_FORMAT": "csv"}}])
    expect_error(client.post(SCENE, headers=auth, data={**SCENE_FORM, "modelVarReq": only_report}), 400, "TARGET_HOST")


@pytest.mark.parametrize(
    "field,value",
    [
        ("dimension", "fortnights"),
        ("executeStrategy", "twice"),
        ("intervals", "0"),
        ("intervals", "abc"),
        ("sceneName", ""),
        ("callbackUrl", ""),
    ],
)
def test_save_timing_param_bad_field_is_400_naming_it(
    client: FlaskClient, auth: dict[str, str], field: str, value: str
) -> None:
    expect_error(client.post(SCENE, headers=auth, data={**SCENE_FORM, field: value}), 400, field)


def test_save_timing_param_missing_field_is_400_naming_it(client: FlaskClient, auth: dict[str, str]) -> None:
    for field in SCENE_FORM:
        form = {k: v for k, v in SCENE_FORM.items() if k != field}
        expect_error(client.post(SCENE, headers=auth, data=form), 400, field)


def test_save_timing_param_refuses_a_json_body(client: FlaskClient, auth: dict[str, str]) -> None:
    expect_error(client.post(SCENE, headers=auth, json=SCENE_FORM), 400, "Content-Type", "application/json")


# -- executePlan JSON bodies ---------------------------------------------------------------------------


def _inputs(api: Api, headers: dict[str, str], plan_id: str, model_var_req: Any) -> dict[str, dict[str, str]]:
    return api.run(api.start(headers, plan_id, modelVarReq=model_var_req))["inputs"]


def test_execute_map_param_as_object(api: Api, auth: dict[str, str]) -> None:
    got = _inputs(api, auth, "acf42dd3", [{"modelId": ACF_MODEL, "mapParam": {"DPA_MODEL_WORKDIR": "/tmp/w"}}])
    assert got == {ACF_MODEL: {"DPA_MODEL_WORKDIR": "/tmp/w"}}


def test_execute_map_param_as_name_value_list(api: Api, auth: dict[str, str]) -> None:
    got = _inputs(
        api,
        auth,
        "acf42dd3",
        [
            {
                "modelId": ACF_MODEL,
                "mapParam": [{"name": "DPA_MODEL_WORKDIR", "value": "/srv/x"}, {"name": "EXTRA", "value": 3}],
            }
        ],
    )
    # Undeclared names are kept (they expand ${NAME}); scalars become strings.
    assert got == {ACF_MODEL: {"DPA_MODEL_WORKDIR": "/srv/x", "EXTRA": "3"}}


def test_execute_without_inputs_uses_defaults(api: Api, auth: dict[str, str]) -> None:
    assert _inputs(api, auth, "acf42dd3", None) == {ACF_MODEL: {"DPA_MODEL_WORKDIR": "/opt/dpa/work"}}


def test_execute_model_var_req_without_model_id_goes_to_declaring_workflows(api: Api, auth: dict[str, str]) -> None:
    got = _inputs(api, auth, "b7e1c0a2", [{"mapParam": {"TARGET_HOST": "h9", "REPORT_FORMAT": "html", "X": True}}])
    assert got == {HOST_MODEL: {"TARGET_HOST": "h9", "CHECK_LEVEL": "basic"}, REPORT_MODEL: {"REPORT_FORMAT": "html"}}


@pytest.mark.parametrize(
    "model_var_req",
    [
        None,
        [],
        [{"modelId": HOST_MODEL, "mapParam": {"TARGET_HOST": ""}}],
        [{"modelId": HOST_MODEL, "mapParam": [{"name": "CHECK_LEVEL", "value": "x"}]}],
    ],
)
def test_execute_required_input_missing_is_400_naming_it(api: Api, auth: dict[str, str], model_var_req: Any) -> None:
    body = {} if model_var_req is None else {"modelVarReq": model_var_req}
    expect_error(api.execute(auth, "b7e1c0a2", **body), 400, "TARGET_HOST", "required")


def test_execute_unknown_model_id_is_400(api: Api, auth: dict[str, str]) -> None:
    response = api.execute(auth, "acf42dd3", modelVarReq=[{"modelId": "md0000", "mapParam": {}}])
    expect_error(response, 400, "modelVarReq[0].modelId", "'md0000'", ACF_MODEL)


@pytest.mark.parametrize(
    "map_param,fragment",
    [
        ([{"value": "x"}], "modelVarReq[0].mapParam"),
        ([{"name": "", "value": "x"}], "modelVarReq[0].mapParam[0].name"),
        ("DPA_MODEL_WORKDIR=/x", "modelVarReq[0].mapParam"),
        ({"DPA_MODEL_WORKDIR": {"nested": 1}}, "modelVarReq[0].mapParam"),
    ],
)
def test_execute_malformed_map_param_is_400(api: Api, auth: dict[str, str], map_param: Any, fragment: str) -> None:
    response = api.execute(auth, "acf42dd3", modelVarReq=[{"modelId": ACF_MODEL, "mapParam": map_param}])
    expect_error(response, 400, fragment)


def test_execute_body_plan_must_match_path(api: Api, client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(EXECUTE.format("acf42dd3"), headers=auth, json={"processPlanId": "b7e1c0a2"})
    expect_error(response, 400, "processPlanId", "'b7e1c0a2'", "'acf42dd3'")
    expect_error(client.post(EXECUTE.format("acf42dd3"), headers=auth, json={}), 400, "processPlanId")
