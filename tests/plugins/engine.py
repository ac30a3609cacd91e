"""Run-engine test helpers (loaded as a plugin for `pinned`): pinned-clock apps, a domain platform, a scripted transport."""

from __future__ import annotations

import collections
import datetime as dt
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from mock_server.app import create_app
from mock_server.domain.callbacks import Transport, TransportError
from mock_server.domain.catalog import Catalog
from mock_server.domain.clock import Clock, VirtualClock
from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.domain.store import MemoryStore, Store
from mock_server.fixtures import load_catalog
from mock_server.settings import Settings
from mock_server.sqlite_store import SqliteStore
from tests.plugins.emulator import AUTHORIZE, EXECUTE, POC, TOKEN, Api

# A whole second, so fixture durations add up to exact milliseconds (2023-11-15 06:13:20 in Shanghai).
START = 1_700_000_000.0
SHANGHAI = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai has had no DST since 1991
POC_PRINCIPAL = Principal(POC["client_id"], "U100000", "default")
ALL_PRINCIPAL = Principal(POC["client_id"], "U100000", "all")

_catalog: Catalog | None = None


def catalog() -> Catalog:
    """The bundled fixtures, parsed once: Catalog objects are read-only after loading."""
    global _catalog
    if _catalog is None:
        _catalog = load_catalog()
    return _catalog


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def shanghai(*args: int) -> float:
    """Epoch seconds of a wall-clock time in Asia/Shanghai, computed without zoneinfo."""
    return dt.datetime(*args, tzinfo=SHANGHAI).timestamp()


class PinnedApps:
    """Builds in-process apps whose virtual clock starts at a chosen instant; `close()` stops them all."""

    def __init__(self) -> None:
        self.made: list[Flask] = []

    def __call__(self, start: float = START, transport: Transport | None = None, **overrides: Any) -> Flask:
        settings = Settings(**{"clock": "virtual", "log_requests": False, **overrides})
        app = create_app(settings, clock=VirtualClock(start), transport=transport)
        self.made.append(app)
        return app

    def close(self) -> None:
        for app in self.made:
            app.extensions["dpa_platform"].close()


def domain_platform(
    transport: Transport, clock: Clock | None = None, store: Store | None = None, **overrides: Any
) -> Platform:
    """A Platform with no HTTP and no ticker (unless started); close() it after use."""
    clock = clock or VirtualClock(START)
    settings = Settings(**{"log_requests": False, **overrides, "clock": clock.mode})
    return Platform(settings, catalog(), clock, transport, store)


def make_store(kind: str) -> Store:
    """An in-memory store, or a SQLite one in a fresh temporary file."""
    if kind == "memory":
        return MemoryStore()
    return SqliteStore(Path(tempfile.mkdtemp(prefix="dpa-store-")) / "state.db")


# -- admin API over the Flask test client -------------------------------------------------------------
def data(response: Any) -> Any:
    body = response.get_json()
    assert body["code"] == 200, body
    return body["data"]


def admin_runs(client: FlaskClient, **query: str) -> list[dict[str, Any]]:
    return data(client.get("/__admin/runs", query_string=query))


def admin_scenes(client: FlaskClient) -> dict[str, dict[str, Any]]:
    return {s["instanceId"]: s for s in data(client.get("/__admin/scenes"))}


def ledger(client: FlaskClient, instance_id: str | None = None) -> list[dict[str, Any]]:
    query = {} if instance_id is None else {"planInstanceId": instance_id}
    return data(client.get("/__admin/callbacks", query_string=query))


def clock(client: FlaskClient) -> dict[str, Any]:
    return data(client.get("/__admin/clock"))


def statuses(deliveries: Iterable[Any]) -> list[str]:
    """Statuses of a CallbackReceiver's deliveries, in arrival order."""
    return [d.json["status"] for d in deliveries]


def scene_form(**fields: str) -> dict[str, str]:
    form = {
        "processPlanId": "acf42dd3",
        "callbackUrl": "http://127.0.0.1:9/cb",
        "dimension": "minutes",
        "intervals": "2",
        "executeStrategy": "single",
        "sceneName": "巡检",
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


# -- a scripted in-memory transport -------------------------------------------------------------------
ACK, FAIL, WRONG, RAISE = "ack", "fail", "wrong", "raise"


class ScriptedTransport:
    """Answers each POST by a behaviour chosen per (instance, status, n-th call for that pair), and logs calls.

    Per-instance deliveries are sequential, so the n-th call for a pair is well defined whatever the
    worker threads' interleaving; that keeps Hypothesis examples reproducible.
    """

    def __init__(self, choose: Callable[[str, str, int], str] | None = None) -> None:
        self._choose = choose or (lambda instance, status, n: ACK)
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.calls: list[tuple[str, str, str]] = []  # (instance, status, behaviour)

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        key = (payload["planInstanceId"], payload["status"])
        with self._lock:
            n = self._counts[key]
            self._counts[key] += 1
            behaviour = self._choose(key[0], key[1], n)
            self.calls.append((key[0], key[1], behaviour))
        if behaviour == RAISE:
            raise TransportError("connection refused (scripted)")
        if behaviour == FAIL:
            return 500, "FAIL"
        if behaviour == WRONG:
            return 200, "SUCESS"
        if behaviour == ACK:
            return 200, "SUCCESS"
        return behaviour_answer(behaviour)

    def calls_for(self, instance_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(s, b) for i, s, b in self.calls if i == instance_id]


def behaviour_answer(behaviour: str) -> tuple[int, str]:
    """`"<status>:<body>"` behaviours answer exactly that, e.g. "500:SUCCESS"."""
    status, _, body = behaviour.partition(":")
    return int(status), body


# -- the document's flow over real HTTP ---------------------------------------------------------------
def http_login(
    base_url: str, app: dict[str, str] = POC, scope: str = "default", user_id: str | None = None
) -> dict[str, str]:
    code = requests.get(
        base_url + AUTHORIZE,
        params={"client_id": app["client_id"], "response_type": "code", "scope": scope},
        timeout=10,
    ).json()["data"]["code"]
    body: dict[str, str] = {"code": code, "grant_type": "authorization_code", **app}
    if user_id is not None:
        body["user_id"] = user_id
    token = requests.post(base_url + TOKEN, json=body, timeout=10).json()
    assert token["code"] == 200, token
    return {"Authorization": f"Bearer {token['data']['access_token']}"}


def http_execute(
    base_url: str,
    headers: dict[str, str],
    plan_id: str = "acf42dd3",
    session: requests.Session | None = None,
    **body: Any,
) -> str:
    poster = session or requests
    reply = poster.post(
        base_url + EXECUTE.format(plan_id), headers=headers, json={"processPlanId": plan_id, **body}, timeout=30
    ).json()
    assert reply["code"] == 200, reply
    return str(reply["data"][0]["planInstanceId"])


def http_admin(base_url: str, method: str, path: str, **kwargs: Any) -> Any:
    reply = requests.request(method, base_url + path, timeout=60, **kwargs).json()
    assert reply["code"] == 200, reply
    return reply["data"]


def http_advance(base_url: str, seconds: float) -> Any:
    return http_admin(base_url, "POST", "/__admin/clock/advance", json={"seconds": seconds})


def api_for(app: Flask) -> Api:
    """The emulator plugin's Api helper over an app built here."""
    return Api(app.test_client(), app.extensions["dpa_platform"])


@pytest.fixture
def pinned() -> Iterator[PinnedApps]:
    """Apps whose virtual clock starts at START, closed after the test."""
    apps = PinnedApps()
    yield apps
    apps.close()
