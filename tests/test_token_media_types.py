"""D3: the contract's token request is JSON only (the document's); the emulator's form bodies are its own extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from flask.testing import FlaskClient

from contract_tests.support.spec import SPEC as KIT_SPEC
from mock_server.http.spec import EMULATOR_BODIES, VENDOR_SPEC, Contract, vendor_contract
from tests.plugins.emulator import POC, TOKEN, Api
from tests.plugins.foundation import envelope_of, expect_error

ROOT_SPEC = Path(__file__).resolve().parents[1] / "openapi" / "dpa-platform.yaml"
FORM = "application/x-www-form-urlencoded"
FIELDS = ("code", "client_id", "client_secret", "grant_type")


def _token_content(spec: Path) -> dict[str, Any]:
    document = yaml.safe_load(spec.read_text(encoding="utf-8"))
    content: dict[str, Any] = document["paths"]["/api/dp/auth/oauth/token"]["post"]["requestBody"]["content"]
    return content


@pytest.mark.parametrize("spec", [ROOT_SPEC, VENDOR_SPEC, KIT_SPEC], ids=["openapi", "packaged", "kit"])
def test_the_contract_lists_only_json_for_the_token_request(spec: Path) -> None:
    assert list(_token_content(spec)) == ["application/json"]


def test_the_contract_keeps_interface_4s_form_body() -> None:
    document = yaml.safe_load(ROOT_SPEC.read_text(encoding="utf-8"))
    assert FORM in document["paths"]["/api/dpa/process/processPlan/saveTimingParam"]["post"]["requestBody"]["content"]


def test_schemathesis_generates_only_json_token_bodies() -> None:
    schema = schemathesis.openapi.from_path(KIT_SPEC, config=schemathesis.Config())
    assert [body.media_type for body in schema.find_operation_by_id("getToken").body] == ["application/json"]


def test_the_bare_contract_has_no_form_token_body() -> None:
    assert list(Contract(VENDOR_SPEC).operations["getToken"].bodies) == ["application/json"]


def test_the_emulator_reads_a_form_token_body_with_the_json_schema() -> None:
    assert EMULATOR_BODIES == {"getToken": {FORM: "application/json"}}
    bodies = vendor_contract().operations["getToken"].bodies
    assert list(bodies) == ["application/json", FORM]
    assert bodies[FORM] is bodies["application/json"]


def test_an_extension_the_contract_already_covers_is_refused() -> None:
    with pytest.raises(ValueError, match="saveTimingParam already lists"):
        Contract(VENDOR_SPEC, {"saveTimingParam": {FORM: FORM}})
    with pytest.raises(ValueError, match="no operation 'nope'"):
        Contract(VENDOR_SPEC, {"nope": {FORM: "application/json"}})
    with pytest.raises(ValueError, match="no text/plain body"):
        Contract(VENDOR_SPEC, {"getToken": {"multipart/form-data": "text/plain"}})


def _body(api: Api, missing: str | None = None) -> dict[str, str]:
    body = {"code": api.code(), **POC, "grant_type": "authorization_code"}
    if missing:
        del body[missing]
    return body


@pytest.mark.parametrize("missing", FIELDS)
@pytest.mark.parametrize("media", [FORM, "multipart/form-data"])
def test_a_form_body_missing_a_field_gets_the_json_envelope(
    api: Api, client: FlaskClient, missing: str, media: str
) -> None:
    as_json = client.post(TOKEN, json=_body(api, missing))
    as_form = client.post(TOKEN, data=_body(api, missing), content_type=media)
    expect_error(as_form, 400, f"{missing}: is required")
    assert (as_form.status_code, envelope_of(as_form)) == (as_json.status_code, envelope_of(as_json))


@pytest.mark.parametrize("media", [FORM, "multipart/form-data"])
def test_a_form_token_body_is_answered_as_json_is(api: Api, client: FlaskClient, media: str) -> None:
    body = envelope_of(client.post(TOKEN, data=_body(api), content_type=media))
    assert body["code"] == 200 and body["data"]["token_type"] == "Bearer", body
    wrong = {**_body(api), "grant_type": "password"}
    refused = client.post(TOKEN, data=wrong, content_type=media)
    assert envelope_of(refused) == envelope_of(client.post(TOKEN, json={**wrong, "code": api.code()}))


def test_other_content_types_are_refused_naming_the_accepted_ones(client: FlaskClient) -> None:
    response = client.post(TOKEN, data="code=x", content_type="text/plain")
    expect_error(response, 400, "Content-Type 'text/plain' is not supported here; use application/json or " + FORM)
