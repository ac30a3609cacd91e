"""Interface 4: saving timing scenes, their validation, and firing on the virtual clock (calendar-aware)."""

from __future__ import annotations

import json
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mock_server.domain.clock import RealClock, VirtualClock
from mock_server.domain.scenes import fire_time
from mock_server.testing.receiver import CallbackReceiver
from tests.plugins.emulator import SCENE, Api
from tests.plugins.engine import (
    ALL_PRINCIPAL,
    START,
    PinnedApps,
    ScriptedTransport,
    admin_runs,
    admin_scenes,
    api_for,
    domain_platform,
    ms,
    scene_form,
    shanghai,
    statuses,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = ms(START)


@pytest.fixture
def sapi(pinned: PinnedApps) -> Api:
    """Clock at START; callbacks go to an in-memory transport that acks."""
    return api_for(pinned(transport=ScriptedTransport()))


def save(api: Api, headers: dict[str, str], **fields: str) -> Any:
    return api.client.post(SCENE, headers=headers, data=scene_form(**fields))


def saved(api: Api, headers: dict[str, str], **fields: str) -> str:
    body = save(api, headers, **fields).get_json()
    assert body["code"] == 200, body
    return str(body["data"]["instanceId"])


def scene_runs(api: Api, scene_id: str) -> list[dict[str, Any]]:
    return [r for r in admin_runs(api.client) if r["sceneId"] == scene_id]


# -- saving -----------------------------------------------------------------------------------------
def test_save_returns_scene_id_first_model_and_default(sapi: Api) -> None:
    headers = sapi.login()
    response = save(sapi, headers)
    body = response.get_json()
    assert response.status_code == 200 and body["code"] == 200 and body["message"] == "success"
    data = body["data"]
    assert set(data) == {"instanceId", "modelId", "status"}
    assert data["modelId"] == "md1606743910508" and data["status"] == "DEFAULT"
    assert data["instanceId"].startswith("in") and data["instanceId"][2:].isdigit()
    scene = admin_scenes(sapi.client)[data["instanceId"]]
    assert {
        k: scene[k]
        for k in (
            "processPlanId",
            "sceneName",
            "dimension",
            "intervals",
            "executeStrategy",
            "callbackUrl",
            "firedCount",
            "coalescedCount",
            "active",
            "createTime",
        )
    } == {
        "processPlanId": "acf42dd3",
        "sceneName": "巡检",
        "dimension": "minutes",
        "intervals": 2,
        "executeStrategy": "single",
        "callbackUrl": "http://127.0.0.1:9/cb",
        "firedCount": 0,
        "coalescedCount": 0,
        "active": True,
        "createTime": T0,
    }
    assert scene["nextFireTime"] == T0 + 120_000
    assert admin_runs(sapi.client) == []  # saving runs nothing yet


def test_save_uses_the_plans_first_workflow_as_model_id(sapi: Api) -> None:
    body = save(
        sapi,
        sapi.login(),
        processPlanId="b7e1c0a2",
        modelVarReq=json.dumps([{"modelId": "md1606743910601", "mapParam": {"TARGET_HOST": "h"}}]),
    ).get_json()
    assert body["code"] == 200 and body["data"]["modelId"] == "md1606743910601"


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_null_model_id_and_map_param_in_a_scenes_model_var_req_mean_absent(sapi: Api, multipart: bool) -> None:
    # D23 in the form's JSON field too: a Java client's unset modelId/mapParam arrive as null.
    items = [{"modelId": None, "mapParam": {"DPA_MODEL_WORKDIR": "/srv/null"}}, {"modelId": None, "mapParam": None}]
    form = scene_form(modelVarReq=json.dumps(items))
    reply = sapi.client.post(
        SCENE, headers=sapi.login(), data=form, content_type="multipart/form-data" if multipart else None
    ).get_json()
    assert reply["code"] == 200, reply
    sapi.advance(120)
    [run] = scene_runs(sapi, reply["data"]["instanceId"])
    assert run["inputs"]["md1606743910508"]["DPA_MODEL_WORKDIR"] == "/srv/null"


@pytest.mark.parametrize(
    "field,value",
    [
        ("dimension", "days"),
        ("dimension", "Minutes"),
        ("dimension", "year"),
        ("executeStrategy", "once"),
        ("executeStrategy", "CYCLE"),
        ("intervals", "0"),
        ("intervals", "-1"),
        ("intervals", "abc"),
        ("intervals", "1.5"),
        ("intervals", " 2"),
        ("processPlanId", ""),
        ("callbackUrl", ""),
        ("sceneName", ""),
    ],
)
def test_invalid_field_is_400_naming_it(sapi: Api, field: str, value: str) -> None:
    response = save(sapi, sapi.login(), **{field: value})
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400, body
    assert field in body["message"]
    assert admin_scenes(sapi.client) == {}


@pytest.mark.parametrize(
    "field", ["processPlanId", "callbackUrl", "dimension", "intervals", "executeStrategy", "sceneName"]
)
def test_missing_field_is_400_naming_it(sapi: Api, field: str) -> None:
    form = scene_form()
    del form[field]
    response = sapi.client.post(SCENE, headers=sapi.login(), data=form)
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400, body
    assert field in body["message"]
    assert admin_scenes(sapi.client) == {}


@pytest.mark.parametrize(
    "dimension,intervals",
    [
        ("month", "100000"),
        ("day", "1000000000"),
        ("weeks", "10000000000"),
        ("hours", "1" + "0" * 400),
        ("month", "1" + "0" * 30),
    ],
)
def test_intervals_beyond_the_calendar_are_400_and_leave_no_scene(sapi: Api, dimension: str, intervals: str) -> None:
    """A first firing past year 9999 (or past float range) cannot be scheduled: a 400, not a 500 and a ghost."""
    response = save(sapi, sapi.login(), dimension=dimension, intervals=intervals, executeStrategy="cycle")
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400, body
    assert "intervals" in body["message"]
    assert admin_scenes(sapi.client) == {}


def test_json_body_is_400(sapi: Api) -> None:
    response = sapi.client.post(SCENE, headers=sapi.login(), json=scene_form())
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400
    assert "Content-Type" in body["message"]
    assert admin_scenes(sapi.client) == {}


def test_unknown_plan_is_404_and_bad_inputs_are_400_at_save_time(sapi: Api) -> None:
    headers = sapi.login()
    assert save(sapi, headers, processPlanId="00000000").get_json()["code"] == 404
    missing = save(sapi, headers, processPlanId="b7e1c0a2").get_json()
    assert missing["code"] == 400 and "TARGET_HOST" in missing["message"]
    bad_model = save(sapi, headers, modelVarReq=json.dumps([{"modelId": "md0", "mapParam": {}}])).get_json()
    assert bad_model["code"] == 400 and "modelId" in bad_model["message"]
    assert admin_scenes(sapi.client) == {}


# -- firing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [START, 1_718_000_000.123456], ids=["round-start", "fractional-start"])
def test_single_fires_exactly_once_at_create_plus_interval(pinned: PinnedApps, start: float) -> None:
    api = api_for(pinned(start=start, transport=ScriptedTransport()))
    scene_id = saved(api, api.login(), dimension="minutes", intervals="2", executeStrategy="single")
    due = admin_scenes(api.client)[scene_id]["nextFireTime"]
    assert due == ms(start) + 120_000
    api.advance(119.999)
    scene = admin_scenes(api.client)[scene_id]
    assert (scene["firedCount"], scene["nextFireTime"], scene_runs(api, scene_id)) == (0, due, [])
    api.advance(0.001)
    scene = admin_scenes(api.client)[scene_id]
    runs = scene_runs(api, scene_id)
    assert scene["firedCount"] == 1 and len(runs) == 1
    assert runs[0]["createTime"] == due
    assert (scene["active"], scene["nextFireTime"], scene["lastInstanceId"]) == (False, None, runs[0]["planInstanceId"])
    api.advance(7 * 86400)
    assert len(scene_runs(api, scene_id)) == 1 and admin_scenes(api.client)[scene_id]["firedCount"] == 1


@pytest.mark.parametrize(
    "dimension,intervals,advance,expected",
    [
        ("seconds", "10", 95, 9),
        ("minutes", "5", 3600, 12),
        ("hours", "2", 86400, 12),
        ("day", "1", 7 * 86400, 7),
        ("weeks", "1", 30 * 86400, 4),
    ],
)
def test_cycle_fires_every_period(sapi: Api, dimension: str, intervals: str, advance: float, expected: int) -> None:
    scene_id = saved(sapi, sapi.login(), dimension=dimension, intervals=intervals, executeStrategy="cycle")
    sapi.advance(advance)
    period = int(intervals) * {"seconds": 1, "minutes": 60, "hours": 3600, "day": 86400, "weeks": 604800}[dimension]
    runs = scene_runs(sapi, scene_id)
    assert sorted(r["createTime"] for r in runs) == [T0 + k * period * 1000 for k in range(1, expected + 1)]
    scene = admin_scenes(sapi.client)[scene_id]
    assert scene["firedCount"] == expected and scene["coalescedCount"] == 0 and scene["active"] is True
    assert scene["nextFireTime"] == T0 + (expected + 1) * period * 1000
    ended = [r["status"] for r in runs if r["createTime"] + 1500 <= T0 + advance * 1000]
    assert ended == ["SUCCESS"] * len(ended) and len(ended) >= expected - 1  # each firing ran the plan


def test_fired_runs_use_the_scenes_callback_url_inputs_and_user(pinned: PinnedApps, receiver: CallbackReceiver) -> None:
    api = api_for(pinned())
    headers = api.login()
    scene_id = saved(
        api,
        headers,
        dimension="minutes",
        intervals="1",
        executeStrategy="cycle",
        callbackUrl=receiver.url,
        modelVarReq=json.dumps([{"modelId": "md1606743910508", "mapParam": {"DPA_MODEL_WORKDIR": "/srv/scene"}}]),
    )
    api.advance(150)
    runs = scene_runs(api, scene_id)
    assert len(runs) == 2
    assert receiver.wait_for(lambda ds: len(ds) >= 6, timeout=5)
    for run in runs:
        assert run["callbackUrl"] == receiver.url and run["userId"] == "U100000"
        assert statuses(receiver.for_instance(run["planInstanceId"])) == ["DEFAULT", "RUNNING", "SUCCESS"]
        out = api.out_params(headers, "acf42dd3", run["planInstanceId"]).get_json()["data"]
        assert out[0]["mapParam"][0]["result"] == "mkdir -p /srv/scene && echo ok"


def test_deleting_a_scene_stops_it(sapi: Api) -> None:
    scene_id = saved(sapi, sapi.login(), dimension="minutes", intervals="1", executeStrategy="cycle")
    sapi.advance(120)
    deleted = sapi.client.delete(f"/__admin/scenes/{scene_id}").get_json()
    assert deleted["code"] == 200 and deleted["data"]["instanceId"] == scene_id
    assert deleted["data"]["firedCount"] == 2
    sapi.advance(3600)
    assert len(scene_runs(sapi, scene_id)) == 2
    assert scene_id not in admin_scenes(sapi.client)
    again = sapi.client.delete(f"/__admin/scenes/{scene_id}")
    assert again.status_code == 404 and again.get_json()["code"] == 404


def test_firings_beyond_the_catchup_limit_are_coalesced(pinned: PinnedApps) -> None:
    api = api_for(pinned(scene_catchup_limit=5, transport=ScriptedTransport()))
    scene_id = saved(api, api.login(), dimension="seconds", intervals="1", executeStrategy="cycle")
    api.advance(60)
    scene = admin_scenes(api.client)[scene_id]
    assert (scene["firedCount"], scene["coalescedCount"]) == (5, 55)
    assert sorted(r["createTime"] for r in scene_runs(api, scene_id)) == [T0 + k * 1000 for k in range(1, 6)]
    assert scene["nextFireTime"] == T0 + 61_000
    api.advance(1)  # a new advance call: the limit starts over
    scene = admin_scenes(api.client)[scene_id]
    assert (scene["firedCount"], scene["coalescedCount"]) == (6, 55)
    assert max(r["createTime"] for r in scene_runs(api, scene_id)) == T0 + 61_000


def test_the_catchup_limit_does_not_throttle_a_scene_as_real_time_passes() -> None:
    """The limit is per /__admin/clock/advance call; without any such call a scene must keep firing."""
    clock = RealClock()
    platform = domain_platform(ScriptedTransport(), clock, scene_catchup_limit=2)
    platform.start()
    try:
        scene = platform.save_scene(
            ALL_PRINCIPAL, scene_form(dimension="seconds", intervals="1", executeStrategy="cycle")
        )
        record = platform.scenes.scenes[scene["instanceId"]]
        for step in range(1, 5):
            clock.advance(1.0)  # as if a second of wall time passed; the engine's ticker must notice
            with platform.scheduler.changed:
                platform.scheduler.changed.notify_all()
            deadline = time.monotonic() + 3
            while record.fired + record.coalesced < step and time.monotonic() < deadline:
                time.sleep(0.01)
        assert (record.fired, record.coalesced) == (4, 0)
    finally:
        platform.close()


# -- calendar arithmetic (Asia/Shanghai) ------------------------------------------------------------
def _fire_local(anchor: tuple[int, ...], dimension: str, intervals: int, k: int) -> float:
    return fire_time(shanghai(*anchor), k, dimension, intervals, TZ)


def test_month_from_january_31_clamps_to_month_ends_without_drifting() -> None:
    expected = [
        (2024, 2, 29),
        (2024, 3, 31),
        (2024, 4, 30),
        (2024, 5, 31),
        (2024, 6, 30),
        (2024, 12, 31),
        (2025, 1, 31),
        (2025, 2, 28),
    ]
    ks = [1, 2, 3, 4, 5, 11, 12, 13]
    assert [_fire_local((2024, 1, 31, 10), "month", 1, k) for k in ks] == [shanghai(*d, 10) for d in expected]


def test_month_scene_fires_on_the_last_days_of_feb_mar_apr() -> None:
    clock = VirtualClock(start=shanghai(2024, 1, 31, 10))
    platform = domain_platform(ScriptedTransport(), clock)
    try:
        saved_scene = platform.save_scene(
            ALL_PRINCIPAL, scene_form(dimension="month", intervals="1", executeStrategy="cycle")
        )
        scene = platform.scenes.scenes[saved_scene["instanceId"]]
        assert scene.next_fire == shanghai(2024, 2, 29, 10)
        platform.advance(shanghai(2024, 2, 29, 9, 59, 59) - clock.now())
        assert scene.fired == 0
        platform.advance(shanghai(2024, 5, 15) - clock.now())
        fired = sorted(r.created_at for r in platform.runs.runs.values())
        assert fired == [shanghai(2024, 2, 29, 10), shanghai(2024, 3, 31, 10), shanghai(2024, 4, 30, 10)]
        assert scene.next_fire == shanghai(2024, 5, 31, 10)
        assert all(r.status == "SUCCESS" for r in platform.runs.runs.values())
    finally:
        platform.close()


@pytest.mark.parametrize(
    "anchor,dimension,intervals,k,expected",
    [
        ((2024, 2, 28, 10), "day", 1, 1, (2024, 2, 29, 10)),
        ((2024, 2, 28, 10), "day", 1, 2, (2024, 3, 1, 10)),
        ((2023, 2, 28, 10), "day", 1, 1, (2023, 3, 1, 10)),
        ((2024, 2, 29, 0, 30), "day", 365, 1, (2025, 2, 28, 0, 30)),
        ((2024, 2, 29, 23, 59), "day", 366, 1, (2025, 3, 1, 23, 59)),
        ((2024, 2, 22, 8), "weeks", 1, 1, (2024, 2, 29, 8)),
        ((2024, 2, 22, 8), "weeks", 1, 2, (2024, 3, 7, 8)),
        ((2023, 12, 28, 12), "weeks", 2, 1, (2024, 1, 11, 12)),
        ((2024, 2, 29, 10), "month", 12, 1, (2025, 2, 28, 10)),
        ((2024, 2, 29, 10), "month", 12, 4, (2028, 2, 29, 10)),
        ((2024, 2, 29, 10), "month", 1, 1, (2024, 3, 29, 10)),
        ((2023, 10, 31, 7), "month", 4, 1, (2024, 2, 29, 7)),
    ],
)
def test_calendar_firings_across_leap_days(
    anchor: tuple[int, ...], dimension: str, intervals: int, k: int, expected: tuple[int, ...]
) -> None:
    assert _fire_local(anchor, dimension, intervals, k) == shanghai(*expected)


def test_day_scene_fires_on_leap_day_in_the_platform() -> None:
    clock = VirtualClock(start=shanghai(2024, 2, 27, 6, 0, 0))
    platform = domain_platform(ScriptedTransport(), clock)
    try:
        platform.save_scene(ALL_PRINCIPAL, scene_form(dimension="day", intervals="1", executeStrategy="cycle"))
        platform.advance(shanghai(2024, 3, 2, 7) - clock.now())
        fired = sorted(r.created_at for r in platform.runs.runs.values())
        assert fired == [shanghai(2024, 2, d, 6) for d in (28, 29)] + [shanghai(2024, 3, d, 6) for d in (1, 2)]
    finally:
        platform.close()


def test_scene_ticker_in_virtual_mode_does_not_fire_early(sapi: Api) -> None:
    """Nothing moves virtual time but an advance: a saved scene waits however long the wall clock runs."""
    scene_id = saved(sapi, sapi.login(), dimension="seconds", intervals="1", executeStrategy="cycle")
    time.sleep(0.3)  # wall time passes; virtual time does not
    assert admin_scenes(sapi.client)[scene_id]["firedCount"] == 0
