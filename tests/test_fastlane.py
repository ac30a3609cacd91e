"""The two doors into the one pipeline (mock_server/http/pipeline.py) answer alike: the fast lane and Flask give the
same status, headers, body, journal entry and access-log line; the fast lane takes every ordinary vendor request."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from mock_server.app import create_app
from mock_server.http.fastlane import FastLane
from mock_server.settings import load_settings
from tests.plugins.emulator import (
    AUTHORIZE,
    DEFAULT_ONLY,
    EXECUTE,
    LIST_PLANS,
    MODELS,
    OUT_PARAMS,
    POC,
    SCENE,
    TOKEN,
    Api,
)
from tests.plugins.engine import api_for, scene_form

PATHS = [LIST_PLANS, OUT_PARAMS, OUT_PARAMS.replace("//", "/")]
QUERY_NAMES = ["processPlanId", "planInstanceId", "code", "token", "x"]


class Lanes:
    """One app reached twice: through the fast lane, and through Flask alone; counts what Flask answered."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        lane = app.wsgi_app
        assert isinstance(lane, FastLane)  # create_app puts the fast door in front of Flask's wsgi_app
        self.lane = lane
        self.flask_calls = 0
        flask_app = self.lane.flask_app

        def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            self.flask_calls += 1
            return flask_app(environ, start_response)

        self.lane.flask_app = counting
        self.fast, self.slow = Client(self.lane), Client(flask_app)
        self.journal = app.extensions["dpa_platform"].journal

    def both(self, method: str, path: str, **kw: Any) -> tuple[Any, Any]:
        """The same request both ways: (response, new journal entries, access-log lines) from each, comparable
        field by field (durations aside)."""
        results = []
        for client in (self.fast, self.slow):
            before = len(self.journal.recent())
            with _access_lines() as lines:
                response = client.open(path, method=method, **kw)
            entries = [{k: v for k, v in e.items() if k != "durationMs"} for e in self.journal.recent()[before:]]
            headers = sorted((k, v) for k, v in response.headers.items() if k not in ("Date", "Server"))
            results.append(
                (
                    (response.status, headers, response.get_data()),
                    entries,
                    [re.sub(r" [\d.]+ms$", "", line) for line in lines],
                )
            )
        return results[0], results[1]


class _Lines(logging.Handler):
    """Keeps each record's message."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _access_lines() -> Iterator[list[str]]:
    handler = _Lines()
    lines = handler.lines
    logger = logging.getLogger("dpa_mock.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(log_requests=True)  # the access log too must say the same both ways


@pytest.fixture
def lanes(app: Flask) -> Lanes:
    return Lanes(app)


@pytest.fixture
def tokens(api: Api) -> list[str]:
    instance = api.start(api.login())
    valid = api.login()["Authorization"]
    other_app = api.login(DEFAULT_ONLY)["Authorization"]
    tampered = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    return [instance, valid, other_app, tampered, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "", "bearer  "]


def test_the_fast_lane_serves_plain_reads_without_flask(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    instance = api.start(auth)
    calls = lanes.flask_calls
    listed = lanes.fast.get(LIST_PLANS, headers=auth)
    out = lanes.fast.get(
        OUT_PARAMS, headers=auth, query_string={"processPlanId": "acf42dd3", "planInstanceId": instance}
    )
    assert listed.status_code == 200 and listed.get_json()["code"] == 200 and listed.get_json()["data"]
    assert out.status_code == 200 and out.get_json()["code"] == 200
    assert lanes.flask_calls == calls, "plain reads should not have reached Flask"


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"processPlanId": "acf42dd3"},
        {"processPlanId": "nope", "planInstanceId": "1"},
        {"processPlanId": "acf42dd3", "planInstanceId": "does-not-exist"},
        {"code": "secret", "token": "t"},
        "processPlanId=%FF%FE&planInstanceId=%E4%B8%AD",
        "processPlanId&planInstanceId=",
        "a=1&a=2",
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_every_answer_matches_flask(lanes: Lanes, tokens: list[str], path: str, query: Any) -> None:
    instance, *headers = tokens
    if isinstance(query, dict) and query.get("planInstanceId") == "1":
        query = {**query, "planInstanceId": instance}
    for header in headers:
        fast, slow = lanes.both("GET", path, headers={"Authorization": header} if header else {}, query_string=query)
        assert fast == slow, (path, query, header)


@given(
    header=st.one_of(st.just(""), st.text(max_size=40)),
    query=st.dictionaries(st.sampled_from(QUERY_NAMES), st.text(max_size=12), max_size=4),
    path=st.sampled_from(PATHS),
)
# Reads change no state, so one app serves every example.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_header_and_query_match_flask(lanes: Lanes, header: str, query: dict[str, str], path: str) -> None:
    # Any header WSGI can carry (latin-1, one line), tabs and other controls included.
    headers = {"Authorization": header} if header and header.isascii() and not {"\r", "\n"} & set(header) else {}
    fast, slow = lanes.both("GET", path, headers=headers, query_string=query)
    assert fast == slow


def test_always200_mode_matches_flask(make_app: Callable[..., Flask]) -> None:
    lanes = Lanes(make_app(http_status="always200"))
    fast, slow = lanes.both("GET", LIST_PLANS)
    assert fast == slow
    assert fast[0][0] == "200 OK" and b'"code":403' in fast[0][2]


def test_a_pending_fault_is_taken_once_through_flask(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    api.client.post("/__admin/faults", json={"operationId": "listPlans", "code": 503, "times": 1})
    calls = lanes.flask_calls
    first = lanes.fast.get(LIST_PLANS, headers=auth)
    assert first.get_json()["code"] == 503 and lanes.flask_calls == calls + 1
    assert api.platform.list_faults() == []  # used up
    second = lanes.fast.get(LIST_PLANS, headers=auth)
    assert second.get_json()["code"] == 200 and lanes.flask_calls == calls + 1


@pytest.mark.parametrize(
    "method, kw",
    [
        ("HEAD", {}),
        ("POST", {}),
        ("GET", {"data": b"{}", "content_type": "application/json"}),
    ],
)
def test_unusual_requests_go_to_flask(lanes: Lanes, api: Api, method: str, kw: dict[str, Any]) -> None:
    auth = api.login()
    calls = lanes.flask_calls
    fast, slow = lanes.both(method, LIST_PLANS, headers=auth, **kw)
    assert fast == slow
    assert lanes.flask_calls == calls + 1


def test_trailing_slash_goes_to_flask_and_still_answers(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    calls = lanes.flask_calls
    response = lanes.fast.get(LIST_PLANS + "/", headers=auth)
    assert response.get_json()["code"] == 200 and lanes.flask_calls == calls + 1


@pytest.mark.parametrize("where", ["list_plans", "faults_pending"])  # in the read, and before it
def test_an_unexpected_error_is_a_500_envelope_both_ways(
    lanes: Lanes, api: Api, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    auth = api.login()

    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.platform, where, broken)
    fast, slow = lanes.both("GET", LIST_PLANS, headers=auth)
    assert fast == slow
    assert fast[0][0] == "500 INTERNAL SERVER ERROR" and b"internal error: RuntimeError" in fast[0][2]


def test_a_fault_with_uses_left_counts_one_use_per_request(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    api.client.post("/__admin/faults", json={"operationId": "listPlans", "code": 503, "times": 2})
    assert lanes.fast.get(LIST_PLANS, headers=auth).get_json()["code"] == 503
    assert [(f.remaining, f.hits) for f in api.platform.list_faults()] == [(1, 1)]


def test_a_latency_only_fault_goes_through_flask_and_answers(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    api.client.post("/__admin/faults", json={"operationId": "listPlans", "latencyMs": 1, "times": 1})
    calls = lanes.flask_calls
    assert lanes.fast.get(LIST_PLANS, headers=auth).get_json()["code"] == 200
    assert lanes.flask_calls == calls + 1 and api.platform.list_faults() == []


def test_the_single_slash_alias_is_served_by_the_fast_lane(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    instance = api.start(auth)
    calls = lanes.flask_calls
    alias = lanes.fast.get(
        OUT_PARAMS.replace("//", "/"),
        headers=auth,
        query_string={"processPlanId": "acf42dd3", "planInstanceId": instance},
    )
    assert alias.get_json()["code"] == 200 and lanes.flask_calls == calls


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_TRANSFER_ENCODING": "chunked"},
        {"CONTENT_LENGTH": "00"},
        {"HTTP_HOST": "a..b"},
        {"HTTP_HOST": "a" * 64},
    ],
)
def test_odd_framing_and_hosts_go_to_flask(lanes: Lanes, api: Api, environ: dict[str, str]) -> None:
    auth = api.login()
    calls = lanes.flask_calls
    fast, slow = lanes.both("GET", LIST_PLANS, headers=auth, environ_overrides=environ)
    assert fast == slow
    assert lanes.flask_calls == calls + 1


def test_a_bad_host_is_a_400_envelope(lanes: Lanes, api: Api) -> None:
    response = lanes.fast.get(LIST_PLANS, headers=api.login(), environ_overrides={"HTTP_HOST": "a..b"})
    assert response.status_code == 400 and response.get_json()["code"] == 400


@pytest.mark.parametrize("path", [*PATHS, "/api/dp/auth/oauth/authorize", "/__admin/runs"])
def test_a_query_string_that_is_not_utf8_is_a_400_both_ways(lanes: Lanes, path: str) -> None:
    fast, slow = lanes.both("GET", path, environ_overrides={"QUERY_STRING": "processPlanId=\xff\xfe&code=s"})
    assert fast == slow
    assert fast[0][0] == "400 BAD REQUEST" and b"not valid UTF-8" in fast[0][2]
    if not path.startswith("/__admin"):  # admin reads are not journalled
        assert [e["query"] for e in fast[1]] == [{}]


@given(query=st.text(alphabet="ab=&;+%2Fx中 ", max_size=16), path=st.sampled_from(PATHS))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_raw_query_string_matches_flask(lanes: Lanes, query: str, path: str) -> None:
    fast, slow = lanes.both("GET", path, query_string=query)
    assert fast == slow


def test_a_lone_surrogate_in_a_run_input_still_reads_back(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    raw = (
        '{"processPlanId":"acf42dd3","modelVarReq":[{"modelId":"md1606743910508",'
        '"mapParam":{"DPA_MODEL_WORKDIR":"\\ud800"}}]}'
    )
    started = api.client.post(EXECUTE.format("acf42dd3"), headers=auth, data=raw, content_type="application/json")
    instance = started.get_json()["data"][0]["planInstanceId"]
    api.advance(5)
    fast, slow = lanes.both(
        "GET", OUT_PARAMS, headers=auth, query_string={"processPlanId": "acf42dd3", "planInstanceId": instance}
    )
    assert fast == slow
    assert fast[0][0] == "200 OK" and json.loads(fast[0][2])["code"] == 200


FORM = "application/x-www-form-urlencoded"


def test_all_seven_operations_take_the_fast_door_when_ordinary(lanes: Lanes) -> None:
    calls = lanes.flask_calls
    authorized = lanes.fast.get(
        AUTHORIZE, query_string={"client_id": POC["client_id"], "response_type": "code", "scope": "default"}
    ).get_json()
    assert authorized["code"] == 200, authorized
    token = lanes.fast.post(
        TOKEN, json={**POC, "code": authorized["data"]["code"], "grant_type": "authorization_code"}
    ).get_json()
    assert token["code"] == 200, token
    auth = {"Authorization": f"Bearer {token['data']['access_token']}"}
    answers = [
        lanes.fast.get(LIST_PLANS, headers=auth),
        lanes.fast.post(MODELS, headers=auth, json={"processPlanId": "acf42dd3"}),
        lanes.fast.post(SCENE, headers=auth, data=scene_form()),
    ]
    started = lanes.fast.post(EXECUTE.format("acf42dd3"), headers=auth, json={"processPlanId": "acf42dd3"})
    instance = started.get_json()["data"][0]["planInstanceId"]
    answers += [
        started,
        lanes.fast.get(
            OUT_PARAMS, headers=auth, query_string={"processPlanId": "acf42dd3", "planInstanceId": instance}
        ),
    ]
    assert [a.get_json()["code"] for a in answers] == [200] * 5, [a.get_json() for a in answers]
    assert lanes.flask_calls == calls, "ordinary vendor requests should not have reached Flask"
    # Each was journalled once, as Flask's door journals: method, path, code, secrets masked.
    entries = lanes.journal.recent()[-7:]
    assert [(e["method"], e["code"]) for e in entries] == [
        ("GET", 200),
        ("POST", 200),
        ("GET", 200),
        ("POST", 200),
        ("POST", 200),
        ("POST", 200),
        ("GET", 200),
    ]
    assert entries[1]["body"]["client_secret"] == "***" and entries[1]["body"]["code"] == "***"


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"", None),
        (b"{", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"code": "a-secret-code", "client_secret": "a-secret-value", "processPlanId": 7}', "application/json"),
        (b'"just a string"', None),
        (b"x=1&code=a-secret-code&client_secret=zzzzzz", FORM),
        (b"x", "text/plain"),
        (b"processPlanId=acf42dd3&cycleType=bogus", FORM),
        (b"%ff=%fe", FORM),
        (b'{"processPlanId": ["acf42dd3"], "modelVarReq": 3}', "application/json; charset=utf-8"),
    ],
)
@pytest.mark.parametrize("path", [TOKEN, MODELS, EXECUTE.format("acf42dd3"), EXECUTE.format("nope"), SCENE])
def test_every_refused_write_matches_flask(
    lanes: Lanes, tokens: list[str], path: str, body: bytes, content_type: str | None
) -> None:
    for header in tokens[1:4] + [""]:
        headers = {"Authorization": header} if header else {}
        if content_type:
            headers["Content-Type"] = content_type
        fast, slow = lanes.both("POST", path, headers=headers, data=body)
        assert fast == slow, (path, body, header)


def test_a_secret_in_a_refused_body_is_masked_both_ways(lanes: Lanes) -> None:
    body = {
        "code": "not-a-real-code-1234",
        "client_id": POC["client_id"],
        "client_secret": POC["client_secret"],
        "grant_type": "authorization_code",
    }
    fast, slow = lanes.both("POST", TOKEN, json=body)
    assert fast == slow
    assert b"not-a-real-code-1234" not in fast[0][2] and POC["client_secret"].encode() not in fast[0][2]
    assert fast[1][0]["body"]["code"] == "***"


@pytest.mark.parametrize(
    "kw",
    [
        {"data": {"processPlanId": "acf42dd3"}, "content_type": "multipart/form-data"},
        {"data": b"{}", "content_type": "application/json", "environ_overrides": {"CONTENT_LENGTH": "02"}},
        {"data": b"{}", "content_type": "application/json", "environ_overrides": {"HTTP_TRANSFER_ENCODING": "chunked"}},
    ],
)
def test_unusual_writes_go_to_flask(lanes: Lanes, api: Api, kw: dict[str, Any]) -> None:
    auth = api.login()
    calls = lanes.flask_calls
    fast, slow = lanes.both("POST", MODELS, headers=auth, **kw)
    assert fast == slow
    assert lanes.flask_calls == calls + 1


def test_a_fault_on_a_write_is_taken_through_flask(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    api.client.post("/__admin/faults", json={"operationId": "executePlan", "code": 998, "times": 1})
    calls = lanes.flask_calls
    first = lanes.fast.post(EXECUTE.format("acf42dd3"), headers=auth, json={"processPlanId": "acf42dd3"})
    assert first.get_json()["code"] == 998 and lanes.flask_calls == calls + 1
    second = lanes.fast.post(EXECUTE.format("acf42dd3"), headers=auth, json={"processPlanId": "acf42dd3"})
    assert second.get_json()["code"] == 200 and lanes.flask_calls == calls + 1


def test_a_path_parameter_is_routed_as_flask_routes_it(lanes: Lanes, api: Api) -> None:
    auth = api.login()
    for path in (EXECUTE.format(""), EXECUTE.format("a/b"), EXECUTE.format("a%2Fb")):
        fast, slow = lanes.both("POST", path, headers=auth, json={"processPlanId": "acf42dd3"})
        assert fast == slow, path
        assert json.loads(fast[0][2])["code"] != 200


@pytest.mark.parametrize("mode", ["always200", "gateway"])
def test_writes_match_flask_under_always200_and_the_gateway_profile(make_app: Callable[..., Flask], mode: str) -> None:
    if mode == "gateway":
        settings = load_settings(env={}, profile="gateway").replace(clock="virtual", log_requests=True)
        app = create_app(settings)
    else:
        app = make_app(http_status="always200", log_requests=True)
    try:
        lanes = Lanes(app)
        auth = api_for(app).login()
        assert lanes.flask_calls == 0  # login: authorize and token through the fast door
        asked: list[tuple[str, dict[str, Any]]] = [  # werkzeug test client keyword arguments
            (TOKEN, {"data": b"{", "content_type": "application/json"}),
            (TOKEN, {"json": {**POC, "code": "not-a-code-0000", "grant_type": "authorization_code"}}),
            (MODELS, {"headers": auth, "json": {"processPlanId": "nope0000"}}),
            (MODELS, {"headers": auth, "json": {"processPlanId": "acf42dd3"}}),
            (MODELS, {"json": {"processPlanId": "acf42dd3"}}),
            (EXECUTE.format("nope0000"), {"headers": auth, "json": {"processPlanId": "nope0000"}}),
            (EXECUTE.format("acf42dd3"), {"headers": auth, "data": b"x", "content_type": "text/plain"}),
            (SCENE, {"headers": auth, "data": {"processPlanId": "acf42dd3", "cycleType": "bogus"}}),
        ]
        for path, kwargs in asked:
            fast, slow = lanes.both("POST", path, **kwargs)
            assert fast == slow, path
            assert fast[0][0] == "200 OK", fast
            assert lanes.flask_calls == 0, path
    finally:
        app.extensions["dpa_platform"].close()
