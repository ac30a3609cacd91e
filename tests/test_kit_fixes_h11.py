"""Regression tests for the kit's false alarms and misses found by the adversarial run (engineer H11)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from contract_tests import schema_checks
from contract_tests.plugins import auth as auth_module
from contract_tests.support import kit as kit_module
from contract_tests.support.kit import Kit
from mock_server.testing.receiver import CallbackReceiver


@pytest.fixture
def fresh_kit(monkeypatch: pytest.MonkeyPatch) -> Kit:
    """A Kit of its own, so the kit's session state (when it runs in this process) is left alone."""
    kit = Kit()
    kit.current_test = "contract_tests/test_x.py::test_y"
    for module in (schema_checks, kit_module, auth_module):
        monkeypatch.setattr(module, "KIT", kit)
    return kit


def answer(http_status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = http_status
    response._content = json.dumps(body).encode("utf-8")
    return response


# -- an error envelope is judged by its business code, whatever HTTP status carries it ---------------------
@pytest.mark.parametrize(
    ("http_status", "code", "judged"),
    [
        (400, 403, 403),  # one HTTP status (400) for every error: the 403 still reads as an auth refusal
        (500, 999, 400),  # a Spring handler's HTTP 500 for a business exception: a rejection, not a server error
        (200, 998, 400),
        (500, 500, 500),  # the documented server error stays one
        (500, 200, 500),  # success in an HTTP 500: the status is what is wrong
    ],
)
def test_effective_status_follows_the_business_code(http_status: int, code: int, judged: int) -> None:
    assert schema_checks._effective_status(answer(http_status, {"code": code, "message": "m", "data": None})) == judged


def test_http_500_with_a_documented_business_code_is_observed_not_a_server_error(fresh_kit: Kit) -> None:
    response = answer(500, {"code": 999, "message": "业务逻辑异常", "data": None})
    assert schema_checks._envelope_problem(response, schema_checks.envelope(response)) is None
    assert ("http-status.code-999", "500") in fresh_kit.observations


@pytest.mark.parametrize(
    "body", [{"code": 500, "message": "boom", "data": None}, {"code": 200, "message": "ok", "data": []}]
)
def test_http_500_is_still_a_server_error_for_code_500_or_success(fresh_kit: Kit, body: dict[str, Any]) -> None:
    response = answer(500, body)
    problem = schema_checks._envelope_problem(response, schema_checks.envelope(response))
    assert problem is not None and problem.startswith("server error")


# -- positive_data_acceptance: a media type the document never shows is not a promise --------------------
@dataclass
class _Mode:
    is_positive: bool = True
    is_negative: bool = False


@dataclass
class _Case:
    media_type: str
    operation: Any = field(
        default_factory=lambda: SimpleNamespace(
            label="POST /api/dp/auth/oauth/token",
            definition=SimpleNamespace(raw={"operationId": "getToken", "security": []}),
        )
    )
    meta: Any = field(default_factory=lambda: SimpleNamespace(generation=SimpleNamespace(mode=_Mode())))
    _meta: Any = None


def _refused_token_call(media_type: str) -> tuple[Any, requests.Response]:
    case = _Case(media_type)
    response = answer(200, {"code": 400, "message": "Content-Type must be application/json", "data": None})
    response.request = requests.Request(
        "POST", "http://127.0.0.1:1/api/dp/auth/oauth/token", headers={"Content-Type": media_type}
    ).prepare()
    schema_checks.PROMISED.add(id(case))
    return case, response


def test_token_form_body_refused_is_not_a_violation(fresh_kit: Kit) -> None:
    case, response = _refused_token_call("application/x-www-form-urlencoded")
    assert schema_checks.positive_data_acceptance_envelope(None, response, case) is None
    assert any(topic == "fuzzing.codes" and "not in the document" in detail for topic, detail in fresh_kit.observations)


def test_token_json_body_refused_is_still_a_violation(fresh_kit: Kit) -> None:
    case, response = _refused_token_call("application/json")
    with pytest.raises(AssertionError, match="promises to accept"):
        schema_checks.positive_data_acceptance_envelope(None, response, case)


# -- opaque tokens: rechecked (and replaced when refused) once the target's clock moved -------------------
class _Session:
    """A target that issues opaque tokens and refuses those issued before its clock passed `expire_before`."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.expired: set[str] = set()
        self.checks = 0

    def get(self, url: str, params: Any = None, headers: Any = None, timeout: float = 0) -> requests.Response:
        if url.endswith("/oauth/authorize"):
            return answer(200, {"code": 200, "message": "", "data": {"code": f"C{len(self.issued)}"}})
        self.checks += 1
        token = (headers or {}).get("Authorization", "").partition(" ")[2]
        if token in self.expired:
            return answer(200, {"code": 403, "message": "access token has expired", "data": None})
        return answer(200, {"code": 200, "message": "", "data": []})

    def post(self, url: str, json: Any = None, timeout: float = 0) -> requests.Response:
        token = f"opaque{len(self.issued)}"
        self.issued.append(token)
        return answer(200, {"code": 200, "message": "", "data": {"access_token": token, "token_type": "Bearer"}})


def _auth(monkeypatch: pytest.MonkeyPatch, fresh_kit: Kit) -> tuple[auth_module.KitAuth, _Session]:
    fresh_kit.config = SimpleNamespace(
        client_id="c",
        client_secret="s",
        scope="all",
        user_id=None,  # type: ignore[assignment]
        secrets=list,
        strict=False,
    )
    session = _Session()
    return auth_module.KitAuth(SimpleNamespace(session=session, base_url="http://t")), session  # type: ignore[arg-type]


def test_opaque_token_replaced_after_the_clock_moved_past_its_life(
    monkeypatch: pytest.MonkeyPatch, fresh_kit: Kit
) -> None:
    kit_auth, session = _auth(monkeypatch, fresh_kit)
    kit_auth.forget_if_expired(1000.0)  # the kit read the target's clock
    first = kit_auth.token()
    kit_auth.forget_if_expired(1010.0)  # a small step: no extra request
    assert kit_auth.token() == first and session.checks == 0
    session.expired.add(first)
    kit_auth.forget_if_expired(1000.0 + 3 * 3600)  # hours later: the token is checked once, refused, replaced
    second = kit_auth.token()
    assert second != first and session.checks == 1
    assert kit_auth.token() == second and session.checks == 1  # checked once, not on every use


def test_opaque_token_kept_when_still_accepted(monkeypatch: pytest.MonkeyPatch, fresh_kit: Kit) -> None:
    kit_auth, session = _auth(monkeypatch, fresh_kit)
    first = kit_auth.token()
    kit_auth.forget_if_expired(5000.0)  # no known issue time: check on the first move
    assert kit_auth.token() == first and session.checks == 1


# -- the callback receiver --------------------------------------------------------------------------------
def test_receiver_reads_a_chunked_post() -> None:
    payload = json.dumps({"planInstanceId": "in1", "processPlanId": "p", "status": "RUNNING"}).encode()
    with CallbackReceiver() as receiver:
        host, port = receiver._address()
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request(
            "POST",
            "/callback",
            body=iter([payload[:7], payload[7:20], payload[20:]]),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        reply = conn.getresponse()
        assert (reply.status, reply.read()) == (200, b"SUCCESS")
        conn.close()
        assert [d.headers.get("Transfer-Encoding") for d in receiver.deliveries] == ["chunked"]
        assert receiver.deliveries[0].raw == payload


def test_receiver_fails_one_status_only() -> None:
    with CallbackReceiver() as receiver:
        receiver.fail_status("SUCCESS", times=2)
        answers = []
        for status in ("RUNNING", "SUCCESS", "SUCCESS", "SUCCESS"):
            reply = requests.post(
                receiver.url, json={"planInstanceId": "in1", "processPlanId": "p", "status": status}, timeout=5
            )
            answers.append((status, reply.status_code, reply.text))
    assert answers == [
        ("RUNNING", 200, "SUCCESS"),
        ("SUCCESS", 500, "FAIL"),
        ("SUCCESS", 500, "FAIL"),
        ("SUCCESS", 200, "SUCCESS"),
    ]


# -- the report names schemathesis' failed checks and their messages ----------------------------------------
def test_report_message_lists_each_failed_check() -> None:
    from schemathesis.core.failures import CustomFailure, FailureGroup

    from contract_tests.plugins.report import _check_failures

    group = FailureGroup(
        [
            CustomFailure(
                operation="GET /x",
                title="Custom check failed: `envelope_conformance`",
                message="server error: HTTP 500, code 500",
                exception=AssertionError("x"),
            ),
            CustomFailure(
                operation="GET /x",
                title="Custom check failed: `positive_data_acceptance`",
                message="GET /x: a request the document promises to accept was refused\nsecond line",
                exception=AssertionError("y"),
            ),
        ],
        "Schemathesis found 2 distinct failures",
    )
    text = _check_failures(group)
    assert text is not None and text.startswith("2 failure(s):")
    assert "- Custom check failed: `envelope_conformance`: server error: HTTP 500, code 500" in text
    assert (
        "`positive_data_acceptance`: GET /x: a request the document promises to accept was refused\n  second line"
        in text
    )
    assert _check_failures(AssertionError("plain")) is None  # other failures keep their first lines
