"""Injected faults (codes, HTTP statuses, latency, counts) and the request journal (fields, redaction, bounds)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mock_server.domain.errors import DOCUMENTED_CODES
from tests.plugins.emulator import EXECUTE, LIST_PLANS, POC, TOKEN, Api
from tests.plugins.engine import admin_runs, api_for, data

ADMIN_SPEC = Path(__file__).resolve().parents[1] / "openapi" / "admin.yaml"


def add_fault(api: Api, **spec: Any) -> dict[str, Any]:
    return data(api.client.post("/__admin/faults", json=spec))


def journal(api: Api, **query: Any) -> list[dict[str, Any]]:
    return data(api.client.get("/__admin/requests", query_string=query))


# -- faults -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "match",
    [{"method": "POST", "path": "opExecutePlanByApi"}, {"operationId": "executePlan"}],
    ids=["path-regex", "operation-id"],
)
def test_code_fault_applies_times_then_the_call_works_again(
    api: Api, auth: dict[str, str], match: dict[str, str]
) -> None:
    fault = add_fault(api, code=503, times=2, message="busy", **match)
    assert fault["remaining"] == 2 and fault["hits"] == 0
    for _ in range(2):
        response = api.execute(auth)
        assert response.status_code == 503
        assert response.get_json() == {"code": 503, "message": "busy", "data": None}
    assert admin_runs(api.client) == []  # a faulted call does nothing
    ok = api.execute(auth).get_json()
    assert ok["code"] == 200 and ok["data"][0]["processPlanId"] == "acf42dd3"
    assert data(api.client.get("/__admin/faults")) == []  # used up
    # Other operations were never affected.
    assert api.client.get(LIST_PLANS, headers=auth).get_json()["code"] == 200


def test_http_status_fault_answers_that_status_with_an_envelope(api: Api, auth: dict[str, str]) -> None:
    add_fault(api, path="queryPlanByUserId", httpStatus=502, times=1)
    response = api.client.get(LIST_PLANS, headers=auth)
    body = response.get_json()
    assert response.status_code == 502
    assert set(body) == {"code", "message", "data"} and body["code"] in DOCUMENTED_CODES and body["data"] is None
    assert api.client.get(LIST_PLANS, headers=auth).status_code == 200


def test_business_code_fault_travels_as_http_200(api: Api, auth: dict[str, str]) -> None:
    add_fault(api, operationId="listPlans", code=999, times=1, message="业务逻辑异常")
    response = api.client.get(LIST_PLANS, headers=auth)
    assert response.status_code == 200 and response.get_json()["code"] == 999


def test_latency_fault_delays_the_answer(api: Api, auth: dict[str, str]) -> None:
    add_fault(api, path="queryPlanByUserId", latencyMs=300, times=1)
    started = time.perf_counter()
    response = api.client.get(LIST_PLANS, headers=auth)
    assert time.perf_counter() - started >= 0.3
    assert response.get_json()["code"] == 200 and response.get_json()["data"]  # only slower, not wrong
    started = time.perf_counter()
    api.client.get(LIST_PLANS, headers=auth)
    assert time.perf_counter() - started < 0.3


def test_fault_without_times_lasts_until_cleared(api: Api, auth: dict[str, str]) -> None:
    add_fault(api, operationId="executePlan", code=500)
    assert [api.execute(auth).get_json()["code"] for _ in range(5)] == [500] * 5
    listed = data(api.client.get("/__admin/faults"))
    assert len(listed) == 1 and listed[0]["hits"] == 5 and listed[0]["remaining"] is None
    cleared = api.client.delete("/__admin/faults").get_json()
    assert cleared["code"] == 200 and data(api.client.get("/__admin/faults")) == []
    assert api.execute(auth).get_json()["code"] == 200


def test_method_criterion_must_match_too(api: Api, auth: dict[str, str]) -> None:
    add_fault(api, method="GET", path="opExecutePlanByApi", code=503)
    assert api.execute(auth).get_json()["code"] == 200  # a POST: not matched


def test_admin_paths_are_never_faulted(api: Api, auth: dict[str, str]) -> None:
    add_fault(api, code=503)  # matches every request
    assert api.client.get("/__admin/clock").get_json()["code"] == 200
    assert api.client.get(LIST_PLANS, headers=auth).get_json()["code"] == 503


@pytest.mark.parametrize(
    "spec,named",
    [
        ({"path": "(unclosed", "code": 503}, "path"),
        ({"path": "x"}, "code"),
        ({"code": 503, "times": 0}, "times"),
        ({"httpStatus": 42}, "httpStatus"),
        ({"code": 503, "colour": "red"}, "colour"),
        ({"latencyMs": -5}, "latencyMs"),
        ({"code": "503"}, "code"),
        ({"path": r"(a)\1", "code": 503}, "RE2"),
        ({"operationId": "nope", "code": 503}, "executePlan"),
        ({"method": "BREW", "code": 503}, "method"),
    ],
    ids=[
        "bad-regex",
        "no-effect",
        "times-0",
        "status-42",
        "unknown-field",
        "negative-latency",
        "code-string",
        "backreference",
        "unknown-operation",
        "unknown-method",
    ],
)
def test_invalid_fault_is_400(api: Api, spec: dict[str, Any], named: str) -> None:
    response = api.client.post("/__admin/faults", json=spec)
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400, body
    assert named in body["message"]
    assert data(api.client.get("/__admin/faults")) == []


# -- journal ----------------------------------------------------------------------------------------
def test_journal_records_method_path_status_and_code(api: Api, auth: dict[str, str]) -> None:
    api.start(auth)
    api.execute(auth, plan_id="00000000")
    add_fault(api, operationId="listPlans", code=503, times=1)
    api.client.get(LIST_PLANS, headers=auth)
    entries = [(e["method"], e["path"], e["status"], e["code"]) for e in journal(api)]
    assert entries[-4:] == [
        ("POST", EXECUTE.format("acf42dd3"), 200, 200),
        ("POST", EXECUTE.format("00000000"), 404, 404),
        ("POST", "/__admin/faults", 200, 200),
        ("GET", LIST_PLANS, 503, 503),
    ]
    assert all(isinstance(e["at"], int) and e["durationMs"] >= 0 for e in journal(api))


def _numbered_calls(api: Api, numbers: range) -> None:
    for i in numbers:
        api.client.get(LIST_PLANS, query_string={"n": str(i)})  # no token: each answers 403


def _numbers(entries: list[dict[str, Any]]) -> list[int]:
    return [int(e["query"]["n"]) for e in entries]


def test_journal_does_not_log_its_own_reads(api: Api) -> None:
    _numbered_calls(api, range(2))
    for _ in range(3):
        journal(api)
    entries = journal(api)
    assert _numbers(entries) == [0, 1] and [(e["status"], e["code"]) for e in entries] == [(403, 403)] * 2


def test_journal_limit_returns_the_most_recent(api: Api) -> None:
    _numbered_calls(api, range(4))
    assert _numbers(journal(api, limit=2)) == [2, 3]
    assert _numbers(journal(api, limit=1)) == [3] and _numbers(journal(api, limit=100)) == [0, 1, 2, 3]
    for bad in ("0", "-1", "abc"):
        response = api.client.get("/__admin/requests", query_string={"limit": bad})
        assert response.status_code == 400 and "limit" in response.get_json()["message"]


def test_journal_is_bounded(make_app: Any) -> None:
    api = api_for(make_app(journal_size=5))
    _numbered_calls(api, range(8))
    assert _numbers(journal(api)) == [3, 4, 5, 6, 7]


def _journal_text(api: Api) -> str:
    return json.dumps(api.client.get("/__admin/requests").get_json(), ensure_ascii=False)


def test_token_bodies_are_redacted_and_no_secret_or_token_is_journaled(api: Api) -> None:
    code = api.code()
    json_reply = api.token(code).get_json()
    form_code = api.code()
    form_reply = api.client.post(TOKEN, data={"code": form_code, "grant_type": "authorization_code", **POC}).get_json()
    tokens = [json_reply["data"]["access_token"], form_reply["data"]["access_token"]]
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    api.client.get(LIST_PLANS, headers=headers)
    api.start(headers)
    token_entries = [e for e in journal(api) if e["path"] == TOKEN]
    assert len(token_entries) == 2
    for entry in token_entries:
        assert entry["body"]["client_secret"] == "***" and entry["body"]["code"] == "***"
        assert entry["body"]["client_id"] == POC["client_id"]
    text = _journal_text(api)
    for secret in [POC["client_secret"], code, form_code, *tokens]:
        assert secret not in text


def test_secrets_in_a_query_string_are_redacted(api: Api) -> None:
    code = api.code()
    api.client.post(TOKEN, query_string={"code": code, "client_secret": POC["client_secret"]}, json={})
    text = _journal_text(api)
    assert POC["client_secret"] not in text and code not in text


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_secrets_in_an_unparseable_token_body_are_not_journaled(api: Api, content_type: str) -> None:
    """A client's typo (trailing comma) must not put its client_secret into the journal verbatim."""
    code = api.code()
    raw = json.dumps({"code": code, "grant_type": "authorization_code", **POC})[:-1] + ",}"
    response = api.client.post(TOKEN, data=raw, content_type=content_type)
    assert response.get_json()["code"] == 400
    text = _journal_text(api)
    assert POC["client_secret"] not in text and code not in text


def test_journal_entries_match_the_admin_contract(api: Api, auth: dict[str, str]) -> None:
    api.start(auth)
    api.client.get(LIST_PLANS, headers=auth, query_string={"x": "1"})
    spec = yaml.safe_load(ADMIN_SPEC.read_text(encoding="utf-8"))
    schema = spec["components"]["schemas"]["RequestLogEntry"]
    schema = {**schema, "properties": {k: _nullable(v) for k, v in schema["properties"].items()}}
    for entry in journal(api):
        jsonschema.validate(entry, schema)


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    prop = {k: v for k, v in prop.items() if k not in ("description", "format")}
    if prop.pop("nullable", False):
        prop["type"] = [prop["type"], "null"]
    return prop
