"""Profiles (docs/profiles.md): every setting's alternative observable over HTTP, on every door, loaded as a
profile by `dpa-mock serve --profile`, with the documented precedence and start-up errors."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from mock_server.app import create_app
from mock_server.settings import Settings, SettingsError, load_settings, settings_to_env
from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import AUTHORIZE, EXECUTE, LIST_PLANS, MODELS, OUT_PARAMS, POC, Api
from tests.plugins.engine import FAIL, PinnedApps, ScriptedTransport, api_for, http_login, ledger
from tests.test_fastlane import Lanes
from tests.test_gate import _exchange

UNKNOWN_PATH = "/api/dpa/process/processPlan/noSuchThing"
SINGLE_SLASH_OUT = OUT_PARAMS.replace("//", "/")


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def make(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """Apps built with settings as `--set` gives them (strings read as the settings loader reads them)."""

    def build(**settings: Any) -> Flask:
        loaded = load_settings(env={}, clock="virtual", log_requests=False, **settings)
        return make_app(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(loaded)})

    return build


@pytest.fixture
def shaped(make: Callable[..., Flask]) -> Callable[..., Api]:
    """An Api over an app built with these settings."""
    return lambda **settings: api_for(make(**settings))


def unknown_plan(api: Api) -> Any:
    return api.client.post(MODELS, headers=api.login(), json={"processPlanId": "nope0000"})


# -- settings: validation, formats, precedence ------------------------------------------------------
@pytest.mark.parametrize(
    "name,value,words",
    [
        ("unknown_plan_code", "405", "unknown_plan_code: 405 is not one of 400, 403"),
        ("unknown_instance_code", "200", "unknown_instance_code: 200 is not one of"),
        (
            "wrong_method_code",
            "418",
            "wrong_method_code: 418 is not one of 400, 403, 404, 500, 503, 997, 998, 999, 405",
        ),
        ("validation_code", "x", "--validation-code: validation_code: cannot use 'x'"),
        ("wrong_method_http_status", "99", "wrong_method_http_status: 99 is not an HTTP status"),
        ("http_status_by_code", "401:200", "http_status_by_code: 401 is not a business code"),
        ("http_status_by_code", "999:700", "http_status_by_code: 999: 700 is not an HTTP status"),
        ("http_status_by_code", "999=200", "http_status_by_code: cannot use '999=200'"),
        ("error_data", "empty", "error_data: 'empty' is not 'null' or 'absent'"),
        ("execute_body_plan_id", "optional", "execute_body_plan_id: 'optional' is not 'required' or 'path-only'"),
        ("code_length", "7", "code_length: 7 is not between 8 and 256"),
        ("code_alphabet", "a-z", "code_alphabet: 'a-z' is not one of A-Z0-9, A-Z0-9_-"),
        ("plan_instance_id_format", "ulid", "plan_instance_id_format: 'ulid' is not one of in-millis, digits, uuid"),
        ("token_type", "mac", "token_type: 'mac' is not Bearer in some casing"),
        ("token_claims", "aud,sub,nbf,exp", "token_claims: unknown claim 'nbf'"),
        ("token_claims", "aud,sub,scope", "token_claims: must include exp"),
        ("token_claims", "aud,exp,scope", "token_claims: must include sub or user_id"),
        ("token_claims", "sub,exp", "token_claims: must include client_id, or aud without token_audience"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(env={}, **{name: value})
    assert words in str(refused.value)


def test_token_audience_needs_a_client_id_claim() -> None:
    with pytest.raises(SettingsError, match="must include client_id, or aud without token_audience"):
        load_settings(env={}, token_audience="platform")
    assert (
        load_settings(env={}, token_audience="platform", token_claims="aud,client_id,sub,exp").token_audience
        == "platform"
    )


def test_maps_and_lists_from_yaml_env_and_set_alike(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("http_status_by_code: {997: 200, 999: 503}\ntoken_claims: [aud, exp, sub]\n", encoding="utf-8")
    from_file = load_settings(config, env={})
    from_env = load_settings(
        env={"DPA_MOCK_HTTP_STATUS_BY_CODE": "997:200, 999:503", "DPA_MOCK_TOKEN_CLAIMS": "aud,exp,sub"}
    )
    from_set = load_settings(env={}, http_status_by_code="999:503,997:200", token_claims="aud, exp, sub")
    assert from_file == from_env == from_set
    assert from_file.http_status_by_code == {997: 200, 999: 503}
    assert from_file.token_claims == ("aud", "exp", "sub")
    # What a server's worker process is handed rebuilds exactly these settings.
    assert load_settings(env=settings_to_env(from_file)) == from_file


def test_the_document_profile_is_the_default_exactly() -> None:
    assert load_settings(env={}, profile="document") == Settings()


def test_precedence_defaults_profile_config_env_flags(tmp_path: Path) -> None:
    profile = tmp_path / "staging.yaml"
    profile.write_text(
        "unknown_plan_code: 999\nunknown_instance_code: 999\nvalidation_code: 999\nbad_token_code: 999\n",
        encoding="utf-8",
    )
    config = tmp_path / "dpa.yaml"
    config.write_text("unknown_instance_code: 998\nvalidation_code: 998\nbad_token_code: 998\n", encoding="utf-8")
    s = load_settings(
        config,
        env={"DPA_MOCK_VALIDATION_CODE": "997", "DPA_MOCK_BAD_TOKEN_CODE": "997"},
        profile=profile,
        bad_token_code=500,
    )
    assert (s.code_reuse_code, s.unknown_plan_code, s.unknown_instance_code, s.validation_code, s.bad_token_code) == (
        403,
        999,
        998,
        997,
        500,
    )


def test_a_config_file_may_name_its_profile_and_override_it(tmp_path: Path) -> None:
    config = tmp_path / "dpa.toml"
    config.write_text('profile = "gateway"\nunknown_plan_code = 404\n', encoding="utf-8")
    s = load_settings(config, env={})
    assert (s.http_status, s.unknown_plan_code, s.unknown_instance_code) == ("always200", 404, 999)
    # A profile file is an ordinary settings file: --config takes it as it is.
    gateway = load_settings(env={}, profile="gateway")
    assert load_settings(Path(__file__).parent.parent / "mock_server/_data/profiles/gateway.yaml", env={}) == gateway


@pytest.mark.parametrize(
    "text,words",
    [
        ("unknown_plan_code: 405\n", "staging.yaml: unknown_plan_code: 405 is not one of"),
        ("unknown_plan_kode: 999\n", "staging.yaml: unknown_plan_kode: unknown setting"),
        ("callback_retries: many\n", "staging.yaml: callback_retries: cannot use 'many'"),
        ("- 1\n- 2\n", "staging.yaml: expected a mapping of settings"),
        ("a: [\n", "staging.yaml: cannot read"),
        ("profile: gateway\n", "staging.yaml: profile: unknown setting"),  # profiles do not nest
    ],
)
def test_a_bad_profile_is_named_with_key_and_reason(tmp_path: Path, text: str, words: str) -> None:
    profile = tmp_path / "staging.yaml"
    profile.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        load_settings(env={}, profile=profile)
    assert words in str(refused.value)


def test_a_profile_completed_by_a_later_layer_is_accepted(tmp_path: Path) -> None:
    """A refusal is blamed on the profile only when the profile alone is refused for it."""
    profile = tmp_path / "staging.yaml"
    profile.write_text("workers: 2\n", encoding="utf-8")
    assert load_settings(env={}, profile=profile, state=str(tmp_path / "s.db")).workers == 2
    with pytest.raises(SettingsError, match=r"staging\.yaml: workers: 2 processes need a shared state file"):
        load_settings(env={}, profile=profile)
    with pytest.raises(SettingsError) as refused:
        load_settings(env={}, profile="gateway", token_claims="aud,sub,exp")  # the flag's fault, not gateway's
    assert str(refused.value).startswith("token_claims: must include client_id")


def test_an_unknown_profile_name_lists_the_bundled_ones() -> None:
    with pytest.raises(SettingsError, match=r"'stagign' is neither a bundled profile \(document, gateway\)"):
        load_settings(env={}, profile="stagign")


# -- each alternative, observed over HTTP (Flask test client) ----------------------------------------
def test_http_status_by_code_overrides_the_mirror_per_code(shaped: Callable[..., Api]) -> None:
    api = shaped(http_status_by_code={404: 200, 403: 401})
    answer = unknown_plan(api)
    assert (answer.status_code, answer.get_json()["code"]) == (200, 404)
    refused = api.client.get(LIST_PLANS)
    assert (refused.status_code, refused.get_json()["code"]) == (401, 403)
    bad = api.client.get(
        AUTHORIZE, query_string={"client_id": POC["client_id"], "response_type": "token", "scope": "all"}
    )
    assert (bad.status_code, bad.get_json()["code"]) == (400, 400)  # codes not in the map still mirror


def test_unknown_plan_and_instance_codes(shaped: Callable[..., Api]) -> None:
    api = shaped(unknown_plan_code=999, unknown_instance_code=998)
    headers = api.login()
    models = unknown_plan(api)
    assert (models.status_code, models.get_json()["code"]) == (200, 999)
    execute = api.execute(headers, "nope0000")
    assert execute.get_json()["code"] == 999
    out = api.out_params(headers, "nope0000", "in1")
    assert out.get_json()["code"] == 999  # the plan is checked first
    out = api.out_params(headers, "acf42dd3", "in1")
    assert (out.status_code, out.get_json()["code"]) == (200, 998)
    # A run of another plan is an unknown instance of this one.
    instance = api.start(headers)
    assert api.out_params(headers, "d4a8e6f1", instance).get_json()["code"] == 998


def test_defaults_for_unknown_ids_paths_and_methods(api: Api) -> None:
    assert (unknown_plan(api).status_code, unknown_plan(api).get_json()["code"]) == (404, 404)
    path = api.client.get(UNKNOWN_PATH)
    assert (path.status_code, path.get_json()["code"]) == (404, 404)
    method = api.client.post(LIST_PLANS)
    assert (method.status_code, method.get_json()["code"], method.headers.get("Allow")) == (405, 404, "GET")


def test_unknown_path_code_and_status(shaped: Callable[..., Api]) -> None:
    answer = shaped(unknown_path_code=400, unknown_path_http_status=404).client.get(UNKNOWN_PATH)
    assert (answer.status_code, answer.get_json()["code"]) == (404, 400)
    answer = shaped(unknown_path_code=999).client.get(UNKNOWN_PATH)  # 0: the code's own status
    assert (answer.status_code, answer.get_json()["code"]) == (200, 999)
    answer = shaped(http_status="always200", unknown_path_http_status=404).client.get(UNKNOWN_PATH)
    assert answer.status_code == 200  # always200 means every envelope


def test_wrong_method_code_status_and_allow(shaped: Callable[..., Api]) -> None:
    api = shaped(wrong_method_code=400, wrong_method_http_status=0, wrong_method_allow=False)
    answer = api.client.post(LIST_PLANS)
    assert (answer.status_code, answer.get_json()["code"], "Allow" in answer.headers) == (400, 400, False)
    answer = shaped(wrong_method_code=405, wrong_method_http_status=405).client.get(MODELS)
    assert (answer.status_code, answer.get_json()["code"], answer.headers["Allow"]) == (405, 405, "POST")
    # The admin API keeps the emulator's own answer.
    admin = api.client.get("/__admin/reset")
    assert (admin.status_code, admin.get_json()["code"], admin.headers["Allow"]) == (405, 404, "POST")


def test_validation_code_on_the_vendor_api_only(shaped: Callable[..., Api]) -> None:
    api = shaped(validation_code=999)
    bad = api.authorize(response_type="token")
    assert (bad.status_code, bad.get_json()["code"]) == (200, 999)
    malformed = api.client.post(MODELS, headers=api.login(), data="{", content_type="application/json")
    assert malformed.get_json()["code"] == 999
    admin = api.client.post("/__admin/clock/advance", json={"seconds": -1})
    assert (admin.status_code, admin.get_json()["code"]) == (400, 400)


def test_bad_token_code_for_missing_malformed_and_forged_tokens(shaped: Callable[..., Api]) -> None:
    api = shaped(bad_token_code=400)
    headers = api.login()
    forged = headers["Authorization"][:-2] + ("AA" if not headers["Authorization"].endswith("AA") else "BB")
    for sent in ({}, {"Authorization": "Basic x"}, {"Authorization": forged}):
        answer = api.client.get(LIST_PLANS, headers=sent)
        assert (answer.status_code, answer.get_json()["code"]) == (400, 400), sent
    # Other refusals of OAuth keep their codes: a wrong secret is still 403.
    assert api.token(api.code(), client_secret="wrong").get_json()["code"] == 403


def test_code_reuse_code(shaped: Callable[..., Api]) -> None:
    api = shaped(code_reuse_code=400)
    code = api.code()
    assert api.token(code).get_json()["code"] == 200
    again = api.token(code)
    assert (again.status_code, again.get_json()["code"]) == (400, 400)
    assert "already been used" in again.get_json()["message"]
    assert api.token("NOSUCHCODE").get_json()["code"] == 403  # an unknown code is not a reused one


def test_error_data_absent_only_in_error_envelopes(shaped: Callable[..., Api]) -> None:
    api = shaped(error_data="absent")
    error = unknown_plan(api).get_json()
    assert set(error) == {"code", "message"}
    assert set(api.client.get(UNKNOWN_PATH).get_json()) == {"code", "message"}
    assert api.client.get(LIST_PLANS, headers=api.login()).get_json()["data"]
    assert api.client.get("/__admin/runs/nope").get_json()["data"] is None  # the admin API keeps its shape


def test_success_messages(shaped: Callable[..., Api]) -> None:
    api = shaped(success_message="操作成功", oauth_success_message="ok")
    assert api.authorize().get_json()["message"] == "ok"
    headers = api.login()
    assert api.client.get(LIST_PLANS, headers=headers).get_json()["message"] == "操作成功"
    assert api.execute(headers).get_json()["message"] == "操作成功"
    assert api.client.get("/__admin/clock").get_json()["message"] == "success"
    default = shaped()
    assert default.authorize().get_json()["message"] == ""
    assert default.client.get(LIST_PLANS, headers=default.login()).get_json()["message"] == "success"


def test_single_slash_paths_off_serves_only_the_documents_forms(shaped: Callable[..., Api]) -> None:
    api = shaped(single_slash_paths=False)
    headers = api.login()
    query = {"processPlanId": "acf42dd3", "planInstanceId": api.start(headers)}
    assert api.client.get(OUT_PARAMS, headers=headers, query_string=query).get_json()["code"] == 200
    single = api.client.get(SINGLE_SLASH_OUT, headers=headers, query_string=query)
    assert (single.status_code, single.get_json()["code"]) == (404, 404)
    single_execute = api.client.post(
        EXECUTE.format("acf42dd3").replace("//", "/"), headers=headers, json={"processPlanId": "acf42dd3"}
    )
    assert single_execute.get_json()["code"] == 404
    served = shaped()
    assert served.client.get(SINGLE_SLASH_OUT, headers=served.login(), query_string=query).get_json()["code"] == 404
    assert (
        served.client.get(
            SINGLE_SLASH_OUT, headers=served.login(), query_string={"processPlanId": "acf42dd3"}
        ).get_json()["code"]
        == 400
    )  # routed


def test_execute_body_plan_id_path_only(shaped: Callable[..., Api]) -> None:
    lenient = shaped(execute_body_plan_id="path-only")
    headers = lenient.login()
    answer = lenient.client.post(EXECUTE.format("acf42dd3"), headers=headers, json={}).get_json()
    assert answer["code"] == 200 and answer["data"][0]["processPlanId"] == "acf42dd3"
    mismatch = lenient.client.post(EXECUTE.format("acf42dd3"), headers=headers, json={"processPlanId": "d4a8e6f1"})
    assert mismatch.get_json()["code"] == 400  # path and body naming different plans is still refused
    strict = shaped()
    refused = strict.client.post(EXECUTE.format("acf42dd3"), headers=strict.login(), json={}).get_json()
    assert (refused["code"], refused["message"]) == (400, "processPlanId: is required")


@pytest.mark.parametrize(
    "length,alphabet,pattern",
    [(8, "A-Z0-9", r"[A-Z0-9]{8}"), (64, "A-Z0-9_-", r"[A-Z0-9_-]{64}"), (48, "A-Z0-9", r"[A-Z0-9_-]{48}")],
)
def test_code_length_and_alphabet(shaped: Callable[..., Api], length: int, alphabet: str, pattern: str) -> None:
    api = shaped(code_length=length, code_alphabet=alphabet)
    codes = [api.code() for _ in range(30)]
    assert all(re.fullmatch(pattern, c) for c in codes), codes
    assert len(set(codes)) == len(codes)
    if alphabet == "A-Z0-9_-" and length == 64:
        assert any(set(c) & set("_-") for c in codes)  # the wider alphabet is used, not just allowed
    assert api.token(codes[0]).get_json()["code"] == 200


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
def test_token_type_is_sent_as_set_and_the_token_works(shaped: Callable[..., Api], token_type: str) -> None:
    api = shaped(token_type=token_type)
    answer = api.token(api.code()).get_json()
    assert answer["code"] == 200 and answer["data"]["token_type"] == token_type, answer
    listed = api.client.get(LIST_PLANS, headers={"Authorization": f"{token_type} {answer['data']['access_token']}"})
    assert listed.get_json()["code"] == 200


def test_token_claims_and_audience(shaped: Callable[..., Api]) -> None:
    api = shaped(token_claims="aud,client_id,user_id,scope,jti,exp,iat", token_audience="dpa-platform", token_ttl=300)
    token = api.token(api.code()).get_json()["data"]["access_token"]
    claims = claims_of(token)
    assert sorted(claims) == ["aud", "client_id", "exp", "iat", "jti", "scope", "user_id"]
    assert (claims["aud"], claims["client_id"], claims["exp"] - claims["iat"]) == (
        "dpa-platform",
        POC["client_id"],
        300,
    )
    assert api.client.get(LIST_PLANS, headers={"Authorization": f"Bearer {token}"}).get_json()["code"] == 200
    plain = shaped()
    default = claims_of(plain.token(plain.code()).get_json()["data"]["access_token"])
    assert sorted(default) == ["aud", "exp", "iss", "jti", "orig_iat", "scope", "sub"]


def test_a_token_of_another_audience_is_refused(make: Callable[..., Flask]) -> None:
    common = {"token_claims": "aud,client_id,sub,scope,exp", "jwt_secret": "s" * 40}
    issuing = api_for(make(token_audience="elsewhere", **common))
    token = issuing.token(issuing.code()).get_json()["data"]["access_token"]
    checking = api_for(make(token_audience="dpa-platform", **common))
    answer = checking.client.get(LIST_PLANS, headers={"Authorization": f"Bearer {token}"}).get_json()
    assert (answer["code"], answer["message"]) == (403, "access token audience is not this platform")
    # A token signed with the same key but lacking a claim this platform reads is refused, not a 500.
    lean = api_for(make(token_claims="aud,sub,exp", jwt_secret="s" * 40))
    token = lean.token(lean.code()).get_json()["data"]["access_token"]
    answer = checking.client.get(LIST_PLANS, headers={"Authorization": f"Bearer {token}"}).get_json()
    assert (answer["code"], answer["message"]) == (403, "access token lacks the 'client_id' claim")


@pytest.mark.parametrize(
    "shape,pattern",
    [
        ("in-millis", r"in\d{13}"),
        ("digits", r"\d{19}"),
        ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"),
    ],
)
def test_plan_instance_id_format(shaped: Callable[..., Api], shape: str, pattern: str) -> None:
    api = shaped(plan_instance_id_format=shape)
    headers = api.login()
    ids = [api.start(headers) for _ in range(5)]
    assert all(re.fullmatch(pattern, i) for i in ids), ids
    assert len(set(ids)) == 5
    assert api.out_params(headers, "acf42dd3", ids[0]).get_json()["code"] == 200
    assert api.run(ids[-1])["planInstanceId"] == ids[-1]


def test_digits_ids_keep_increasing_after_a_restart_from_state(tmp_path: Path, make: Callable[..., Flask]) -> None:
    state = str(tmp_path / "state.db")
    first = api_for(make(plan_instance_id_format="digits", state=state))
    before = first.start(first.login())
    first.platform.close()
    second = api_for(make(plan_instance_id_format="digits", state=state))
    after = second.start(second.login())
    assert int(after[:13]) > int(before[:13])


# -- callbacks --------------------------------------------------------------------------------------
def callback_trail(pinned: PinnedApps, transport: ScriptedTransport, **settings: Any) -> list[tuple[str, str]]:
    """(status, behaviour) of every callback POST of one acf42dd3 run (DEFAULT, RUNNING, SUCCESS)."""
    api = api_for(pinned(transport=transport, **settings))
    instance = api.start(api.login(), callbackUrl="http://127.0.0.1:9/cb")
    api.advance(30)
    return transport.calls_for(instance)


def test_callback_statuses_without_default(pinned: PinnedApps) -> None:
    trail = callback_trail(pinned, ScriptedTransport(), callback_statuses=("RUNNING", "PENDING", "SUCCESS", "FAIL"))
    assert [s for s, _ in trail] == ["RUNNING", "SUCCESS"]


@pytest.mark.parametrize("backoff", [(0.1,), (5.0,)], ids=["given-up-before-SUCCESS", "SUCCESS-queued-behind"])
@pytest.mark.parametrize(
    "after_give_up,expected",
    [(True, ["DEFAULT", "RUNNING", "RUNNING", "SUCCESS"]), (False, ["DEFAULT", "RUNNING", "RUNNING"])],
)
def test_callback_after_give_up(
    pinned: PinnedApps, after_give_up: bool, expected: list[str], backoff: tuple[float, ...]
) -> None:
    """SUCCESS is entered 1.5 s in: after RUNNING was given up (short backoff), or while RUNNING still waits
    for its retry (long backoff), queued behind it."""
    transport = ScriptedTransport(lambda instance, status, n: FAIL if status == "RUNNING" else "ack")
    api = api_for(
        pinned(transport=transport, callback_retries=1, callback_after_give_up=after_give_up, callback_backoff=backoff)
    )
    instance = api.start(api.login(), callbackUrl="http://127.0.0.1:9/cb")
    api.advance(30)
    api.advance(30)  # nothing was left waiting: no later status turns up either
    assert [s for s, _ in transport.calls_for(instance)] == expected
    states = [(d["status"], d["state"]) for d in ledger(api.client, instance)]
    assert states[:2] == [("DEFAULT", "acked"), ("RUNNING", "gave_up")]
    assert ("SUCCESS" in dict(states)) is after_give_up
    assert api.run(instance)["status"] == "SUCCESS"  # the run itself goes on either way


# -- every door answers alike ------------------------------------------------------------------------
@pytest.fixture
def gateway_app() -> Iterator[Flask]:
    settings = load_settings(env={}, profile="gateway").replace(clock="virtual", log_requests=False)
    app = create_app(settings)
    yield app
    app.extensions["dpa_platform"].close()


def test_fast_lane_and_flask_answer_alike_under_the_gateway_profile(gateway_app: Flask) -> None:
    lanes = Lanes(gateway_app)
    headers = api_for(gateway_app).login()
    instance = api_for(gateway_app).start(headers)
    asked = [
        (LIST_PLANS, {"headers": headers}),
        (LIST_PLANS, {}),
        (LIST_PLANS, {"headers": {"Authorization": "Bearer nope"}}),
        (OUT_PARAMS, {"headers": headers, "query_string": {"processPlanId": "acf42dd3", "planInstanceId": instance}}),
        (OUT_PARAMS, {"headers": headers, "query_string": {"processPlanId": "acf42dd3", "planInstanceId": "in1"}}),
        (OUT_PARAMS, {"headers": headers, "query_string": {"processPlanId": "nope0000", "planInstanceId": "in1"}}),
        (OUT_PARAMS, {"headers": headers, "query_string": {"processPlanId": "acf42dd3"}}),
        (
            SINGLE_SLASH_OUT,
            {"headers": headers, "query_string": {"processPlanId": "acf42dd3", "planInstanceId": instance}},
        ),
    ]
    answered_fast = 0
    for path, kwargs in asked:
        before = lanes.flask_calls
        fast, slow = lanes.both("GET", path, **kwargs)
        answered_fast += lanes.flask_calls == before  # the lane answered without handing on to Flask
        assert fast == slow, path
        body = json.loads(fast[0][2])
        assert fast[0][0] == "200 OK", body
        if body["code"] != 200:
            assert "data" not in body
    assert answered_fast >= 6
    codes = [json.loads(lanes.both("GET", p, **k)[0][0][2])["code"] for p, k in asked]
    assert codes == [200, 403, 403, 200, 999, 999, 400, 404]


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = Path(tmp_path_factory.mktemp("profiles")) / "serve.log"
    with ServerProcess("--clock", "virtual", "--profile", "gateway", log=log) as server:
        yield server


@pytest.mark.http
def test_the_gate_answers_alike_both_ways_under_the_gateway_profile(gateway_server: ServerProcess) -> None:
    bearer = http_login(gateway_server.base_url)["Authorization"].encode()
    requests_to_try = [
        b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % (LIST_PLANS.encode(), bearer),
        b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % LIST_PLANS.encode(),
        b"GET %s?processPlanId=nope0000&planInstanceId=in1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
        % (OUT_PARAMS.encode(), bearer),
        b"GET %s?processPlanId=acf42dd3&planInstanceId=in1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
        % (SINGLE_SLASH_OUT.encode(), bearer),
    ]
    short = [_exchange(gateway_server.port, r) for r in requests_to_try]
    assert (
        requests.post(
            gateway_server.base_url + "/__admin/faults", json={"path": "/nowhere", "code": 500}, timeout=5
        ).json()["code"]
        == 200
    )
    try:
        whole = [_exchange(gateway_server.port, r) for r in requests_to_try]
    finally:
        requests.delete(gateway_server.base_url + "/__admin/faults", timeout=5)
    assert short == whole
    assert [line for line, _ in short] == [b"HTTP/1.1 200 OK"] * 4
    assert [json.loads(body) for _, body in short][1:] == [
        {"code": 403, "message": "missing Authorization header: send 'Authorization: Bearer <access_token>'"},
        {"code": 999, "message": "processPlanId 'nope0000' does not exist"},
        {"code": 404, "message": f"no such path: GET {SINGLE_SLASH_OUT}"},
    ]
    # A body the gate refuses before the app sees it is shaped by the profile too.
    line, body = _exchange(
        gateway_server.port, b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n" % MODELS.encode()
    )
    assert line == b"HTTP/1.1 200 OK" and set(json.loads(body)) == {"code", "message"}
    assert json.loads(body)["code"] == 400


# -- dpa-mock serve --profile, a real subprocess -----------------------------------------------------
@pytest.mark.http
def test_serve_profile_gateway_over_http(gateway_server: ServerProcess) -> None:
    base = gateway_server.base_url
    code = requests.get(
        base + AUTHORIZE, params={"client_id": POC["client_id"], "response_type": "code", "scope": "all"}, timeout=10
    ).json()
    assert code["message"] == "success" and re.fullmatch(r"[A-Z0-9_-]{32}", code["data"]["code"])
    headers = http_login(base)
    claims = claims_of(headers["Authorization"][7:])
    assert sorted(claims) == ["aud", "client_id", "exp", "jti", "scope", "user_id"]
    assert claims["aud"] == "dpa-platform"
    unknown = requests.post(base + MODELS, headers=headers, json={"processPlanId": "nope0000"}, timeout=10)
    assert (unknown.status_code, unknown.json()) == (
        200,
        {"code": 999, "message": "processPlanId 'nope0000' does not exist"},
    )
    wrong = requests.get(base + MODELS, headers=headers, timeout=10)
    assert (wrong.status_code, wrong.json()["code"], "Allow" in wrong.headers) == (200, 400, False)
    with CallbackReceiver() as receiver:
        started = requests.post(
            base + EXECUTE.format("acf42dd3"), headers=headers, json={"callbackUrl": receiver.url}, timeout=10
        ).json()  # path-only: no plan id
        assert started["message"] == "操作成功"
        instance = started["data"][0]["planInstanceId"]
        assert re.fullmatch(r"\d{19}", instance)
        requests.post(base + "/__admin/clock/advance", json={"seconds": 30}, timeout=30)
        assert receiver.wait_for(lambda got: len(got) >= 2, timeout=10)
        assert [d.json["status"] for d in receiver.deliveries] == ["RUNNING", "SUCCESS"]  # no DEFAULT


def _serve_and_fail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--port", "0", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.http
def test_serve_refuses_a_bad_profile_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "staging.yaml"
    bad.write_text("http_status: mirror\nunknown_instance_code: 1000\n", encoding="utf-8")
    done = _serve_and_fail("--profile", str(bad))
    assert done.returncode == 2
    assert f"{bad}: unknown_instance_code: 1000 is not one of" in done.stderr
    assert "Traceback" not in done.stderr
    done = _serve_and_fail("--profile", "gatway")
    assert done.returncode == 2 and "'gatway' is neither a bundled profile (document, gateway)" in done.stderr


@pytest.mark.http
def test_serve_config_takes_a_profile_file_and_flags_win(tmp_path: Path) -> None:
    profile = tmp_path / "staging.yaml"
    profile.write_text(
        "unknown_plan_code: 997\nhttp_status_by_code: {997: 503}\nerror_data: absent\n", encoding="utf-8"
    )
    with ServerProcess(
        "--clock", "virtual", "--config", str(profile), "--set", "error_data=null", log=tmp_path / "serve.log"
    ) as server:
        answer = requests.post(
            server.base_url + MODELS,
            headers=http_login(server.base_url),
            json={"processPlanId": "nope0000"},
            timeout=10,
        )
        assert (answer.status_code, answer.json()["code"], answer.json()["data"]) == (503, 997, None)
