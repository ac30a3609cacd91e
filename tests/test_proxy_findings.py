"""Both directions judged: a client breaking the document gets client findings, a broken target server findings."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import AUTHORIZE, EXECUTE, LIST_PLANS, MODELS, OUT_PARAMS, POC, SCENE, TOKEN
from tests.plugins.engine import http_advance, http_login
from tests.plugins.proxy import admin, broken_process, findings, proxy_for, proxy_process

pytestmark = pytest.mark.http


@pytest.fixture
def proxied(live: ServerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    with proxy_for(live, tmp_path) as proxy:
        yield proxy


def _kinds(found: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(f["verdict"], f["side"], f["check"]) for f in found}


def test_a_client_breaking_the_document_gets_client_findings(
    live: ServerProcess, proxied: ServerProcess, receiver: CallbackReceiver
) -> None:
    base = proxied.base_url
    headers = http_login(base)
    code = requests.get(
        base + AUTHORIZE,
        params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
        timeout=10,
    ).json()["data"]["code"]
    no_grant = requests.post(base + TOKEN, json={"code": code, **POC}, timeout=10).json()
    assert no_grant["code"] == 400  # the emulator refuses it: no leniency on the server's side
    collapsed = requests.post(
        base + "/api/dpa/process/processPlan/opExecutePlanByApi/acf42dd3",
        headers=headers,
        json={"processPlanId": "acf42dd3"},
        timeout=10,
    ).json()
    assert collapsed["code"] == 200  # served (D2): the client's mistake, the server's observation
    requests.post(
        base + SCENE,
        headers=headers,
        timeout=10,
        data={
            "processPlanId": "acf42dd3",
            "callbackUrl": receiver.url,
            "dimension": "hours",
            "intervals": "1",
            "executeStrategy": "single",
            "sceneName": "x",
            "modelVarReq": json.dumps({"mapParam": "not an object"}),
        },
    )
    requests.post(
        base + EXECUTE.format("acf42dd3"),
        headers=headers,
        timeout=10,
        json={"processPlanId": "acf42dd3", "modelVarReq": {"modelId": "md1606743910508"}},
    )
    requests.get(base + LIST_PLANS, timeout=10)  # no token
    receiver.body("success", times=1)  # the first callback is answered in the wrong case
    requests.post(
        base + EXECUTE.format("acf42dd3"),
        headers=headers,
        timeout=10,
        json={"processPlanId": "acf42dd3", "callbackUrl": receiver.url},
    )
    http_advance(live.base_url, 10)
    assert receiver.wait_for(lambda d: len(d) >= 4, timeout=10)  # DEFAULT twice (refused once), RUNNING, SUCCESS

    client = findings(proxied, side="client", verdict="violation")
    messages = {f["check"]: f["message"] for f in client}
    assert _kinds(client) >= {("violation", "client", c) for c in ("body", "double-slash", "auth", "callback-ack")}
    bodies = [(f["interface"], f["message"]) for f in client if f["check"] == "body"]
    assert any(i == "1.2" and "grant_type" in m for i, m in bodies)
    assert any(i == "4" and "modelVarReq" in m for i, m in bodies)
    assert any(i == "5" and "modelVarReq" in m for i, m in bodies)
    assert "'success'" in messages["callback-ack"]
    server = findings(proxied, side="server")
    assert [f for f in server if f["verdict"] != "observation"] == []  # the emulator refused every bad request
    # The server's choices where the document is silent, once each: single slash served, errors as HTTP = code.
    assert _kinds(server) == {
        ("observation", "server", "double-slash"),
        ("observation", "server", "http-status-policy"),
    }
    assert sorted(f["message"] for f in server if f["check"] == "http-status-policy") == [
        "code 400 travels with HTTP 400",
        "code 403 travels with HTTP 403",
    ]
    # Each finding names its exchange and reproduces it with a curl line, secrets redacted.
    exchanges = {e["id"]: e for e in admin(proxied, "exchanges")}
    token = headers["Authorization"].split()[1]
    for finding in client:
        assert finding["exchange"] in exchanges and finding["curl"].startswith("curl ")
        assert (
            POC["client_secret"] not in finding["curl"] and token not in finding["curl"] and code not in finding["curl"]
        )
    shown = json.dumps(list(exchanges.values()), ensure_ascii=False)
    assert code not in shown and token not in shown and POC["client_secret"] not in shown
    page = requests.get(base + "/__admin/ui", timeout=10).text
    assert "class='violation'" in page and "callback-ack" in page and token not in page
    grant = next(f for f in client if "grant_type" in f["message"])
    assert '"client_secret": "***"' in grant["curl"] and '"code": "***"' in grant["curl"]


def _login(base: str) -> dict[str, str]:
    """Logs in without judging the answers (a broken server may garble them)."""
    code = requests.get(
        base + AUTHORIZE,
        params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
        timeout=10,
    ).json()["data"]["code"]
    token = requests.post(base + TOKEN, json={"code": code, "grant_type": "authorization_code", **POC}, timeout=10)
    return {"Authorization": f"Bearer {token.json()['data']['access_token']}"}


def _run(base: str, target: str, receiver: CallbackReceiver, plan: str = "acf42dd3") -> str:
    headers = _login(base)
    reply = requests.post(
        base + EXECUTE.format(plan),
        headers=headers,
        timeout=10,
        json={"processPlanId": plan, "callbackUrl": receiver.url},
    ).json()
    instance = reply["data"][0]["planInstanceId"]
    http_advance(target, 10)
    requests.get(
        base + OUT_PARAMS, headers=headers, timeout=10, params={"processPlanId": plan, "planInstanceId": instance}
    )
    return str(instance)


def _login_twice_with_one_code(base: str) -> None:
    code = requests.get(
        base + AUTHORIZE,
        params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
        timeout=10,
    ).json()["data"]["code"]
    for _ in range(2):
        requests.post(base + TOKEN, json={"code": code, "grant_type": "authorization_code", **POC}, timeout=10)


Scenario = Callable[[str, str, CallbackReceiver], Any]
SCENARIOS: dict[str, tuple[Scenario, set[tuple[str, str, str]]]] = {
    "missing-envelope-field": (lambda b, t, r: _login(b), {("violation", "server", "envelope")}),
    "success-code-not-200": (
        lambda b, t, r: requests.get(
            b + AUTHORIZE,
            timeout=10,
            params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
        ),
        {("violation", "server", "envelope")},
    ),
    "wrong-field-type": (
        lambda b, t, r: requests.get(b + LIST_PLANS, headers=_login(b), timeout=10),
        {("violation", "server", "fields")},
    ),
    "out-params-missing-nodename": (_run, {("violation", "server", "fields")}),
    "illegal-callback-status": (_run, {("violation", "server", "callback-payload")}),
    "callback-text-plain": (_run, {("violation", "server", "callback-content-type")}),
    "callbacks-retried-too-much": (
        lambda b, t, r: (r.fail(), _run(b, t, r)),
        {("violation", "server", "callback-retries")},
    ),
    "500-on-input": (
        lambda b, t, r: requests.post(b + MODELS, headers=_login(b), json={"processPlanId": "a-b"}, timeout=10),
        {("violation", "server", "envelope")},
    ),
    "validation-as-success": (
        lambda b, t, r: requests.get(
            b + AUTHORIZE, timeout=10, params={"client_id": POC["client_id"], "response_type": "code"}
        ),
        {("violation", "client", "parameters"), ("leniency", "server", "accepted")},
    ),
    "code-reuse": (lambda b, t, r: _login_twice_with_one_code(b), {("violation", "server", "oauth-code-reuse")}),
    "ignores-token": (
        lambda b, t, r: requests.get(b + LIST_PLANS, timeout=10),
        {("violation", "client", "auth"), ("leniency", "server", "accepted")},
    ),
}


@pytest.mark.parametrize("defect", sorted(SCENARIOS))
def test_a_broken_target_gets_server_findings(defect: str, receiver: CallbackReceiver) -> None:
    scenario, expected = SCENARIOS[defect]
    with broken_process(defect) as target, proxy_process(target.base_url, "--quiet") as proxy:
        scenario(proxy.base_url, target.base_url, receiver)
        found = admin(proxy, "findings")
    assert _kinds(found) >= expected, found
    for finding in found:
        if (finding["verdict"], finding["side"], finding["check"]) in expected:
            assert finding["exchange"] > 0 and finding["message"]


def test_a_status_never_retried_is_judged_when_the_session_ends(receiver: CallbackReceiver, tmp_path: Path) -> None:
    """Not while the run goes on (a retry may still come after later statuses, D13): in the report."""
    report = tmp_path / "report.md"
    with (
        broken_process("callbacks-never-retried") as target,
        proxy_process(target.base_url, "--quiet", "--report", str(report)) as proxy,
    ):
        receiver.fail(times=1)
        _run(proxy.base_url, target.base_url, receiver)
        assert ("violation", "server", "callback-retries") not in _kinds(admin(proxy, "findings"))
        proxy.stop()  # SIGTERM: the report is written on the way out
    found = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))["findings"]
    retries = [f for f in found if f["check"] == "callback-retries"]
    assert [(f["verdict"], f["side"]) for f in retries] == [("violation", "server")], found
    assert "DEFAULT was not acknowledged and never retried" in retries[0]["message"]
    assert "never retried" in report.read_text(encoding="utf-8")


def test_a_healthy_target_gets_no_server_finding_in_the_same_scenarios(receiver: CallbackReceiver) -> None:
    with broken_process("healthy") as target, proxy_process(target.base_url, "--quiet") as proxy:
        for name in ("wrong-field-type", "out-params-missing-nodename", "500-on-input", "code-reuse"):
            SCENARIOS[name][0](proxy.base_url, target.base_url, receiver)
        found = admin(proxy, "findings")
    assert [f for f in found if f["side"] == "server" and f["verdict"] != "observation"] == []


def test_a_server_that_chose_otherwise_where_the_document_is_silent_gets_no_violation(
    receiver: CallbackReceiver,
) -> None:
    """`--http-status always200`: every error as HTTP 200 — an observation, never a violation."""
    with (
        ServerProcess("--clock", "virtual", "--http-status", "always200") as target,
        proxy_process(target.base_url, "--quiet") as proxy,
    ):
        base = proxy.base_url
        headers = http_login(base)
        requests.post(base + MODELS, headers=headers, json={"processPlanId": "nope"}, timeout=10)
        requests.get(
            base + OUT_PARAMS, headers=headers, params={"processPlanId": "acf42dd3", "planInstanceId": "x"}, timeout=10
        )
        _run(base, target.base_url, receiver)
        found = admin(proxy, "findings")
    assert [f for f in found if f["verdict"] != "observation"] == [], found
    assert {f["message"] for f in found if f["check"] == "http-status-policy"} == {"code 404 travels with HTTP 200"}
