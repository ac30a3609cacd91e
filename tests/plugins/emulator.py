"""Fixtures: a fresh in-process emulator per test (virtual clock), its test client, and an API helper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mock_server.app import create_app
from mock_server.domain.platform import Platform
from mock_server.settings import Settings

POC = {"client_id": "JhYhK/XcFKuVlpVijwLCkw==", "client_secret": "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="}
DOC_CLIENT = {"client_id": "CfjisL9AeNc066tkxSiKig==", "client_secret": "xB5hQnmlNnc+iab3RODs6yHlcHqFHAM2e4PawddAxtI="}
EXPIRED = {"client_id": "0dGIPSRWTCDjqO+wLUGJg==", "client_secret": "QZ2v5j9Vza7DnKN93YziXEJEvOxymw7xDxdDAIUC6jg="}
DEFAULT_ONLY = {
    "client_id": "zblzjBa2vQB3nitkvtf88A==",
    "client_secret": "nRAJJqMCO0ASTiz/ngIHr4egBBzO537C/E+PWW+EfBI=",
}

AUTHORIZE = "/api/dp/auth/oauth/authorize"
TOKEN = "/api/dp/auth/oauth/token"
LIST_PLANS = "/api/dpa/process/processPlan/queryPlanByUserId"
MODELS = "/api/dpa/process/processPlan/queryModelByPlanId"
SCENE = "/api/dpa/process/processPlan/saveTimingParam"
EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/{}"
OUT_PARAMS = "/api/dpa/process//processPlan/queryPlanRunOutParam"


class Api:
    """Thin helper over a Flask test client speaking the document's flow."""

    def __init__(self, client: FlaskClient, platform: Platform) -> None:
        self.client, self.platform = client, platform

    def authorize(self, client_id: str = POC["client_id"], scope: str = "default", response_type: str = "code") -> Any:
        return self.client.get(
            AUTHORIZE, query_string={"client_id": client_id, "response_type": response_type, "scope": scope}
        )

    def code(self, **kw: Any) -> str:
        body = self.authorize(**kw).get_json()
        assert body["code"] == 200, body
        return body["data"]["code"]

    def token(
        self,
        code: str,
        client_id: str = POC["client_id"],
        client_secret: str = POC["client_secret"],
        grant_type: str = "authorization_code",
        **extra: Any,
    ) -> Any:
        return self.client.post(
            TOKEN,
            json={
                "code": code,
                "client_id": client_id,
                "client_secret": client_secret,
                "grant_type": grant_type,
                **extra,
            },
        )

    def login(self, app: dict[str, str] = POC, scope: str = "default", user_id: str | None = None) -> dict[str, str]:
        code = self.code(client_id=app["client_id"], scope=scope)
        extra = {} if user_id is None else {"user_id": user_id}
        body = self.token(code, app["client_id"], app["client_secret"], **extra).get_json()
        assert body["code"] == 200, body
        return {"Authorization": f"Bearer {body['data']['access_token']}"}

    def execute(self, headers: dict[str, str], plan_id: str = "acf42dd3", **body: Any) -> Any:
        return self.client.post(EXECUTE.format(plan_id), headers=headers, json={"processPlanId": plan_id, **body})

    def start(self, headers: dict[str, str], plan_id: str = "acf42dd3", **body: Any) -> str:
        envelope = self.execute(headers, plan_id, **body).get_json()
        assert envelope["code"] == 200, envelope
        return envelope["data"][0]["planInstanceId"]

    def out_params(self, headers: dict[str, str], plan_id: str, instance_id: str) -> Any:
        return self.client.get(
            OUT_PARAMS, headers=headers, query_string={"processPlanId": plan_id, "planInstanceId": instance_id}
        )

    def advance(self, seconds: float) -> Any:
        body = self.client.post("/__admin/clock/advance", json={"seconds": seconds}).get_json()
        assert body["code"] == 200, body
        return body["data"]

    def run(self, instance_id: str) -> dict[str, Any]:
        return self.client.get(f"/__admin/runs/{instance_id}").get_json()["data"]


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Build apps with settings overrides (virtual clock by default); each is closed after the test."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(Settings(**{"clock": "virtual", "log_requests": False, **overrides}))
        made.append(app)
        return app

    yield factory
    for app in made:
        app.extensions["dpa_platform"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def platform(app: Flask) -> Platform:
    return app.extensions["dpa_platform"]


@pytest.fixture
def api(client: FlaskClient, platform: Platform) -> Api:
    return Api(client, platform)


@pytest.fixture
def auth(api: Api) -> dict[str, str]:
    """Bearer headers for poc_client's default user with scope=default."""
    return api.login()
