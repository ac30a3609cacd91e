"""Interfaces 5 and 6: manual execution and a run's output parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.routing import vendor_operation
from mock_server.http.spec import vendor_contract
from mock_server.settings import Settings

bp = Blueprint("runs", __name__)


def _plan_id_from_path(settings: Settings, path: dict[str, str]) -> dict[str, Any]:
    """Setting execute_body_plan_id: `path-only` lets the body leave out the plan id the path already names."""
    if settings.execute_body_plan_id == "path-only":
        return {"processPlanId": path.get("processPlanId", "")}
    return {}


@vendor_operation(bp, vendor_contract(), "executePlan", body_defaults=_plan_id_from_path)
def execute(
    platform: Platform, principal: Principal, _query: dict[str, Any], body: dict[str, Any], path: dict[str, str]
) -> Any:
    return platform.execute(principal, path["processPlanId"], body)


@vendor_operation(bp, vendor_contract(), "queryPlanRunOutParam")
def out_params(
    platform: Platform, principal: Principal, query: dict[str, Any], _body: Any, _path: dict[str, str]
) -> Any:
    return platform.out_params(principal, query["processPlanId"], query["planInstanceId"])
