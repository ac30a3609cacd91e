"""Interfaces 5 and 6: manual execution and a run's output parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.envelope import ok
from mock_server.http.routing import current_platform, operation, read_operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("runs", __name__)


def _plan_id_from_path(path: dict[str, str]) -> dict[str, Any]:
    """Setting execute_body_plan_id: `path-only` lets the body leave out the plan id the path already names."""
    if current_app.config["DPA_SETTINGS"].execute_body_plan_id == "path-only":
        return {"processPlanId": path.get("processPlanId", "")}
    return {}


@operation(bp, vendor_contract(), "executePlan", body_defaults=_plan_id_from_path)
def execute(principal: Principal, body: dict[str, Any], processPlanId: str, **_: Any) -> Response:
    return ok(current_platform().execute(principal, processPlanId, body))


@read_operation(bp, vendor_contract(), "queryPlanRunOutParam")
def out_params(platform: Platform, principal: Principal, query: dict[str, Any]) -> Any:
    return platform.out_params(principal, query["processPlanId"], query["planInstanceId"])
