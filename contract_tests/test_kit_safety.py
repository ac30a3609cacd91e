"""The kit's own guards (no request is sent): the write policy against live targets, and secret redaction."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.plugins.safety import WriteBlocked, WritePolicy
from contract_tests.support.props import kit_settings
from contract_tests.support.redact import SECRETS, curl_line, redact

BASE = "https://staging.example:29041"
EXECUTE = BASE + "/api/dpa/process//processPlan/opExecutePlanByApi/{}"
SCENE = BASE + "/api/dpa/process/processPlan/saveTimingParam"


def live(**changes: object) -> WritePolicy:
    options: dict[str, object] = {
        "in_process": False,
        "allow_writes": True,
        "plan_ids": ("acf42dd3",),
        "allow_scenes": True,
        "scene_strategies": ("single",),
        "max_runs": None,
        "max_scenes": None,
    }
    options.update(changes)
    return WritePolicy(**options)  # type: ignore[arg-type]  # tests pass loose option dicts


def prepared(method: str, url: str, **kwargs: object) -> requests.PreparedRequest:
    return requests.Request(method, url, **kwargs).prepare()  # type: ignore[arg-type]  # loose kwargs, as above


def accepted(policy: WritePolicy, request: requests.PreparedRequest) -> bool:
    try:
        policy.check(request)
    except WriteBlocked:
        return False
    return True


@pytest.mark.interface(0)
def test_executions_only_of_allowed_plans_and_within_the_cap() -> None:
    policy = live(max_runs=1)
    assert accepted(policy, prepared("POST", EXECUTE.format("acf42dd3"), json={"processPlanId": "acf42dd3"}))
    assert not accepted(policy, prepared("POST", EXECUTE.format("b7e1c0a2"), json={"processPlanId": "b7e1c0a2"}))
    # A body naming another plan is refused even on an allowed path (a lax server might run the body's plan).
    assert not accepted(policy, prepared("POST", EXECUTE.format("acf42dd3"), json={"processPlanId": "b7e1c0a2"}))
    ok = requests.Response()
    ok.status_code, ok._content = (
        200,
        json.dumps(
            {"code": 200, "message": "success", "data": [{"processPlanId": "acf42dd3", "planInstanceId": "in1"}]}
        ).encode(),
    )
    policy.record("execute", prepared("POST", EXECUTE.format("acf42dd3"), json={"processPlanId": "acf42dd3"}), ok)
    assert not accepted(policy, prepared("POST", EXECUTE.format("acf42dd3"), json={"processPlanId": "acf42dd3"}))
    assert not accepted(live(allow_writes=False), prepared("POST", EXECUTE.format("acf42dd3"), json={}))


@pytest.mark.interface(0)
def test_unreadable_success_still_counts_as_a_run() -> None:
    policy = live(max_runs=1)
    garbled = requests.Response()
    garbled.status_code, garbled._content = 200, b"<html>ok</html>"
    policy.record("execute", prepared("POST", EXECUTE.format("acf42dd3"), json={}), garbled)
    assert policy.runs_started == 1


@pytest.mark.interface(0)
def test_scenes_single_only_and_never_reset_or_other_methods_live() -> None:
    form = {
        "processPlanId": "acf42dd3",
        "executeStrategy": "single",
        "callbackUrl": "x",
        "dimension": "hours",
        "intervals": "1",
        "sceneName": "s",
    }
    assert accepted(live(), prepared("POST", SCENE, data=form))
    assert not accepted(live(), prepared("POST", SCENE, data={**form, "executeStrategy": "cycle"}))
    assert not accepted(live(), prepared("POST", SCENE, data={k: v for k, v in form.items() if k != "executeStrategy"}))
    assert not accepted(live(allow_scenes=False), prepared("POST", SCENE, data=form))
    assert not accepted(live(max_scenes=0), prepared("POST", SCENE, data=form))
    assert not accepted(live(), prepared("POST", BASE + "/__admin/reset"))
    assert not accepted(live(), prepared("DELETE", BASE + "/api/dpa/process/processPlan/queryPlanByUserId"))
    in_process = live(in_process=True, plan_ids=None, scene_strategies=None)
    assert accepted(in_process, prepared("POST", BASE + "/__admin/reset"))
    assert accepted(in_process, prepared("POST", SCENE, data={**form, "executeStrategy": "cycle"}))


@pytest.mark.interface(0)
def test_redaction_masks_tokens_codes_and_registered_secrets() -> None:
    secret = "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU-kit-test"
    SECRETS.add(secret)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJVMTAwMDAwIn0.c2lnbmF0dXJlc2lnbmF0dXJl"

    @kit_settings(max_examples=20)
    @given(
        prefix=st.text(max_size=20).filter(lambda t: "eyJ" not in t),
        suffix=st.text(max_size=20).filter(lambda t: "eyJ" not in t),
    )
    def check(prefix: str, suffix: str) -> None:
        for text in (
            f"{prefix}{secret}{suffix}",
            f"{prefix} Authorization: Bearer {jwt}{suffix}",
            f'{prefix}{{"access_token": "{jwt[:30]}',
        ):
            clean = redact(text)
            assert secret not in clean and "eyJ" not in clean, clean

    check()
    assert redact('{"code": "ABCDEF123456", "message": ""}') == '{"code": "***", "message": ""}'
    assert redact('{"code": 200}') == '{"code": 200}'  # the envelope's code is not a secret
    line = curl_line(
        "POST",
        BASE + "/api/dp/auth/oauth/token?code=XYZ",
        {"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"},
        json.dumps({"code": "XYZ", "client_secret": secret, "client_id": "app"}).encode(),
    )
    assert secret not in line and jwt not in line and "XYZ" not in line
    assert line.startswith("curl -X POST") and "'Authorization: Bearer ***'" in line and '"client_id": "app"' in line
