"""Interface 5 and the run engine: execute, ids, paths, validation, status timelines on the virtual clock."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from mock_server.domain.runs import FAIL, SUCCESS
from tests.plugins.emulator import EXECUTE, LIST_PLANS, Api
from tests.plugins.engine import ALL_PRINCIPAL, START, PinnedApps, ScriptedTransport, domain_platform, ms


@pytest.fixture
def pinned() -> Iterator[PinnedApps]:
    apps = PinnedApps()
    yield apps
    apps.close()


@pytest.fixture
def papi(pinned: PinnedApps) -> Api:
    """An Api on an app whose virtual clock starts at START (a whole second)."""
    app = pinned()
    return Api(app.test_client(), app.extensions["dpa_platform"])


@pytest.fixture
def pauth(papi: Api) -> dict[str, str]:
    return papi.login()


def history(api: Api, instance_id: str) -> list[tuple[str, int]]:
    return [(h["status"], h["at"]) for h in api.run(instance_id)["history"]]


# -- execute ---------------------------------------------------------------------------------------
def test_execute_returns_plan_and_instance_id(api: Api, auth: dict[str, str]) -> None:
    body = api.execute(auth).get_json()
    assert body["code"] == 200 and body["message"] == "success"
    assert len(body["data"]) == 1
    item = body["data"][0]
    assert set(item) == {"processPlanId", "planInstanceId"}
    assert item["processPlanId"] == "acf42dd3"
    assert re.fullmatch(r"in\d{13}", item["planInstanceId"]), item
    assert api.run(item["planInstanceId"])["processPlanId"] == "acf42dd3"


def test_instance_ids_are_unique_and_increasing_across_50_calls(api: Api, auth: dict[str, str]) -> None:
    ids = [api.start(auth) for _ in range(50)]
    assert len(set(ids)) == 50
    numbers = [int(i[2:]) for i in ids]
    assert numbers == sorted(numbers)
    assert {r["planInstanceId"] for r in api.client.get("/__admin/runs").get_json()["data"]} == set(ids)


@pytest.mark.parametrize("path", [EXECUTE, EXECUTE.replace("//", "/")], ids=["double-slash", "single-slash"])
def test_execute_is_served_on_both_path_forms(api: Api, auth: dict[str, str], path: str) -> None:
    body = api.client.post(path.format("acf42dd3"), headers=auth, json={"processPlanId": "acf42dd3"}).get_json()
    assert body["code"] == 200, body
    assert api.run(body["data"][0]["planInstanceId"])["status"] == "DEFAULT"


def test_body_and_path_plan_ids_must_match(api: Api, auth: dict[str, str]) -> None:
    response = api.client.post(EXECUTE.format("acf42dd3"), headers=auth, json={"processPlanId": "c3d9f4e5"})
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400
    assert "processPlanId" in body["message"]
    assert api.client.get("/__admin/runs").get_json()["data"] == []


def test_body_without_process_plan_id_is_400(api: Api, auth: dict[str, str]) -> None:
    response = api.client.post(EXECUTE.format("acf42dd3"), headers=auth, json={"callbackUrl": "http://x/cb"})
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == 400
    assert "processPlanId" in body["message"]


def test_unknown_plan_is_404(api: Api, auth: dict[str, str]) -> None:
    response = api.execute(auth, plan_id="00000000")
    body = response.get_json()
    assert response.status_code == 404 and body["code"] == 404
    assert "00000000" in body["message"]
    assert api.client.get("/__admin/runs").get_json()["data"] == []


# -- status timelines --------------------------------------------------------------------------------
def test_acf42dd3_default_running_success_on_fixture_durations(papi: Api, pauth: dict[str, str]) -> None:
    instance = papi.start(pauth)
    assert papi.run(instance)["status"] == "DEFAULT"
    papi.advance(0.199)
    assert papi.run(instance)["status"] == "DEFAULT"
    papi.advance(0.002)  # 1 ms past the start; the exact boundary is test_steps_that_sum_to_a_due_time_reach_it
    assert papi.run(instance)["status"] == "RUNNING"
    papi.advance(1.297)
    assert papi.run(instance)["status"] == "RUNNING"
    papi.advance(0.002)
    run = papi.run(instance)
    assert run["status"] == "SUCCESS"
    t0 = ms(START)
    # start_delay 0.2, then nodes of 0.5 + 0.5 + 0.3 seconds.
    assert history(papi, instance) == [("DEFAULT", t0), ("RUNNING", t0 + 200), ("SUCCESS", t0 + 1500)]
    assert [(n["nodeName"], n["state"], n["startedAt"] - t0, n["finishedAt"] - t0) for n in run["nodes"]] == [
        ("准备工作目录", "success", 200, 700),
        ("调用健康检查", "success", 700, 1200),
        ("结束", "success", 1200, 1500),
    ]
    assert run["createTime"] == t0 and run["updateTime"] == t0 + 1500


@pytest.mark.parametrize("start", [START, 1_718_000_000.123456], ids=["round-start", "fractional-start"])
@pytest.mark.parametrize(
    "steps,status",
    [
        ((0.2,), "RUNNING"),
        ((0.199, 0.001), "RUNNING"),
        ((0.1, 0.1), "RUNNING"),
        ((1.5,), "SUCCESS"),
        ((1.499, 0.001), "SUCCESS"),
        ((0.3, 0.7, 0.5), "SUCCESS"),
        ((0.1,) * 15, "SUCCESS"),
    ],
    ids=["0.2", "0.199+0.001", "0.1+0.1", "1.5", "1.499+0.001", "0.3+0.7+0.5", "15x0.1"],
)
def test_steps_that_sum_to_a_due_time_reach_it(
    pinned: PinnedApps, start: float, steps: tuple[float, ...], status: str
) -> None:
    """Advancing 0.199 s then 0.001 s is advancing 0.2 s: the run must have started, whatever the float sums."""
    app = pinned(start=start)
    api = Api(app.test_client(), app.extensions["dpa_platform"])
    instance = api.start(api.login())
    for seconds in steps:
        api.advance(seconds)
    assert api.run(instance)["status"] == status


def test_c3d9f4e5_fails_at_its_second_node(papi: Api, pauth: dict[str, str]) -> None:
    instance = papi.start(pauth, "c3d9f4e5")
    papi.advance(1.699)
    assert papi.run(instance)["status"] == "RUNNING"
    papi.advance(10)
    run = papi.run(instance)
    t0 = ms(START)
    assert history(papi, instance) == [("DEFAULT", t0), ("RUNNING", t0 + 200), ("FAIL", t0 + 1700)]
    assert [n["state"] for n in run["nodes"]] == ["success", "fail", "waiting"]
    assert run["nodes"][2]["startedAt"] is None and run["nodes"][2]["finishedAt"] is None


def test_d4a8e6f1_pends_until_resumed_then_succeeds(papi: Api, pauth: dict[str, str]) -> None:
    instance = papi.start(pauth, "d4a8e6f1")
    papi.advance(0.7)
    assert papi.run(instance)["status"] == "PENDING"
    papi.advance(3600)
    run = papi.run(instance)
    assert run["status"] == "PENDING"
    assert [n["state"] for n in run["nodes"]] == ["success", "pending", "waiting"]
    resumed = papi.client.post(f"/__admin/runs/{instance}/resume").get_json()
    assert resumed["code"] == 200 and resumed["data"]["status"] == "RUNNING"
    papi.advance(0.999)  # approval node 0.5 s, then the last node 0.5 s
    assert papi.run(instance)["status"] == "RUNNING"
    papi.advance(0.001)
    t0 = ms(START)
    assert history(papi, instance) == [
        ("DEFAULT", t0),
        ("RUNNING", t0 + 200),
        ("PENDING", t0 + 700),
        ("RUNNING", t0 + 3600_700),
        ("SUCCESS", t0 + 3601_700),
    ]
    assert [n["state"] for n in papi.run(instance)["nodes"]] == ["success", "success", "success"]


def test_resume_refuses_a_run_that_is_not_pending(papi: Api, pauth: dict[str, str]) -> None:
    instance = papi.start(pauth)
    for advance in (0, 0.5, 5):  # DEFAULT, RUNNING, SUCCESS
        papi.advance(advance)
        before = papi.run(instance)
        response = papi.client.post(f"/__admin/runs/{instance}/resume")
        body = response.get_json()
        assert response.status_code == 400 and body["code"] == 400, body
        assert before["status"] in body["message"]
        assert papi.run(instance) == before


def test_resume_of_unknown_instance_is_404(api: Api) -> None:
    response = api.client.post("/__admin/runs/in0000000000000/resume")
    assert response.status_code == 404 and response.get_json()["code"] == 404


def test_resume_twice_is_400_the_second_time(papi: Api, pauth: dict[str, str]) -> None:
    instance = papi.start(pauth, "d4a8e6f1")
    papi.advance(1)
    assert papi.client.post(f"/__admin/runs/{instance}/resume").get_json()["code"] == 200
    assert papi.client.post(f"/__admin/runs/{instance}/resume").get_json()["code"] == 400


# -- e5f2b7c9: random outcome, seeded -----------------------------------------------------------------
def _random_outcomes(seed: int, ids: list[str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    platform = domain_platform(ScriptedTransport(), seed=seed)
    try:
        plan = platform.catalog.plans["e5f2b7c9"]
        for instance_id in ids:
            platform.runs.create(
                instance_id,
                plan,
                ALL_PRINCIPAL.user_id,
                ALL_PRINCIPAL.client_id,
                None,
                {"md1606743910901": {}},
                platform.clock.now(),
            )
        platform.advance(5)
        return {i: (r.status, tuple(n.state for n in r.nodes)) for i, r in platform.runs.runs.items()}
    finally:
        platform.close()


def test_e5f2b7c9_replays_the_same_outcome_for_the_same_seed_and_instance_id() -> None:
    ids = [f"in{1700000000000 + i}" for i in range(40)]
    first, again = _random_outcomes(11, ids), _random_outcomes(11, list(reversed(ids)))
    assert first == again  # order of creation does not matter, only seed and id


def test_e5f2b7c9_produces_both_outcomes_over_many_runs() -> None:
    ids = [f"in{1700000000000 + i}" for i in range(80)]
    outcomes = _random_outcomes(3, ids)
    final = [status for status, _ in outcomes.values()]
    assert final.count(SUCCESS) > 0 and final.count(FAIL) > 0
    # Two nodes at p=0.7 each: about half succeed; 80 draws land well within these bounds.
    assert 0.2 < final.count(SUCCESS) / len(final) < 0.8
    for status, nodes in outcomes.values():
        assert nodes in {("success", "success"), ("fail", "waiting"), ("success", "fail")}
        assert (status == SUCCESS) == (nodes == ("success", "success"))


def test_a_different_seed_changes_some_outcomes() -> None:
    ids = [f"in{1700000000000 + i}" for i in range(40)]
    assert _random_outcomes(1, ids) != _random_outcomes(2, ids)


def test_same_seed_apps_replay_e5f2b7c9_over_http(pinned: PinnedApps) -> None:
    results = []
    for _ in range(2):
        app = pinned(seed=5)
        api = Api(app.test_client(), app.extensions["dpa_platform"])
        headers = api.login()
        ids = [api.start(headers, "e5f2b7c9") for _ in range(12)]
        api.advance(5)
        results.append([(i, api.run(i)["status"]) for i in ids])
    assert results[0] == results[1]


# -- listPlans follows the latest instance -------------------------------------------------------------
def _plan_status(api: Api, headers: dict[str, str], plan_id: str) -> str:
    plans = api.client.get(LIST_PLANS, headers=headers).get_json()["data"]
    return next(p["status"] for p in plans if p["processPlanId"] == plan_id)


def test_list_plans_status_is_the_latest_instance_status(api: Api, auth: dict[str, str]) -> None:
    assert _plan_status(api, auth, "acf42dd3") == "DEFAULT"  # the fixture's, before any run
    api.start(auth)
    api.advance(0.3)
    assert _plan_status(api, auth, "acf42dd3") == "RUNNING"
    api.advance(5)
    assert _plan_status(api, auth, "acf42dd3") == "SUCCESS"
    api.start(auth, "c3d9f4e5")
    api.advance(5)
    assert _plan_status(api, auth, "c3d9f4e5") == "FAIL"
    assert _plan_status(api, auth, "acf42dd3") == "SUCCESS"  # another plan's run changes nothing here
    api.start(auth)  # a newer instance: the plan shows its status, not the older SUCCESS
    assert _plan_status(api, auth, "acf42dd3") == "DEFAULT"
    api.start(auth, "d4a8e6f1")
    api.advance(1)
    assert _plan_status(api, auth, "d4a8e6f1") == "PENDING"


# -- inputs reach node results ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "map_param",
    [{"DPA_MODEL_WORKDIR": "/data/run-7"}, [{"name": "DPA_MODEL_WORKDIR", "value": "/data/run-7"}]],
    ids=["object", "name-value-list"],
)
def test_model_var_req_values_expand_in_out_params(api: Api, auth: dict[str, str], map_param: object) -> None:
    instance = api.start(auth, modelVarReq=[{"modelId": "md1606743910508", "mapParam": map_param}])
    assert api.run(instance)["inputs"]["md1606743910508"]["DPA_MODEL_WORKDIR"] == "/data/run-7"
    api.advance(5)
    results = [p["result"] for p in api.out_params(auth, "acf42dd3", instance).get_json()["data"][0]["mapParam"]]
    assert results == ["mkdir -p /data/run-7 && echo ok", '{"status":"UP","workdir":"/data/run-7"}']


def test_default_input_is_used_without_model_var_req(api: Api, auth: dict[str, str]) -> None:
    instance = api.start(auth)
    api.advance(5)
    results = [p["result"] for p in api.out_params(auth, "acf42dd3", instance).get_json()["data"][0]["mapParam"]]
    assert results[0] == "mkdir -p /opt/dpa/work && echo ok"


def test_null_model_id_and_map_param_mean_absent(api: Api, auth: dict[str, str]) -> None:
    # D23: null for an optional field means absent; modelId and mapParam are optional (否) in interface 5.
    everywhere = api.start(auth, modelVarReq=[{"modelId": None, "mapParam": {"DPA_MODEL_WORKDIR": "/x"}}])
    assert api.run(everywhere)["inputs"]["md1606743910508"]["DPA_MODEL_WORKDIR"] == "/x"  # as without modelId
    nothing = api.start(auth, modelVarReq=[{"modelId": "md1606743910508", "mapParam": None}])
    assert api.run(nothing)["inputs"]["md1606743910508"]["DPA_MODEL_WORKDIR"] == "/opt/dpa/work"  # the default
    both = api.start(auth, modelVarReq=[{"modelId": None, "mapParam": None}])
    assert api.run(both)["inputs"] == api.run(nothing)["inputs"]


@pytest.mark.parametrize(
    "item,named",
    [
        ({"modelId": 5}, "modelVarReq[0].modelId: 5 is not of type 'string'"),
        ({"mapParam": "x"}, "modelVarReq[0].mapParam: 'x' is not valid"),
        (7, "modelVarReq[0]"),
    ],
)
def test_model_var_req_values_other_than_null_are_still_checked(
    api: Api, auth: dict[str, str], item: object, named: str
) -> None:
    reply = api.execute(auth, modelVarReq=[item]).get_json()
    assert reply["code"] == 400 and reply["message"].startswith(named) and "required" not in reply["message"], reply
    assert api.client.get("/__admin/runs").get_json()["data"] == []


def test_unknown_model_id_and_missing_required_input_are_400(api: Api, auth: dict[str, str]) -> None:
    bad_model = api.execute(auth, modelVarReq=[{"modelId": "md0", "mapParam": {}}]).get_json()
    assert bad_model["code"] == 400 and "modelId" in bad_model["message"]
    missing = api.execute(auth, "b7e1c0a2").get_json()
    assert missing["code"] == 400 and "TARGET_HOST" in missing["message"]
    assert api.client.get("/__admin/runs").get_json()["data"] == []
