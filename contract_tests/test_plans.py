"""Interfaces 2 and 3: listPlans and queryModelByPlanId field names and types (strings, ints, epoch ms)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract_tests.support.api import Api
from contract_tests.support.envelope import STATUSES, expect_rejected, expect_success, is_epoch_ms, is_int
from contract_tests.support.kit import KIT
from contract_tests.support.props import kit_settings

PLAN_STRINGS = ("processPlanId", "title", "createUser", "updateUser")
PLAN_INTS = ("stepNums", "version")
PLAN_TIMES = ("createTime", "updateTime")
PLAN_FIELDS = (*PLAN_STRINGS, "status", *PLAN_INTS, *PLAN_TIMES)


def plan_problems(plan: Any) -> list[str]:
    if not isinstance(plan, dict):
        return [f"plan is a {type(plan).__name__}, not an object"]
    problems = [f"{f}: missing" for f in PLAN_FIELDS if f not in plan]
    problems += [
        f"{f}: {plan[f]!r} is not a string" for f in PLAN_STRINGS if f in plan and not isinstance(plan[f], str)
    ]
    problems += [f"{f}: {plan[f]!r} is not an int" for f in PLAN_INTS if f in plan and not is_int(plan[f])]
    problems += [
        f"{f}: {plan[f]!r} is not epoch milliseconds (an int between 2000 and 2100)"
        for f in PLAN_TIMES
        if f in plan and not is_epoch_ms(plan[f])
    ]
    if "status" in plan and plan["status"] not in STATUSES:
        problems.append(f"status: {plan['status']!r} is not one of {', '.join(STATUSES)}")
    extra = sorted(set(plan) - set(PLAN_FIELDS))
    if extra:
        KIT.observe("plans.extra-fields", ", ".join(extra))
    return problems


@pytest.mark.interface(2)
def test_list_plans_fields_and_types(kit_api: Api) -> None:
    data = expect_success(kit_api.list_plans(), "listPlans")
    assert isinstance(data, list), f"listPlans: data is {type(data).__name__}, not a list"
    for i, plan in enumerate(data):
        problems = plan_problems(plan)
        assert not problems, (
            f"listPlans data[{i}] ({plan.get('processPlanId') if isinstance(plan, dict) else '?'}): "
            + "; ".join(problems)
        )
    ids = [p["processPlanId"] for p in data]
    assert len(ids) == len(set(ids)), f"listPlans: a processPlanId is listed twice: {ids}"
    configured = KIT.config.plan_ids if KIT.config else None
    missing = sorted(set(configured or ()) - set(ids))
    assert not missing, f"--plan-id {missing} not among the plans this user sees ({ids})"
    if not data:
        KIT.observe("listPlans.empty", "the user sees no plan: interfaces 3-6 cannot be checked with real ids")


@pytest.mark.interface(3)
def test_models_fields_and_types(kit_api: Api) -> None:
    plans = kit_api.plan_ids()
    if not plans:
        pytest.skip("the user sees no plan")

    @kit_settings(max_examples=len(plans) + 2)
    @given(plan_id=st.sampled_from(plans))
    def check(plan_id: str) -> None:
        data = expect_success(kit_api.models(plan_id), f"queryModelByPlanId {plan_id}")
        assert isinstance(data, list), f"queryModelByPlanId {plan_id}: data is not a list"
        for i, model in enumerate(data):
            where = f"queryModelByPlanId {plan_id} data[{i}]"
            assert isinstance(model, dict), f"{where}: not an object"
            for name in ("modelName", "processModelId"):
                assert isinstance(model.get(name), str), f"{where}.{name}: {model.get(name)!r} is not a string"
            params = model.get("mapParam")
            assert isinstance(params, list), f"{where}.mapParam: {params!r} is not a list"
            for j, param in enumerate(params):
                assert isinstance(param, dict), f"{where}.mapParam[{j}]: not an object"
                for name in ("name", "type"):
                    assert isinstance(param.get(name), str), (
                        f"{where}.mapParam[{j}].{name}: {param.get(name)!r} is not a string"
                    )
        steps = next((p.get("stepNums") for p in kit_api.plans() if p.get("processPlanId") == plan_id), None)
        if is_int(steps):
            KIT.observe("plans.step-nums", "workflows" if steps == len(data) else "other")

    check()


@pytest.mark.interface(3)
def test_models_of_unknown_plan_rejected(kit_api: Api) -> None:
    known = set(kit_api.plan_ids())

    @kit_settings(max_examples=6)
    @given(
        plan_id=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=24).filter(
            lambda p: p not in known and p.strip()
        )
    )
    def check(plan_id: str) -> None:
        expect_rejected(
            kit_api.models(plan_id),
            f"queryModelByPlanId of unknown plan {plan_id!r}",
            expected=404,
            topic="unknown-plan.code",
            lenient="unknown id accepted",
        )

    check()


@pytest.mark.interface(3)
def test_plans_to_execute_list_their_workflows(kit_api: Api) -> None:
    """Interfaces 4 and 5 take `modelVarReq.modelId` from interface 3's workflows: a plan the kit may execute
    (--plan-id; in-process: every plan) whose listPlans entry counts steps (stepNums >= 1) must list at least
    one workflow. How stepNums relates to the number of workflows is only observed (plans.step-nums)."""
    steps = {p.get("processPlanId"): p.get("stepNums") for p in kit_api.plans()}
    checked = [plan for plan in kit_api.writable_plans() if is_int(steps.get(plan)) and steps[plan] >= 1]
    if not checked:
        pytest.skip("no plan to execute with stepNums >= 1")
    for plan in checked:
        data = expect_success(kit_api.models(plan), f"queryModelByPlanId {plan}")
        assert isinstance(data, list) and data, (
            f"queryModelByPlanId {plan}: no workflow (data {data!r}) although listPlans says stepNums "
            f"{steps[plan]}: interfaces 4 and 5 need a workflow's processModelId"
        )
