"""Interfaces 2 and 3: the user's plans, and a plan's workflows with their input parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.envelope import ok
from mock_server.http.routing import current_platform, operation, read_operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("plans", __name__)


@read_operation(bp, vendor_contract(), "listPlans")
def list_plans(platform: Platform, principal: Principal, query: dict[str, Any]) -> Any:
    return platform.list_plans(principal)


@operation(bp, vendor_contract(), "queryModelByPlanId")
def query_models(principal: Principal, body: dict[str, Any], **_: Any) -> Response:
    return ok(current_platform().models(principal, body["processPlanId"]))
