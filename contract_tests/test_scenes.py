"""Interface 4: saveTimingParam value rules, the saved scene's fields and (when allowed) a single scene firing."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.plugins.clock import KitClock
from contract_tests.plugins.receiver import Callbacks
from contract_tests.plugins.safety import policy
from contract_tests.support.api import Api
from contract_tests.support.envelope import STATUSES, TERMINAL, collapse, expect_rejected, expect_success, id_shape
from contract_tests.support.kit import KIT
from contract_tests.support.props import kit_settings

pytestmark = pytest.mark.interface(4)
DIMENSIONS = ("seconds", "minutes", "hours", "day", "weeks", "month")
BAD_INTERVALS = st.one_of(
    st.sampled_from(["0", "-1", "1.5", "abc", "", " ", "00", "1e3", "+"]), st.integers(-(10**6), 0).map(str)
)


def test_bad_values_rejected(kit_api: Api) -> None:
    plan = kit_api.first_scene_plan()
    bad = st.one_of(
        st.text(min_size=1, max_size=10).filter(lambda d: d not in DIMENSIONS).map(lambda d: {"dimension": d}),
        BAD_INTERVALS.map(lambda i: {"intervals": i}),
        st.sampled_from(["[{", "{not json", "[1,"]).map(lambda m: {"modelVarReq": m}),
        st.sampled_from(["", " "]).map(lambda s: {"sceneName": s}),
        st.sampled_from(["", " "]).map(lambda s: {"callbackUrl": s}),
    )
    if policy().scene_strategies is None:  # a live target only ever gets single scenes
        bad = bad | st.text(min_size=1, max_size=10).filter(lambda s: s not in ("single", "cycle")).map(
            lambda s: {"executeStrategy": s}
        )

    @kit_settings(max_examples=10)
    @given(change=bad)
    def check(change: dict[str, str]) -> None:
        form = kit_api.scene_form(plan, **change)
        expect_rejected(kit_api.save_scene(form), f"saveTimingParam with {change}", lenient="schema-violating value")

    check()


def test_saved_scene_fields(kit_api: Api) -> None:
    plan = kit_api.first_scene_plan()
    data = expect_success(kit_api.save_scene(kit_api.scene_form(plan)), "saveTimingParam")
    assert isinstance(data, dict), f"saveTimingParam: data is {type(data).__name__}, not an object"
    for name in ("instanceId", "modelId", "status"):
        assert isinstance(data.get(name), str), f"saveTimingParam: data.{name} is {data.get(name)!r}, not a string"
    assert data["status"] in STATUSES, f"saveTimingParam: status {data['status']!r} is not one of {STATUSES}"
    models = expect_success(kit_api.models(plan), f"queryModelByPlanId {plan}")
    ids = [m.get("processModelId") for m in models if isinstance(m, dict)]
    KIT.observe("scene.model-id", "first workflow" if ids and data["modelId"] == ids[0] else "other")
    KIT.observe("scene.status", data["status"])
    KIT.observe("scene.instance-id-format", id_shape(data["instanceId"]))


def _new_instances(callbacks: Callbacks, known: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for d in callbacks.receiver.deliveries:
        body = d.json if isinstance(d.json, dict) else {}
        instance = body.get("planInstanceId")
        if isinstance(instance, str) and instance not in known:
            found.setdefault(instance, []).append(str(body.get("status")))
    return found


def test_single_scene_fires_once(kit_api: Api, kit_callbacks: Callbacks, kit_clock: KitClock) -> None:
    """A single scene fires exactly once. When (at saving, or `intervals × dimension` later) is an observation:
    接口 4 calls dimension/intervals 周期维度/周期间隔 (the period) and never says when a single scene runs."""
    plan = kit_api.first_scene_plan()
    kit_clock.require("a scene firing", real_seconds=5)
    form = kit_api.scene_form(plan, callbackUrl=kit_callbacks.url, dimension="seconds", intervals="2")
    saved_at = time.time()
    expect_success(kit_api.save_scene(form), "saveTimingParam (single, after 2 seconds)")
    early = False
    if kit_clock.controlled:
        kit_clock.advance(1)
        kit_callbacks.wait_quiet()
        early = bool(_new_instances(kit_callbacks, set()))
    fired = kit_clock.poll(
        lambda: _new_instances(kit_callbacks, set()),
        lambda f: any(TERMINAL & set(s) for s in f.values()),
        step=1.0,
        pending=lambda f: f"the scene's run(s) {sorted(f)} not finished" if f else None,
    )[-1]
    assert fired, f"the single scene did not fire ({kit_callbacks.no_callback()})"
    assert len(fired) == 1, f"the single scene started {len(fired)} runs at once: {sorted(fired)}"
    if not kit_clock.controlled:
        # In real time: a first callback within a second of saving means the run started at once.
        first = min((d.at for d in kit_callbacks.receiver.deliveries if isinstance(d.json, dict)), default=None)
        early = first is not None and first - saved_at < 1.0
    KIT.observe("scene.single-fires", "at save" if early else "after the interval")
    ((instance, statuses),) = fired.items()
    assert set(collapse(statuses)) & TERMINAL, f"the scene's run {instance} did not finish: {statuses}"
    if kit_clock.controlled:
        kit_clock.advance(30)
        kit_callbacks.wait_quiet()
        again = _new_instances(kit_callbacks, {instance})
        assert not again, f"the single scene fired again: {sorted(again)}"


def test_cycle_scene_fires_every_period(kit_api: Api, kit_callbacks: Callbacks, kit_clock: KitClock) -> None:
    if policy().scene_strategies is not None:
        pytest.skip("cycle scenes are never created on a live target (they cannot be deleted through the API)")
    if not kit_clock.controlled:
        pytest.skip("needs time control")
    plan = kit_api.first_scene_plan()
    form = kit_api.scene_form(
        plan, callbackUrl=kit_callbacks.url, dimension="seconds", intervals="3", executeStrategy="cycle"
    )
    scene = expect_success(kit_api.save_scene(form), "saveTimingParam (cycle, every 3 seconds)")
    try:
        kit_clock.advance(10)
        kit_callbacks.wait_quiet()
        fired = _new_instances(kit_callbacks, set())
        assert len(fired) == 3, f"a 3-second cycle fired {len(fired)} times in 10 seconds (expected 3)"
    finally:
        # The emulator's own API stops the cycle, so later tests do not see its runs.
        kit_clock.target.admin_call("DELETE", f"/__admin/scenes/{scene['instanceId']}")
