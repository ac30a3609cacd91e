"""The `{code, message, data}` envelope on every answer: unknown paths, wrong methods, bad bodies, crashes, `//` paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mock_server.domain.platform import Platform
from tests.plugins.emulator import AUTHORIZE, EXECUTE, LIST_PLANS, MODELS, OUT_PARAMS, POC, TOKEN, Api
from tests.plugins.foundation import envelope_of, expect_error


def test_unknown_path_is_a_404_envelope(client: FlaskClient) -> None:
    expect_error(
        client.get("/api/dpa/process/processPlan/noSuchThing"), 404, "/api/dpa/process/processPlan/noSuchThing"
    )
    expect_error(client.post("/", json={}), 404, "POST /")


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("post", AUTHORIZE, "GET"),
        ("get", TOKEN, "POST"),
        ("delete", LIST_PLANS, "GET"),
        ("put", MODELS, "POST"),
        ("get", EXECUTE.format("acf42dd3"), "POST"),
    ],
)
def test_wrong_method_is_http_405_with_allow_and_code_404(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = getattr(client, method)(path)
    body = envelope_of(response)
    assert response.status_code == 405 and body["code"] == 404 and body["data"] is None, body
    assert response.headers["Allow"] == allowed
    assert method.upper() in body["message"] and allowed in body["message"]


def test_options_gets_an_envelope_not_an_empty_200(client: FlaskClient) -> None:
    response = client.options(TOKEN)
    body = envelope_of(response)
    assert response.get_data() != b""
    assert response.status_code == 405 and body["code"] == 404
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "raw,fragment",
    [
        (b'{"code": "x",', "malformed JSON"),
        (b"{'code': 'x'}", "malformed JSON"),
        (b'{"code": "\xff\xfe"}', "malformed JSON"),
    ],
)
def test_malformed_json_is_400(client: FlaskClient, raw: bytes, fragment: str) -> None:
    expect_error(client.post(TOKEN, data=raw, content_type="application/json"), 400, fragment)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream"])
def test_wrong_content_type_is_400(client: FlaskClient, content_type: str) -> None:
    expect_error(
        client.post(TOKEN, data=b'{"code": "x"}', content_type=content_type), 400, content_type, "application/json"
    )


def test_json_with_a_charset_parameter_is_accepted(api: Api, client: FlaskClient) -> None:
    body = json.dumps({"code": api.code(), **POC, "grant_type": "authorization_code"})
    response = client.post(TOKEN, data=body, content_type="application/json;charset=UTF-8")
    assert envelope_of(response)["code"] == 200


def test_oversized_body_is_400(make_app: Callable[..., Flask]) -> None:
    client = make_app(max_body_bytes=1000).test_client()
    big = {"code": "X" * 2000, **POC, "grant_type": "authorization_code"}
    expect_error(client.post(TOKEN, json=big), 400, "1000-byte limit")
    expect_error(client.post(TOKEN, data=big, content_type="application/x-www-form-urlencoded"), 400, "1000-byte")
    # Just under the limit is read normally (and fails for its own reason: the code is unknown).
    small = {"code": "X" * 100, **POC, "grant_type": "authorization_code"}
    expect_error(client.post(TOKEN, json=small), 403, "authorization code is unknown")


def test_internal_error_is_a_500_envelope_without_a_stack_trace(
    client: FlaskClient, platform: Platform, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals at /srv/app/db.py line 42")

    monkeypatch.setattr(platform, "list_plans", boom)
    response = client.get(LIST_PLANS, headers=auth)
    message = expect_error(response, 500, "internal error")
    raw = response.get_data(as_text=True)
    for leak in ("Traceback", "secret internals", ".py", 'File "'):
        assert leak not in raw, raw
    assert message == "internal error: RuntimeError"
    # The app keeps serving after the crash.
    monkeypatch.undo()
    assert envelope_of(client.get(LIST_PLANS, headers=auth))["code"] == 200


def test_always200_mode_sends_every_envelope_as_http_200(make_app: Callable[..., Flask]) -> None:
    app = make_app(http_status="always200")
    client = app.test_client()
    api = Api(client, app.extensions["dpa_platform"])
    expect_error(api.authorize(client_id="Nobody000000000000000w=="), 403, "unknown client_id", http=200)
    expect_error(api.authorize(scope="nope"), 400, "scope", http=200)
    expect_error(client.get(LIST_PLANS), 403, "Authorization", http=200)
    expect_error(client.get("/no/such/path"), 404, "no such path", http=200)
    wrong_method = client.post(AUTHORIZE)
    expect_error(wrong_method, 404, "not supported", http=200)
    assert wrong_method.headers["Allow"] == "GET"
    headers = api.login()
    assert client.get(LIST_PLANS, headers=headers).status_code == 200


def test_mirror_mode_statuses(client: FlaskClient, api: Api) -> None:
    # mirror (default): 400/403/404 travel as those HTTP statuses, 998 as HTTP 200.
    assert api.authorize(scope="nope").status_code == 400
    assert api.authorize(client_id="Nobody000000000000000w==").status_code == 403
    assert client.get("/no/such/path").status_code == 404
    response = api.token(api.code(), user_id="ghost")
    assert response.status_code == 200 and envelope_of(response)["code"] == 998


def test_single_slash_forms_answer_like_the_double_slash_paths(
    client: FlaskClient, api: Api, auth: dict[str, str]
) -> None:
    single_execute = EXECUTE.replace("//", "/")
    single_out = OUT_PARAMS.replace("//", "/")
    assert single_execute != EXECUTE and single_out != OUT_PARAMS
    ids = []
    for path in (EXECUTE, single_execute):
        body = envelope_of(client.post(path.format("acf42dd3"), headers=auth, json={"processPlanId": "acf42dd3"}))
        assert body["code"] == 200 and body["data"][0]["processPlanId"] == "acf42dd3", body
        ids.append(body["data"][0]["planInstanceId"])
    assert ids[0] != ids[1]
    api.advance(10)
    query = {"processPlanId": "acf42dd3", "planInstanceId": ids[0]}
    double = envelope_of(client.get(OUT_PARAMS, headers=auth, query_string=query))
    single = envelope_of(client.get(single_out, headers=auth, query_string=query))
    assert double == single and double["code"] == 200 and len(double["data"][0]["mapParam"]) == 2
    # Errors are the same too.
    for bad in ({"processPlanId": "acf42dd3"}, {"processPlanId": "acf42dd3", "planInstanceId": "in0"}):
        a, b = (client.get(p, headers=auth, query_string=bad) for p in (OUT_PARAMS, single_out))
        assert (a.status_code, envelope_of(a)) == (b.status_code, envelope_of(b))
        assert a.status_code in (400, 404)
    a, b = (
        client.post(p.format("acf42dd3"), headers=auth, json={"processPlanId": "other"})
        for p in (EXECUTE, single_execute)
    )
    assert (a.status_code, envelope_of(a)) == (b.status_code, envelope_of(b)) and a.status_code == 400


def test_other_slash_counts_are_404(client: FlaskClient, auth: dict[str, str]) -> None:
    triple = OUT_PARAMS.replace("//", "///")
    expect_error(
        client.get(triple, headers=auth, query_string={"processPlanId": "a", "planInstanceId": "b"}),
        404,
        "no such path",
    )
    expect_error(client.get(LIST_PLANS.replace("/processPlan", "//processPlan"), headers=auth), 404, "no such path")


def test_content_type_is_json_and_chinese_is_not_escaped(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get(LIST_PLANS, headers=auth)
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert "测试预案".encode() in response.get_data()
    assert b"\\u" not in response.get_data()
    error = client.post(MODELS, headers=auth, json={"processPlanId": "不存在的预案"})
    assert "不存在的预案".encode() in error.get_data()
    assert error.headers["Content-Type"].startswith("application/json")


def test_error_envelopes_are_json_even_for_routing_errors(client: FlaskClient) -> None:
    for response in (client.get("/nowhere"), client.patch(TOKEN), client.get(LIST_PLANS)):
        assert response.headers["Content-Type"].startswith("application/json")
        envelope_of(response)
