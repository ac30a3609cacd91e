"""The document's `//` paths are served as written; whether the single-slash form works is only observed."""

from __future__ import annotations

import re

import pytest
import requests

from contract_tests.support.api import OPS, Api
from contract_tests.support.envelope import check_envelope, expect_success
from contract_tests.support.kit import KIT


def _served(response: requests.Response, what: str) -> None:
    """Not a 404 (HTTP or code): the route exists. The body must still be an envelope."""
    KIT.blame(response)
    assert response.status_code != 404, f"{what}: HTTP 404 — the path as the document writes it is not served"
    body = check_envelope(response, what)
    assert body["code"] != 404, f"{what}: code 404 ({body['message']!r}) — the document's path is not served"


def _single(path: str) -> str:
    return re.sub(r"/{2,}", "/", path)


@pytest.mark.interface(6)
def test_out_params_double_slash_path_served(kit_api: Api) -> None:
    path = OPS["queryPlanRunOutParam"].path
    assert "//" in path
    plans = kit_api.plan_ids()
    if not plans:
        pytest.skip("the user sees no plan")
    # A missing planInstanceId is a validation error on a served route, a 404 on an unserved one.
    response = kit_api.send("GET", path, params={"processPlanId": plans[0]})
    assert "//processPlan" in (response.request.url or ""), "the kit itself collapsed the `//` (requests changed)"
    _served(response, f"GET {path} (planInstanceId missing)")


@pytest.mark.interface(5, 6)
def test_execute_and_out_params_double_slash_paths_work(kit_api: Api) -> None:
    plan = kit_api.first_writable_plan()
    path = OPS["executePlan"].url_path(plan)
    assert "//" in path
    response = kit_api.execute(plan, {"processPlanId": plan, "modelVarReq": kit_api.inputs_for(plan)})
    _served(response, f"POST {path}")
    data = expect_success(response, f"POST {path}")
    instance = data[0]["planInstanceId"]
    _served(kit_api.out_params(plan, instance), f"GET {OPS['queryPlanRunOutParam'].path}")
    # A target may refuse out-params until the run finished (code 999, observed): judge a finished run's.
    kit_api.await_finished(plan, instance)
    expect_success(kit_api.out_params(plan, instance), "queryPlanRunOutParam of a finished run")


@pytest.mark.interface(5, 6)
def test_single_slash_alias_is_observed(kit_api: Api) -> None:
    """The document writes `//`; a target may or may not also answer the single-slash form (not judged)."""
    plans = kit_api.plan_ids()
    if not plans:
        pytest.skip("the user sees no plan")
    path = _single(OPS["queryPlanRunOutParam"].path)
    response = kit_api.send("GET", path, params={"processPlanId": plans[0]})
    code = check_envelope(response, f"GET {path}")["code"]  # served or not, the answer is an envelope
    served = response.status_code != 404 and code != 404
    KIT.observe("paths.single-slash", "served" if served else "not served")
