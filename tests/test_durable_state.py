"""`serve --state FILE`: kill -9 of the whole server tree mid-work, a restart on the file, nothing accepted lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver
from tests.plugins.durable import Tree, admin, wait_until
from tests.plugins.emulator import AUTHORIZE, LIST_PLANS, POC, SCENE, TOKEN
from tests.plugins.engine import http_execute, http_login, statuses

pytestmark = pytest.mark.http

ACF_NODE_MS = [500, 500, 300]  # fixtures/plans.yaml: acf42dd3's node durations
START_DELAY_MS = 200  # Settings.run_start_delay


def launch(
    trees: list[Tree], tmp_path: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None
) -> Tree:
    tree = Tree(*args, port=port, env=env, log=tmp_path / f"server{len(trees)}.log")
    trees.append(tree)
    return tree.start()


def authorize_code(tree: Tree) -> str:
    body = requests.get(
        tree.base_url + AUTHORIZE,
        timeout=10,
        params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
    ).json()
    assert body["code"] == 200, body
    return str(body["data"]["code"])


def redeem(tree: Tree, code: str) -> dict[str, Any]:
    return requests.post(
        tree.base_url + TOKEN, timeout=10, json={"code": code, "grant_type": "authorization_code", **POC}
    ).json()


def save_scene(tree: Tree, headers: dict[str, str], callback_url: str, **fields: str) -> dict[str, Any]:
    form = {
        "processPlanId": "acf42dd3",
        "callbackUrl": callback_url,
        "sceneName": "崩溃后继续",
        "executeStrategy": "cycle",
        "dimension": "seconds",
        "intervals": "2",
        **fields,
    }
    body = requests.post(tree.base_url + SCENE, headers=headers, data=form, timeout=10).json()
    assert body["code"] == 200, body
    return dict(body["data"])


def runs_by_id(tree: Tree) -> dict[str, dict[str, Any]]:
    return {r["planInstanceId"]: r for r in admin(tree, "GET", "/__admin/runs")}


def scene_of(tree: Tree, scene_id: str) -> dict[str, Any]:
    return {s["instanceId"]: s for s in admin(tree, "GET", "/__admin/scenes")}[scene_id]


def by_id(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item[key])


def test_kill_9_mid_runs_scenes_and_retries_then_restart_loses_nothing(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    state = tmp_path / "state.db"
    # Retries every 0.25 s for ~12 s, so at the crash every DEFAULT callback is still being retried.
    settings = ("--state", str(state), "--set", "callback_retries=50", "--set", "callback_backoff=0.25")
    first = launch(trees, tmp_path, *settings)
    receiver.fail()  # every attempt before the crash answers 500
    headers = http_login(first.base_url)
    login_code_probe = authorize_code(first)
    assert redeem(first, login_code_probe)["code"] == 200  # a code used before the crash
    unused = authorize_code(first)
    executed_at = time.time()
    acf = [http_execute(first.base_url, headers, callbackUrl=receiver.url) for _ in range(3)]
    pending = http_execute(first.base_url, headers, "d4a8e6f1", callbackUrl=receiver.url)
    scene = save_scene(first, headers, receiver.url)
    scene_created = scene_of(first, scene["instanceId"])["createTime"] / 1000

    time.sleep(max(0.0, executed_at + 0.35 - time.time()))
    # The premise: runs mid-node, DEFAULT callbacks being retried, the scene not fired yet.
    before = runs_by_id(first)
    assert {before[i]["status"] for i in acf + [pending]} == {"RUNNING"}, {i: before[i]["status"] for i in before}
    ledger = admin(first, "GET", "/__admin/callbacks")
    for instance in acf + [pending]:
        default = [d for d in ledger if d["planInstanceId"] == instance and d["status"] == "DEFAULT"]
        assert len(default) == 1 and default[0]["state"] == "retrying", (instance, default)
    assert scene_of(first, scene["instanceId"])["firedCount"] == 0
    time.sleep(max(0.0, executed_at + 0.5 - time.time()))
    first.kill9()

    time.sleep(0.1)  # a request the dead server sent last has been recorded by now
    receiver.clear()
    receiver.ack()
    # Down long enough that the runs' nodes and two scene firings (at +2 s and +4 s) fall in the downtime.
    time.sleep(max(0.0, scene_created + 4.1 - time.time()))
    second = launch(trees, tmp_path, *settings)  # another port, the same state file
    assert second.ready_at < scene_created + 5.8, "restart took too long for the schedule this test expects"

    # Every accepted run continues: the nodes due during the downtime finish right after the restart.
    done = wait_until(
        lambda: (
            (runs := runs_by_id(second))
            and all(runs.get(i, {}).get("status") == "SUCCESS" for i in acf)
            and time.time()
        ),
        timeout=5,
    )
    assert done, {i: r["status"] for i, r in runs_by_id(second).items()}
    assert done - second.ready_at < 1.0, "finishing took a node's duration again after the restart"
    after = runs_by_id(second)
    assert set(before) <= set(after), "runs accepted before the crash are missing"
    for instance in acf:
        run = after[instance]
        assert [h["status"] for h in run["history"]] == ["DEFAULT", "RUNNING", "SUCCESS"], run["history"]
        nodes = run["nodes"]
        assert [n["state"] for n in nodes] == ["success"] * 3, nodes
        # Durations count from each node's original start on the emulator clock, not from the restart.
        assert nodes[0]["startedAt"] == run["createTime"] + START_DELAY_MS, nodes[0]
        assert [n["finishedAt"] - n["startedAt"] for n in nodes] == ACF_NODE_MS, nodes
        assert [n["startedAt"] for n in nodes[1:]] == [n["finishedAt"] for n in nodes[:-1]], nodes

    # The PENDING run is still PENDING (its approval node came up during the downtime) and can be resumed.
    assert wait_until(lambda: admin(second, "GET", f"/__admin/runs/{pending}")["status"] == "PENDING", timeout=3)
    # The old token is still valid, and the plan list shows the restored run's status.
    plans = requests.get(second.base_url + LIST_PLANS, headers=headers, timeout=10).json()
    assert plans["code"] == 200, plans
    assert {p["processPlanId"]: p["status"] for p in plans["data"]}["d4a8e6f1"] == "PENDING"
    assert admin(second, "POST", f"/__admin/runs/{pending}/resume")["status"] == "RUNNING"
    assert wait_until(lambda: admin(second, "GET", f"/__admin/runs/{pending}")["status"] == "SUCCESS", timeout=4)

    # Codes: the unused one redeems once, and only once; the one used before the crash stays used.
    assert redeem(second, unused)["code"] == 200
    again = redeem(second, unused)
    assert again["code"] == 403 and "already been used" in again["message"], again
    probe = redeem(second, login_code_probe)
    assert probe["code"] == 403 and "already been used" in probe["message"], probe

    # Every callback not acknowledged before the crash arrives, in order per instance. Nothing was acked
    # before the crash (the receiver answered 500) and the receiver acks everything since: exactly once each.
    expected = {i: ["DEFAULT", "RUNNING", "SUCCESS"] for i in acf}
    expected[pending] = ["DEFAULT", "RUNNING", "PENDING", "RUNNING", "SUCCESS"]

    def arrived(deliveries: list[Any]) -> bool:
        got = [d.json["planInstanceId"] for d in deliveries]
        return all(got.count(i) >= len(s) for i, s in expected.items())

    assert receiver.wait_for(arrived, timeout=5), {i: statuses(receiver.for_instance(i)) for i in expected}

    # Scenes keep firing: the two firings missed in the downtime come as one run, then on schedule every 2 s.
    slot = scene_created + 2 * (int((second.ready_at - scene_created) // 2) + 1)  # first slot after restart
    fired = wait_until(lambda: (s := scene_of(second, scene["instanceId"]))["firedCount"] >= 3 and s, timeout=8)
    assert fired, scene_of(second, scene["instanceId"])
    scene_runs = by_id(
        [r for r in admin(second, "GET", "/__admin/runs") if r["sceneId"] == scene["instanceId"]], "createTime"
    )
    catch_up = [r for r in scene_runs if r["createTime"] < round(slot * 1000) - 1]
    on_time = [r for r in scene_runs if r["createTime"] >= round(slot * 1000) - 1]
    assert len(catch_up) == 1, ("missed firings must be coalesced into one", [r["createTime"] for r in catch_up])
    assert [r["createTime"] - fired["createTime"] for r in on_time[:2]] == [
        pytest.approx(round((slot - scene_created) * 1000), abs=1),
        pytest.approx(round((slot + 2 - scene_created) * 1000), abs=1),
    ], [r["createTime"] for r in on_time]
    assert fired["firedCount"] == len(scene_runs) or fired["firedCount"] == len(scene_runs) - 1  # read apart
    assert (fired["nextFireTime"] - fired["createTime"]) % 2000 in (0, 1, 1999), fired
    pre_crash_ids = set(acf) | {pending}
    assert all(r["planInstanceId"] not in pre_crash_ids for r in scene_runs)
    assert min(r["planInstanceId"] for r in scene_runs) > max(pre_crash_ids), "ids must keep increasing"

    # No status after SUCCESS, no duplicate: compare once more now that more time has passed.
    for instance, expected_statuses in expected.items():
        assert statuses(receiver.for_instance(instance)) == expected_statuses, instance
    ledger = admin(second, "GET", "/__admin/callbacks")
    for instance in expected:
        assert {d["state"] for d in ledger if d["planInstanceId"] == instance} == {"acked"}, instance


def test_acknowledged_callbacks_are_never_sent_again(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    state = tmp_path / "state.db"
    first = launch(trees, tmp_path, "--state", str(state))
    instance = http_execute(first.base_url, http_login(first.base_url), callbackUrl=receiver.url)
    acked = wait_until(
        lambda: (
            (d := admin(first, "GET", "/__admin/callbacks", params={"planInstanceId": instance}))
            and len(d) == 3
            and all(x["state"] == "acked" for x in d)
            and d
        ),
        timeout=8,
    )
    assert acked, admin(first, "GET", "/__admin/callbacks")
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"]
    first.kill9()

    second = launch(trees, tmp_path, "--state", str(state), port=first.port)  # the same port
    time.sleep(2)
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"], "an acknowledged callback came again"
    assert admin(second, "GET", "/__admin/callbacks", params={"planInstanceId": instance}) == acked
    assert admin(second, "GET", f"/__admin/runs/{instance}")["status"] == "SUCCESS"


def test_virtual_clock_state_survives_kill_9(trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver) -> None:
    state = tmp_path / "state.db"
    settings = ("--clock", "virtual", "--state", str(state))
    first = launch(trees, tmp_path, *settings)
    headers = http_login(first.base_url)
    scene = save_scene(first, headers, receiver.url, executeStrategy="single", intervals="60")
    admin(first, "POST", "/__admin/clock/advance", json={"seconds": 100})
    fired = scene_of(first, scene["instanceId"])
    assert fired["firedCount"] == 1 and fired["active"] is False and fired["nextFireTime"] is None, fired
    waiting = http_execute(first.base_url, headers)  # stays DEFAULT: virtual time does not move by itself
    clock = admin(first, "GET", "/__admin/clock")
    runs = by_id(admin(first, "GET", "/__admin/runs"), "planInstanceId")
    assert sorted(r["status"] for r in runs) == ["DEFAULT", "SUCCESS"], runs
    scenes = admin(first, "GET", "/__admin/scenes")
    ledger = admin(first, "GET", "/__admin/callbacks")
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"]
    first.kill9()

    second = launch(trees, tmp_path, *settings)
    restored = admin(second, "GET", "/__admin/clock")
    assert restored["mode"] == "virtual"
    assert restored["now"] >= clock["now"] and restored["nowMs"] >= clock["nowMs"], (clock, restored)
    assert by_id(admin(second, "GET", "/__admin/runs"), "planInstanceId") == runs
    assert admin(second, "GET", "/__admin/scenes") == scenes
    assert admin(second, "GET", "/__admin/callbacks") == ledger

    # The restored run continues when time moves; the single scene does not fire again.
    admin(second, "POST", "/__admin/clock/advance", json={"seconds": 100})
    assert admin(second, "GET", f"/__admin/runs/{waiting}")["status"] == "SUCCESS"
    assert scene_of(second, scene["instanceId"])["firedCount"] == 1
    assert len(admin(second, "GET", "/__admin/runs")) == 2
    fresh = http_execute(second.base_url, headers)
    assert fresh > max(r["planInstanceId"] for r in runs), "ids must keep increasing across the restart"
    time.sleep(0.3)
    assert statuses(receiver.deliveries) == ["DEFAULT", "RUNNING", "SUCCESS"], "an acked callback came again"


def test_without_state_a_restart_starts_empty(trees: list[Tree], tmp_path: Path) -> None:
    first = launch(trees, tmp_path, "--clock", "virtual")
    headers = http_login(first.base_url)
    unused = authorize_code(first)
    http_execute(first.base_url, headers)
    save_scene(first, headers, "http://127.0.0.1:9/cb")
    assert len(admin(first, "GET", "/__admin/runs")) == 1 and len(admin(first, "GET", "/__admin/scenes")) == 1
    first.kill9()

    second = launch(trees, tmp_path, "--clock", "virtual", port=first.port)
    assert admin(second, "GET", "/__admin/runs") == []
    assert admin(second, "GET", "/__admin/scenes") == []
    assert admin(second, "GET", "/__admin/callbacks") == []
    gone = redeem(second, unused)
    assert gone["code"] == 403 and "unknown" in gone["message"], gone
    assert not list(tmp_path.glob("*.db*")), "no state file without --state"


def test_reset_clears_the_state_file(trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver) -> None:
    state = tmp_path / "state.db"
    settings = ("--clock", "virtual", "--state", str(state))
    first = launch(trees, tmp_path, *settings)
    headers = http_login(first.base_url)
    unused = authorize_code(first)
    http_execute(first.base_url, headers, callbackUrl=receiver.url)
    save_scene(first, headers, receiver.url, dimension="minutes", intervals="5")
    admin(first, "POST", "/__admin/clock/advance", json={"seconds": 5})
    assert admin(first, "GET", "/__admin/callbacks")
    admin(first, "POST", "/__admin/reset")
    after_reset = authorize_code(first)  # what happens after the reset is kept
    first.kill9()

    second = launch(trees, tmp_path, *settings)
    assert admin(second, "GET", "/__admin/runs") == []
    assert admin(second, "GET", "/__admin/scenes") == []
    assert admin(second, "GET", "/__admin/callbacks") == []
    gone = redeem(second, unused)
    assert gone["code"] == 403 and "unknown" in gone["message"], gone
    assert redeem(second, after_reset)["code"] == 200


def test_state_file_from_the_environment(trees: list[Tree], tmp_path: Path) -> None:
    state = tmp_path / "env-state.db"
    env = {"DPA_MOCK_STATE": str(state)}
    first = launch(trees, tmp_path, "--clock", "virtual", env=env)
    instance = http_execute(first.base_url, http_login(first.base_url))
    first.kill9()
    assert state.exists()

    second = launch(trees, tmp_path, "--clock", "virtual", env=env)
    assert [r["planInstanceId"] for r in admin(second, "GET", "/__admin/runs")] == [instance]


def test_real_clock_offset_survives_kill_9(trees: list[Tree], tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = launch(trees, tmp_path, "--state", str(state))
    assert admin(first, "POST", "/__admin/clock/advance", json={"seconds": 3600})["offset"] == pytest.approx(3600)
    first.kill9()

    second = launch(trees, tmp_path, "--state", str(state))
    clock = admin(second, "GET", "/__admin/clock")
    assert clock["mode"] == "real" and clock["offset"] == pytest.approx(3600, abs=0.01), clock
    assert clock["now"] - time.time() == pytest.approx(3600, abs=2), clock
