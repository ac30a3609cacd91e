"""Interfaces 5 and 6: execute gives instance ids; statuses legal and monotone; outputs only of finished nodes."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.plugins.clock import CONTROLLED_LIMIT, KitClock, next_step
from contract_tests.plugins.safety import policy
from contract_tests.support.api import Api
from contract_tests.support.envelope import (
    STATUSES,
    TERMINAL,
    check_envelope,
    collapse,
    expect_rejected,
    expect_success,
    id_shape,
    legal_status_path,
)
from contract_tests.support.kit import KIT
from contract_tests.support.props import kit_settings

OUTPUT_NODE_TYPES = ("api", "shell")  # the document: 预案查询执行出参 (api,shell 节点)


def output_entries(
    api: Api, plan: str, instance: str, response: requests.Response | None = None
) -> list[tuple[str, str, str]]:
    """(processModelId, nodeName, result) of every output entry, asserting the documented shape."""
    response = response if response is not None else api.out_params(plan, instance)
    data = expect_success(response, f"queryPlanRunOutParam {instance}")
    assert isinstance(data, list), f"queryPlanRunOutParam {instance}: data is not a list"
    entries = []
    for i, model in enumerate(data):
        where = f"queryPlanRunOutParam {instance} data[{i}]"
        assert isinstance(model, dict), f"{where}: not an object"
        for name in ("modelName", "processModelId"):
            assert isinstance(model.get(name), str), f"{where}.{name}: {model.get(name)!r} is not a string"
        params = model.get("mapParam")
        assert isinstance(params, list), f"{where}.mapParam: {params!r} is not a list"
        for j, entry in enumerate(params):
            assert isinstance(entry, dict), f"{where}.mapParam[{j}]: not an object"
            assert isinstance(entry.get("nodeName"), str), (
                f"{where}.mapParam[{j}].nodeName: {entry.get('nodeName', '(missing)')!r} is not a string"
            )
            assert isinstance(entry.get("result"), str), (
                f"{where}.mapParam[{j}].result: {entry.get('result', '(missing)')!r} is not a string"
            )
            entries.append((model["processModelId"], entry["nodeName"], entry["result"]))
    return entries


def plan_status(api: Api, plan: str) -> Any:
    data = expect_success(api.list_plans(), "listPlans")
    return next((p.get("status") for p in data if isinstance(p, dict) and p.get("processPlanId") == plan), None)


@pytest.mark.interface(5)
def test_execute_returns_distinct_instances(kit_api: Api) -> None:
    plan = kit_api.first_writable_plan()
    first, second = kit_api.start(plan), kit_api.start(plan)
    assert first != second, f"executePlan {plan}: two executions got the same planInstanceId"
    for instance in (first, second):
        KIT.observe("execute.plan-instance-id-format", id_shape(instance))


@pytest.mark.interface(5)
def test_execute_response_names_the_plan(kit_api: Api) -> None:
    """Every plan the kit may execute (each --plan-id), while --max-runs allows: a target that names one fixed
    plan whichever was executed shows only with a second plan."""
    kit_api.first_writable_plan()  # skips when executions are not allowed at all
    checked = []
    for plan in kit_api.writable_plans():
        if policy().can_execute(plan):
            break  # --max-runs reached: the plans checked so far stand
        data = expect_success(
            kit_api.execute(plan, {"processPlanId": plan, "modelVarReq": kit_api.inputs_for(plan)}),
            f"executePlan {plan}",
        )
        assert isinstance(data, list) and data, f"executePlan {plan}: data is not a non-empty list"
        for item in data:
            assert isinstance(item, dict), f"executePlan {plan}: an item is not an object"
            assert item.get("processPlanId") == plan, (
                f"executePlan {plan}: the answer names plan {item.get('processPlanId')!r}"
            )
            assert isinstance(item.get("planInstanceId"), str) and item["planInstanceId"], (
                f"executePlan {plan}: planInstanceId {item.get('planInstanceId')!r} is not a non-empty string"
            )
        checked.append(plan)
    if not checked:
        pytest.skip("--max-runs leaves no execution for this check")


def _follow(api: Api, clock: KitClock, plan: str, instance: str, resume: bool = True) -> list[str]:
    """Step time until the run is terminal (hours of target time at most: D25 promises no duration); return
    every status the emulator's run view reported."""
    seen: list[str] = []
    resumed = False
    elapsed = 0.0
    while elapsed <= CONTROLLED_LIMIT:
        run = clock.run(instance)
        assert run is not None
        seen.append(run.get("status"))
        listed = plan_status(api, plan)
        assert listed in STATUSES, f"listPlans: plan {plan} has status {listed!r}, not one of {STATUSES}"
        if seen[-1] in TERMINAL:
            break
        if seen[-1] == "PENDING" and resume and not resumed:
            clock.resume(instance)  # the emulator's approval step; a real platform waits for a person
            resumed = True
            continue
        move = next_step(elapsed, 0.25)
        clock.advance(move)
        elapsed += move
    return seen


def _outputs_while_running(api: Api, plan: str, instance: str) -> list[tuple[str, str, str]] | None:
    """Outputs of a run not yet finished, or None when the target refuses them with code 999 (业务逻辑异常):
    interface 6 never says an unfinished run can be queried, so that refusal is observed, not judged."""
    response = api.out_params(plan, instance)
    body = check_envelope(response, f"queryPlanRunOutParam {instance} (run not finished)")
    KIT.observe("out-params.unfinished-run", str(body["code"]))
    if body["code"] == 999:
        return None
    return output_entries(api, plan, instance, response)


@pytest.mark.interface(5, 6)
def test_lifecycle_is_legal_and_reaches_a_terminal_status(kit_api: Api, kit_clock: KitClock) -> None:
    reason = policy().can_execute()
    if reason:
        pytest.skip(reason)
    if not kit_clock.controlled:
        pytest.skip("the run's own status is only visible through /__admin (or callbacks: see test_callbacks)")
    plans = kit_api.writable_plans()

    @kit_settings(max_examples=min(len(plans), 4) if len(plans) > 1 else 1)
    @given(plan=st.sampled_from(plans))
    def check(plan: str) -> None:
        instance = kit_api.start(plan)
        statuses = collapse(_follow(kit_api, kit_clock, plan, instance))
        problem = legal_status_path(statuses)
        assert problem is None, f"run {instance} of {plan}: {' -> '.join(map(str, statuses))}: {problem}"
        assert statuses[-1] in TERMINAL, f"run {instance} of {plan} did not finish: {' -> '.join(statuses)}"

    check()


@pytest.mark.interface(6)
def test_out_params_only_for_finished_nodes(kit_api: Api, kit_clock: KitClock) -> None:
    plan = kit_api.first_writable_plan()
    instance = kit_api.start(plan)
    if not kit_clock.controlled:
        # Real time: only the shape and that outputs never disappear can be judged.
        previous: set[tuple[str, str]] = set()
        for snapshot in kit_clock.poll(
            lambda: _outputs_while_running(kit_api, plan, instance),
            lambda e: False,
            step=1.0,
            limit=min(kit_clock.wait_seconds, 10),
        ):
            if snapshot is None:
                continue
            now = {(m, n) for m, n, _ in snapshot}
            assert previous <= now, f"run {instance}: outputs disappeared: {sorted(previous - now)}"
            previous = now
        return
    seen_any = False
    elapsed = 0.0
    while True:
        run = kit_clock.run(instance)
        assert run is not None
        finished = {
            (n["modelId"], n["nodeName"])
            for n in run.get("nodes", [])
            if n.get("state") in ("success", "fail") and n.get("nodeType") in OUTPUT_NODE_TYPES
        }
        terminal = run.get("status") in TERMINAL
        outputs = (
            output_entries(kit_api, plan, instance) if terminal else _outputs_while_running(kit_api, plan, instance)
        )
        if outputs is not None:
            listed = {(m, n) for m, n, _ in outputs}
            assert listed == finished, (
                f"run {instance} ({run.get('status')}): outputs for nodes {sorted(listed)} "
                f"but the finished api/shell nodes are {sorted(finished)}"
            )
            seen_any = seen_any or bool(outputs)
        if terminal or elapsed > CONTROLLED_LIMIT:
            break
        if run.get("status") == "PENDING":
            kit_clock.resume(instance)  # the emulator's approval step (then time moves on, as for any status)
        move = next_step(elapsed, 0.25)
        kit_clock.advance(move)
        elapsed += move
    assert run.get("status") in TERMINAL, (
        f"run {instance}: still {run.get('status')} after {CONTROLLED_LIMIT / 3600:.0f} h of target time"
    )
    assert seen_any or not any(n.get("nodeType") in OUTPUT_NODE_TYPES for n in run.get("nodes", [])), (
        f"run {instance}: finished without any output although it has api/shell nodes"
    )


@pytest.mark.interface(6)
def test_out_params_are_the_asked_runs(kit_api: Api) -> None:
    """Interface 6 answers for the planInstanceId asked: run A's outputs stay A's after run B of the same plan
    (other inputs) started and finished. A target answering the plan's latest run changes them."""
    plan = kit_api.first_writable_plan()
    first = kit_api.start(plan, tag="kit-a")
    kit_api.await_finished(plan, first)
    before = set(output_entries(kit_api, plan, first))
    if not before:
        pytest.skip(f"run {first} of {plan} has no output to compare")
    second = kit_api.start(plan, tag="kit-b")
    kit_api.await_finished(plan, second)
    after = set(output_entries(kit_api, plan, first))
    lost = sorted(before - after)
    assert not lost, (
        f"queryPlanRunOutParam {first}: after run {second} of the same plan, run {first}'s outputs {lost} are "
        f"gone (now {sorted(after - before)}): the answer is not the asked run's"
    )


@pytest.mark.interface(6)
def test_out_params_of_unknown_instance_rejected(kit_api: Api) -> None:
    plans = kit_api.plan_ids()
    if not plans:
        pytest.skip("the user sees no plan")

    @kit_settings(max_examples=5)
    @given(instance=st.from_regex(r"\Ain9[0-9]{12}\Z") | st.text("abcdefXYZ0123456789-", min_size=1, max_size=20))
    def check(instance: str) -> None:
        expect_rejected(
            kit_api.out_params(plans[0], instance),
            f"queryPlanRunOutParam of unknown instance {instance!r}",
            expected=404,
            topic="unknown-instance.code",
            lenient="unknown id accepted",
        )

    check()


@pytest.mark.interface(5)
def test_execute_unknown_plan_rejected(kit_api: Api) -> None:
    if policy().plan_ids is not None:
        pytest.skip("a live target only gets executions of the --plan-id plans")
    known = set(kit_api.plan_ids())

    @kit_settings(max_examples=4)
    @given(plan=st.text("abcdef0123456789", min_size=8, max_size=8).filter(lambda p: p not in known))
    def check(plan: str) -> None:
        expect_rejected(
            kit_api.execute(plan),
            f"executePlan of unknown plan {plan!r}",
            expected=404,
            topic="unknown-plan.code",
            lenient="unknown id accepted",
        )

    check()
