"""Interface 1 over the Flask test client: authorize, token, and bearer-token checks on /api/dpa/."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from mock_server.domain.clock import VirtualClock
from mock_server.settings import Settings
from tests.plugins.emulator import AUTHORIZE, DEFAULT_ONLY, DOC_CLIENT, EXPIRED, LIST_PLANS, POC, TOKEN, Api
from tests.plugins.foundation import ADMIN_ADVANCE, FOREIGN_KEY, built_app, decode, envelope_of, expect_error, sign

CODE_RE = re.compile(r"^[A-Z0-9_-]{48}$")
PLUS_APP = {"client_id": "Ufd0+qgBk7AkPNGZb3jXWg==", "client_secret": "Lq320DGmqy7SEzAnRE4o4Izk3NW+6CIYcTArIScerNQ="}
SECRET = Settings().jwt_secret


def token_body(code: str, app: dict[str, str] = POC, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "grant_type": "authorization_code",
        **extra,
    }


def access_token(response: Any) -> str:
    body = envelope_of(response)
    assert response.status_code == 200 and body["code"] == 200 and body["message"] == "", body
    assert body["data"]["token_type"] == "Bearer", body
    return body["data"]["access_token"]


# -- authorize ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["default", "all"])
def test_authorize_issues_a_48_char_uppercase_code(api: Api, scope: str) -> None:
    response = api.authorize(scope=scope)
    body = envelope_of(response)
    assert response.status_code == 200 and body["code"] == 200 and body["message"] == ""
    assert set(body["data"]) == {"code"}
    code = body["data"]["code"]
    assert CODE_RE.match(code), code
    # The document's shape: the uppercased base64url of a UUID string, so two calls never repeat.
    assert api.code(scope=scope) != code


@pytest.mark.parametrize("missing", ["client_id", "response_type", "scope"])
def test_authorize_without_a_parameter_is_400_naming_it(client: FlaskClient, missing: str) -> None:
    query = {"client_id": POC["client_id"], "response_type": "code", "scope": "default"}
    del query[missing]
    expect_error(client.get(AUTHORIZE, query_string=query), 400, missing, "required")


@pytest.mark.parametrize(
    "field,value",
    [("response_type", "token"), ("response_type", ""), ("scope", "admin"), ("scope", "ALL"), ("client_id", "")],
)
def test_authorize_with_an_unsupported_value_is_400(api: Api, field: str, value: str) -> None:
    expect_error(api.authorize(**{field: value}), 400, field)


def test_authorize_unknown_client_is_403(api: Api) -> None:
    expect_error(api.authorize(client_id="NoSuchClient000000000w=="), 403, "unknown client_id", "NoSuchClient")


def test_authorize_expired_app_is_403(api: Api) -> None:
    expect_error(api.authorize(client_id=EXPIRED["client_id"]), 403, "'123123'", "expired")


def test_authorize_scope_not_granted_to_app_is_403(api: Api) -> None:
    expect_error(api.authorize(client_id=DEFAULT_ONLY["client_id"], scope="all"), 403, "'all'", "'aaa'", "not granted")
    assert CODE_RE.match(api.code(client_id=DEFAULT_ONLY["client_id"], scope="default"))


def test_authorize_with_the_documents_verbatim_curl_url(client: FlaskClient) -> None:
    # Verbatim from the document's curl (host dropped): `==` unencoded and a multipart header on a GET.
    url = "/api/dp/auth/oauth/authorize?response_type=code&client_id=CfjisL9AeNc066tkxSiKig==&scope=default"
    response = client.get(url, headers={"content-type": "multipart/form-data"})
    body = envelope_of(response)
    assert response.status_code == 200 and body["code"] == 200, body
    code = body["data"]["code"]
    assert access_token(client.post(TOKEN, json=token_body(code, DOC_CLIENT)))


def test_client_id_whose_plus_arrived_as_a_space_is_recognised(client: FlaskClient) -> None:
    # Unencoded '+' in a query string decodes to ' '; the code is bound to the real client_id.
    url = f"{AUTHORIZE}?response_type=code&client_id={PLUS_APP['client_id']}&scope=default"
    body = envelope_of(client.get(url))
    assert body["code"] == 200, body
    token = access_token(client.post(TOKEN, json=token_body(body["data"]["code"], PLUS_APP)))
    assert decode(token, audience=PLUS_APP["client_id"])["aud"] == PLUS_APP["client_id"]


# -- token: encodings --------------------------------------------------------------------------------


def test_token_json_body(api: Api, client: FlaskClient) -> None:
    token = access_token(client.post(TOKEN, json=token_body(api.code())))
    assert decode(token, audience=POC["client_id"])["sub"] == "U100000"


def test_token_form_encoded_body(api: Api, client: FlaskClient) -> None:
    response = client.post(
        TOKEN, data=token_body(api.code(), user_id="1"), content_type="application/x-www-form-urlencoded"
    )
    assert decode(access_token(response), audience=POC["client_id"])["sub"] == "1"


def test_token_multipart_body(api: Api, client: FlaskClient) -> None:
    response = client.post(TOKEN, data=token_body(api.code(), user_id="U100002"), content_type="multipart/form-data")
    assert decode(access_token(response), audience=POC["client_id"])["sub"] == "U100002"


def test_token_body_without_content_type_is_read_as_json(api: Api, client: FlaskClient) -> None:
    raw = json.dumps(token_body(api.code()))
    response = client.post(TOKEN, data=raw)
    assert response.request.headers.get("Content-Type") is None
    assert access_token(response)


@pytest.mark.parametrize(
    "body,fragment",
    [
        ([token_body("X")], "body"),
        ("just a string", "body"),
        ({**token_body("X"), "client_secret": None}, "client_secret: is required"),
        ({**token_body("X"), "user_id": 1}, "user_id"),
    ],
)
def test_token_body_of_the_wrong_shape_is_400(client: FlaskClient, body: Any, fragment: str) -> None:
    expect_error(client.post(TOKEN, json=body), 400, fragment)


def test_token_with_the_documents_json_example_client(client: FlaskClient, api: Api) -> None:
    code = api.code(client_id=DOC_CLIENT["client_id"])
    # Byte-for-byte the document's example body, with a fresh code in place of the example's.
    raw = json.dumps(
        {
            "code": code,
            "client_id": "CfjisL9AeNc066tkxSiKig==",
            "client_secret": "xB5hQnmlNnc+iab3RODs6yHlcHqFHAM2e4PawddAxtI=",
            "grant_type": "authorization_code",
        },
        indent=4,
    )
    token = access_token(client.post(TOKEN, data=raw, content_type="application/json"))
    assert decode(token, audience=DOC_CLIENT["client_id"])["aud"] == DOC_CLIENT["client_id"]


# -- token: errors, each distinct ----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["code", "client_id", "client_secret", "grant_type"])
@pytest.mark.parametrize("encoding", ["json", "form"])
def test_token_missing_field_is_400_naming_it(api: Api, client: FlaskClient, missing: str, encoding: str) -> None:
    body = token_body(api.code())
    del body[missing]
    if encoding == "json":
        response = client.post(TOKEN, json=body)
    else:
        response = client.post(TOKEN, data=body, content_type="application/x-www-form-urlencoded")
    message = expect_error(response, 400, missing)
    assert message.startswith(f"{missing}:"), message


def test_token_errors_have_distinct_codes_and_messages(api: Api, client: FlaskClient) -> None:
    doc_code = api.code(client_id=DOC_CLIENT["client_id"])
    used = api.code()
    access_token(client.post(TOKEN, json=token_body(used)))
    fresh = api.code()
    cases = {
        "bad grant_type": (token_body(fresh, grant_type="password"), 400, "grant_type"),
        "unknown client": (
            token_body(fresh, {"client_id": "Nobody000000000000000w==", "client_secret": "x"}),
            403,
            "unknown client_id",
        ),
        "expired app": (token_body(fresh, EXPIRED), 403, "expired"),
        "wrong secret": (token_body(fresh, client_secret="not-the-secret"), 403, "client_secret does not match"),
        "unknown user": (token_body(fresh, user_id="U999999"), 998, "U999999"),
        "unknown code": (token_body("NOSUCHCODE"), 403, "unknown"),
        "other client's code": (token_body(doc_code), 403, "another client"),
        "reused code": (token_body(used), 403, "already been used"),
    }
    messages = {}
    for name, (body, code, fragment) in cases.items():
        # 998 is not an HTTP status: it travels as HTTP 200 under the mirror policy.
        messages[name] = expect_error(client.post(TOKEN, json=body), code, fragment, http=200 if code == 998 else None)
    assert len(set(messages.values())) == len(cases), messages
    # None of the failed calls consumed `fresh`.
    assert access_token(client.post(TOKEN, json=token_body(fresh)))


def test_expired_code_is_refused_after_code_ttl(api: Api, client: FlaskClient) -> None:
    code, still_ok = api.code(), api.code()
    api.advance(Settings().code_ttl - 1)
    assert access_token(client.post(TOKEN, json=token_body(still_ok)))
    api.advance(2)
    expect_error(client.post(TOKEN, json=token_body(code)), 403, "authorization code has expired")


def test_code_ttl_setting_is_honoured(make_app: Callable[..., Flask]) -> None:
    app = make_app(code_ttl=5)
    api = Api(app.test_client(), app.extensions["dpa_platform"])
    code = api.code()
    api.advance(6)
    expect_error(api.token(code), 403, "expired")


@pytest.mark.parametrize("first", ["wrong secret", "unknown user", "other client", "bad grant_type"])
def test_a_failed_token_call_does_not_consume_the_code(api: Api, client: FlaskClient, first: str) -> None:
    code = api.code()
    bad = {
        "wrong secret": token_body(code, client_secret="nope"),
        "unknown user": token_body(code, user_id="ghost"),
        "other client": token_body(code, DOC_CLIENT),
        "bad grant_type": token_body(code, grant_type="client_credentials"),
    }[first]
    assert envelope_of(client.post(TOKEN, json=bad))["code"] != 200
    assert access_token(client.post(TOKEN, json=token_body(code)))
    expect_error(client.post(TOKEN, json=token_body(code)), 403, "already been used")


def test_check_order_grant_type_client_secret_user_code(api: Api, client: FlaskClient) -> None:
    nobody = {"client_id": "Nobody000000000000000w==", "client_secret": "x"}
    expect_error(client.post(TOKEN, json=token_body("BAD", nobody, grant_type="password")), 400, "grant_type")
    expect_error(client.post(TOKEN, json=token_body("BAD", nobody)), 403, "unknown client_id")
    expect_error(client.post(TOKEN, json=token_body("BAD", client_secret="x", user_id="ghost")), 403, "client_secret")
    expect_error(client.post(TOKEN, json=token_body("BAD", user_id="ghost")), 998, "ghost", http=200)


def test_token_user_id_one_gives_sub_one(api: Api, client: FlaskClient) -> None:
    token = access_token(client.post(TOKEN, json=token_body(api.code(), user_id="1")))
    assert decode(token, audience=POC["client_id"])["sub"] == "1"


def test_unknown_user_is_998_with_http_200(api: Api, client: FlaskClient) -> None:
    response = client.post(TOKEN, json=token_body(api.code(), user_id="U404"))
    expect_error(response, 998, "U404", "does not exist", http=200)


def test_token_claims(api: Api, client: FlaskClient, platform: Any) -> None:
    now = platform.clock.now()
    token = access_token(client.post(TOKEN, json=token_body(api.code(scope="all"), user_id="1")))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    claims = decode(token, SECRET, audience=POC["client_id"])
    assert set(claims) == {"aud", "exp", "iss", "jti", "orig_iat", "scope", "sub"}
    assert claims["aud"] == POC["client_id"] and claims["iss"] == "dpa-mock"
    assert claims["sub"] == "1" and claims["scope"] == "all"
    assert claims["orig_iat"] == int(now)
    assert claims["exp"] - claims["orig_iat"] == Settings().token_ttl
    other = decode(access_token(client.post(TOKEN, json=token_body(api.code()))), audience=POC["client_id"])
    assert other["jti"] != claims["jti"] and other["scope"] == "default"


def test_token_ttl_setting_is_honoured(make_app: Callable[..., Flask]) -> None:
    app = make_app(token_ttl=60)
    api = Api(app.test_client(), app.extensions["dpa_platform"])
    token = api.login()["Authorization"].split()[1]
    claims = decode(token, audience=POC["client_id"])
    assert claims["exp"] - claims["orig_iat"] == 60


# -- bearer tokens on /api/dpa/ ------------------------------------------------------------------------


def _claims(platform: Any, **changes: Any) -> dict[str, Any]:
    now = int(platform.clock.now())
    claims = {
        "aud": POC["client_id"],
        "exp": now + 600,
        "iss": "dpa-mock",
        "jti": "j1",
        "orig_iat": now,
        "scope": "default",
        "sub": "U100000",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _tamper(token: str) -> str:
    # Rewrite the payload to claim scope=all, keeping the original signature.
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "all"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{forged}.{signature}"


def _none_alg(claims: dict[str, Any]) -> str:
    def enc(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}."


def test_valid_bearer_token_is_accepted(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get(LIST_PLANS, headers=auth)
    assert response.status_code == 200 and envelope_of(response)["code"] == 200


def test_bearer_failures_are_403_with_distinct_messages(
    client: FlaskClient, platform: Any, auth: dict[str, str]
) -> None:
    good = auth["Authorization"].split()[1]
    cases = {
        "missing": (None, "missing Authorization header"),
        "non-Bearer scheme": (f"Basic {good}", "malformed Authorization header"),
        "empty Bearer": ("Bearer ", "malformed Authorization header"),
        "garbage": ("Bearer not.a.jwt", "access token is malformed"),
        "alg none": (f"Bearer {_none_alg(_claims(platform))}", "access token is malformed"),
        "tampered payload": (f"Bearer {_tamper(good)}", "signature is invalid"),
        "other key": (f"Bearer {sign(_claims(platform), FOREIGN_KEY)}", "signature is invalid"),
        "wrong issuer": (f"Bearer {sign(_claims(platform, iss='someone-else'))}", "another issuer"),
        "unknown aud": (
            f"Bearer {sign(_claims(platform, aud='Nobody000000000000000w=='))}",
            "audience is not a known app",
        ),
        "no sub claim": (f"Bearer {sign(_claims(platform, sub=None))}", "'sub' claim"),
        "past exp": (f"Bearer {sign(_claims(platform, exp=int(platform.clock.now()) - 1))}", "has expired"),
    }
    by_kind: dict[str, str] = {}
    for header, fragment in cases.values():
        headers = {} if header is None else {"Authorization": header}
        by_kind.setdefault(fragment, expect_error(client.get(LIST_PLANS, headers=headers), 403, fragment))
    # Each kind of failure says which: no two kinds share a message.
    assert len(set(by_kind.values())) == len(by_kind), by_kind


def test_bearer_token_expires_on_the_emulator_clock(api: Api, client: FlaskClient, auth: dict[str, str]) -> None:
    api.advance(Settings().token_ttl - 2)
    assert envelope_of(client.get(LIST_PLANS, headers=auth))["code"] == 200
    api.advance(3)
    expect_error(client.get(LIST_PLANS, headers=auth), 403, "access token has expired")


def test_bearer_token_of_unknown_user_is_998(client: FlaskClient, platform: Any) -> None:
    token = sign(_claims(platform, sub="U404"))
    expect_error(client.get(LIST_PLANS, headers={"Authorization": f"Bearer {token}"}), 998, "U404", http=200)


def test_bearer_scheme_is_case_insensitive(client: FlaskClient, auth: dict[str, str]) -> None:
    token = auth["Authorization"].split()[1]
    assert envelope_of(client.get(LIST_PLANS, headers={"Authorization": f"bearer {token}"}))["code"] == 200


def test_token_of_an_app_that_expires_later_is_refused() -> None:
    # Start the emulator clock an hour before app 123123's validUntil, log in, then cross that instant.
    valid_until = dt.datetime(2026, 1, 2, 15, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    with built_app(clock=VirtualClock(valid_until - 3600)) as app:
        client = app.test_client()
        api = Api(client, app.extensions["dpa_platform"])
        headers = api.login(EXPIRED)
        assert envelope_of(client.get(LIST_PLANS, headers=headers))["code"] == 200
        assert envelope_of(client.post(ADMIN_ADVANCE, json={"seconds": 3601}))["code"] == 200
        expect_error(client.get(LIST_PLANS, headers=headers), 403, "'123123'", "expired")
        expect_error(api.authorize(client_id=EXPIRED["client_id"]), 403, "expired")


def test_expired_app_token_forged_with_the_right_key_is_refused(client: FlaskClient, platform: Any) -> None:
    token = sign(_claims(platform, aud=EXPIRED["client_id"]))
    expect_error(client.get(LIST_PLANS, headers={"Authorization": f"Bearer {token}"}), 403, "'123123'", "expired")
