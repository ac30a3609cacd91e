"""The /__admin API: clock read/advance (virtual and real), reset, access control, run listing, validation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.plugins.emulator import SCENE
from tests.plugins.engine import (
    FAIL,
    START,
    PinnedApps,
    ScriptedTransport,
    admin_runs,
    admin_scenes,
    api_for,
    clock,
    data,
    ledger,
    ms,
    scene_form,
)

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


def error(response: Any, code: int) -> str:
    body = response.get_json()
    assert response.status_code == code and body["code"] == code and body["data"] is None, body
    return str(body["message"])


# -- clock ------------------------------------------------------------------------------------------
def test_clock_reports_mode_now_offset_and_timezone(pinned: PinnedApps) -> None:
    info = clock(pinned().test_client())
    assert info == {"mode": "virtual", "now": START, "nowMs": ms(START), "offset": 0.0, "timezone": "Asia/Shanghai"}


def test_virtual_advance_moves_now_and_offset_by_the_amount(pinned: PinnedApps) -> None:
    client = pinned().test_client()
    reply = data(client.post("/__admin/clock/advance", json={"seconds": 90.5}))
    assert reply["now"] == START + 90.5 and reply["nowMs"] == ms(START) + 90_500 and reply["offset"] == 90.5
    data(client.post("/__admin/clock/advance", json={"seconds": 0}))
    data(client.post("/__admin/clock/advance", json={"seconds": 3600}))
    assert clock(client)["offset"] == 3690.5 and clock(client)["now"] == START + 3690.5


def test_virtual_clock_does_not_move_by_itself(pinned: PinnedApps) -> None:
    client = pinned().test_client()
    time.sleep(0.05)
    assert clock(client)["now"] == START


def test_real_clock_follows_wall_time_and_advance_adds_an_offset(make_app: Any) -> None:
    client = make_app(clock="real").test_client()
    info = clock(client)
    assert info["mode"] == "real" and info["offset"] == 0.0
    assert abs(info["now"] - time.time()) < 5
    reply = data(client.post("/__admin/clock/advance", json={"seconds": 3600}))
    assert reply["offset"] == 3600.0
    assert abs(reply["now"] - (time.time() + 3600)) < 5
    data(client.post("/__admin/clock/advance", json={"seconds": 60}))
    assert clock(client)["offset"] == 3660.0


def test_real_clock_advance_moves_runs_forward(make_app: Any) -> None:
    app = make_app(clock="real")
    api = api_for(app)
    instance = api.start(api.login())
    api.advance(5)  # far beyond the 1.5 s the plan needs, without waiting for it
    assert api.run(instance)["status"] == "SUCCESS"


@pytest.mark.parametrize(
    "body,named",
    [
        ({"seconds": -1}, "seconds"),
        ({}, "seconds"),
        ({"seconds": "10"}, "seconds"),
        ({"seconds": None}, "seconds"),
        ({"seconds": 1, "x": 2}, "x"),
        ([10], "body"),
    ],
    ids=["negative", "missing", "string", "null", "extra", "array"],
)
def test_advance_rejects_bad_bodies(pinned: PinnedApps, body: Any, named: str) -> None:
    client = pinned().test_client()
    assert named in error(client.post("/__admin/clock/advance", json=body), 400)
    assert clock(client)["now"] == START


def test_advance_without_a_json_body_is_400(pinned: PinnedApps) -> None:
    client = pinned().test_client()
    error(client.post("/__admin/clock/advance"), 400)
    error(
        client.post("/__admin/clock/advance", data="seconds=5", content_type="application/x-www-form-urlencoded"), 400
    )
    error(client.post("/__admin/clock/advance", data="{not json", content_type="application/json"), 400)
    assert clock(client)["now"] == START


@pytest.mark.parametrize("raw", ['{"seconds": 1e400}', '{"seconds": Infinity}', '{"seconds": NaN}'])
def test_advance_rejects_non_finite_seconds_and_the_clock_stays_usable(pinned: PinnedApps, raw: str) -> None:
    client = pinned().test_client()
    error(client.post("/__admin/clock/advance", data=raw, content_type="application/json"), 400)
    info = clock(client)
    assert info["now"] == START and info["nowMs"] == ms(START)


# -- reset ------------------------------------------------------------------------------------------
def test_reset_clears_runs_scenes_codes_deliveries_faults_journal_and_clock(pinned: PinnedApps) -> None:
    transport = ScriptedTransport()
    api = api_for(pinned(transport=transport))
    headers = api.login()
    unused_code = api.code()
    instance = api.start(headers, callbackUrl="http://127.0.0.1:9/cb")
    data(api.client.post(SCENE, headers=headers, data=scene_form(executeStrategy="cycle", intervals="1")))
    data(api.client.post("/__admin/faults", json={"path": "no-such-path", "code": 503}))
    api.advance(90)
    assert admin_runs(api.client) and admin_scenes(api.client) and ledger(api.client)
    assert data(api.client.get("/__admin/faults")) and data(api.client.get("/__admin/requests"))
    assert clock(api.client)["offset"] == 90

    assert api.client.post("/__admin/reset").get_json() == {"code": 200, "message": "success", "data": None}

    assert [e["path"] for e in data(api.client.get("/__admin/requests"))] == ["/__admin/reset"]
    assert admin_runs(api.client) == [] and admin_scenes(api.client) == {} and ledger(api.client) == []
    assert data(api.client.get("/__admin/faults")) == []
    info = clock(api.client)
    assert info["offset"] == 0 and info["now"] == START
    error(api.client.get(f"/__admin/runs/{instance}"), 404)
    # A code from before the reset no longer redeems; a fresh one does.
    error(api.token(unused_code), 403)
    assert api.login()["Authorization"].startswith("Bearer ")
    calls = len(transport.calls)
    api.advance(3600)  # the old scene and the old run are gone: nothing fires, nothing is delivered
    assert admin_runs(api.client) == [] and len(transport.calls) == calls


def test_reset_drops_deliveries_still_being_retried(pinned: PinnedApps) -> None:
    transport = ScriptedTransport(lambda instance, status, n: FAIL)
    api = api_for(pinned(transport=transport))
    api.start(api.login(), callbackUrl="http://127.0.0.1:9/cb")
    api.advance(0.05)  # first DEFAULT attempt failed; its retry is due at +0.1 s
    assert len(transport.calls) == 1
    data(api.client.post("/__admin/reset"))
    api.advance(60)
    assert len(transport.calls) == 1 and ledger(api.client) == []


# -- access control ---------------------------------------------------------------------------------
ADMIN_CALLS = [
    ("GET", "/__admin/clock", None),
    ("POST", "/__admin/clock/advance", {"seconds": 10}),
    ("POST", "/__admin/reset", None),
    ("GET", "/__admin/runs", None),
    ("GET", "/__admin/scenes", None),
    ("GET", "/__admin/callbacks", None),
    ("GET", "/__admin/requests", None),
    ("GET", "/__admin/faults", None),
    ("POST", "/__admin/faults", {"code": 503}),
    ("DELETE", "/__admin/faults", None),
]


def _call(client: FlaskClient, method: str, path: str, body: Any, **kw: Any) -> Any:
    return client.open(path, method=method, json=body, **kw)


@pytest.mark.parametrize("method,path,body", ADMIN_CALLS, ids=[f"{m} {p}" for m, p, _ in ADMIN_CALLS])
def test_admin_refuses_non_loopback_clients(pinned: PinnedApps, method: str, path: str, body: Any) -> None:
    api = api_for(pinned())
    instance = api.start(api.login())
    assert "loopback" in error(_call(api.client, method, path, body, environ_base=REMOTE), 403)
    assert clock(api.client)["now"] == START and [r["planInstanceId"] for r in admin_runs(api.client)] == [instance]
    assert data(api.client.get("/__admin/faults")) == []


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.8.9.10", "::1"])
def test_admin_answers_loopback_clients(pinned: PinnedApps, addr: str) -> None:
    client = pinned().test_client()
    assert client.get("/__admin/clock", environ_base={"REMOTE_ADDR": addr}).get_json()["code"] == 200


def test_admin_answers_ipv4_loopback_seen_through_a_dual_stack_socket(pinned: PinnedApps) -> None:
    """Served on `::`, a 127.0.0.1 client arrives as ::ffff:127.0.0.1 — still a loopback client."""
    client = pinned().test_client()
    response = client.get("/__admin/clock", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"})
    assert response.get_json()["code"] == 200, response.get_json()


def test_admin_token_is_required_when_configured(pinned: PinnedApps) -> None:
    client = pinned(admin_token="t").test_client()
    assert "X-Admin-Token" in error(client.get("/__admin/clock"), 403)
    error(client.get("/__admin/clock", headers={"X-Admin-Token": "wrong"}), 403)
    error(client.get("/__admin/clock", headers={"X-Admin-Token": "T"}), 403)
    error(client.post("/__admin/clock/advance", json={"seconds": 5}, headers={"X-Admin-Token": ""}), 403)
    assert clock_with(client, {"X-Admin-Token": "t"})["now"] == START  # the refused advance did nothing
    assert clock_with(client, {"X-Admin-Token": "t"}, REMOTE)["mode"] == "virtual"  # token opens it to others
    error(client.get("/__admin/clock", environ_base=REMOTE), 403)


def clock_with(client: FlaskClient, headers: dict[str, str], environ: dict[str, str] | None = None) -> Any:
    return data(client.get("/__admin/clock", headers=headers, environ_base=environ or {}))


def test_vendor_api_does_not_need_the_admin_token(pinned: PinnedApps) -> None:
    api = api_for(pinned(admin_token="t"))
    assert api.start(api.login()).startswith("in")


# -- runs listing -----------------------------------------------------------------------------------
def test_admin_runs_filters_by_plan_and_status(pinned: PinnedApps) -> None:
    api = api_for(pinned())
    headers = api.login()
    ok = api.start(headers)
    failed = api.start(headers, "c3d9f4e5")
    pending = api.start(headers, "d4a8e6f1")
    api.advance(10)
    fresh = api.start(headers)

    def ids(**query: str) -> list[str]:
        return [r["planInstanceId"] for r in admin_runs(api.client, **query)]

    assert ids() == [ok, failed, pending, fresh]
    assert ids(processPlanId="acf42dd3") == [ok, fresh]
    assert ids(status="SUCCESS") == [ok] and ids(status="FAIL") == [failed] and ids(status="PENDING") == [pending]
    assert ids(status="DEFAULT") == [fresh] and ids(status="RUNNING") == []
    assert ids(processPlanId="acf42dd3", status="DEFAULT") == [fresh]
    assert ids(processPlanId="c3d9f4e5", status="SUCCESS") == []
    assert ids(processPlanId="nope") == []
    assert "status" in error(api.client.get("/__admin/runs", query_string={"status": "DONE"}), 400)


def test_admin_run_detail_and_unknown_run(pinned: PinnedApps) -> None:
    api = api_for(pinned())
    instance = api.start(
        api.login(),
        callbackUrl="http://127.0.0.1:9/cb",
        modelVarReq=[{"modelId": "md1606743910508", "mapParam": {"DPA_MODEL_WORKDIR": "/w"}}],
    )
    run = data(api.client.get(f"/__admin/runs/{instance}"))
    assert {k: run[k] for k in ("planInstanceId", "processPlanId", "status", "callbackUrl", "userId", "sceneId")} == {
        "planInstanceId": instance,
        "processPlanId": "acf42dd3",
        "status": "DEFAULT",
        "callbackUrl": "http://127.0.0.1:9/cb",
        "userId": "U100000",
        "sceneId": None,
    }
    assert run["inputs"] == {"md1606743910508": {"DPA_MODEL_WORKDIR": "/w"}}
    assert [n["nodeType"] for n in run["nodes"]] == ["shell", "api", "end"]
    assert "in404" in error(api.client.get("/__admin/runs/in404"), 404)


def test_admin_callbacks_filter_by_instance(pinned: PinnedApps) -> None:
    api = api_for(pinned(transport=ScriptedTransport()))
    headers = api.login()
    first = api.start(headers, callbackUrl="http://127.0.0.1:9/a")
    second = api.start(headers, callbackUrl="http://127.0.0.1:9/b")
    api.advance(5)
    assert {d["planInstanceId"] for d in ledger(api.client)} == {first, second}
    assert [(d["status"], d["url"]) for d in ledger(api.client, second)] == [
        ("DEFAULT", "http://127.0.0.1:9/b"),
        ("RUNNING", "http://127.0.0.1:9/b"),
        ("SUCCESS", "http://127.0.0.1:9/b"),
    ]
    assert ledger(api.client, "in0") == []


def test_an_in_process_advance_beyond_the_clocks_range_is_refused_and_changes_nothing() -> None:
    # The pytest plugin calls Platform.advance directly: it must get the same refusal as the admin endpoint,
    # not an advance that silently does nothing.
    from mock_server.app import create_app
    from mock_server.domain.errors import ValidationError
    from mock_server.settings import Settings

    app = create_app(Settings(clock="virtual"))
    platform = app.extensions["dpa_platform"]
    try:
        before = platform.clock.now()
        with pytest.raises(ValidationError, match="at most"):
            platform.advance(1e308)
        assert platform.clock.now() == before
        platform.advance(1)
        assert platform.clock.now() == before + 1
    finally:
        platform.close()
