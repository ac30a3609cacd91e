"""Interfaces 2 and 3: the user's plans, and a plan's workflows with their input parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.routing import vendor_operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("plans", __name__)


@vendor_operation(bp, vendor_contract(), "listPlans")
def list_plans(
    platform: Platform, principal: Principal, _query: dict[str, Any], _body: Any, _path: dict[str, str]
) -> Any:
    return platform.list_plans(principal)


@vendor_operation(bp, vendor_contract(), "queryModelByPlanId")
def query_models(
    platform: Platform, principal: Principal, _query: dict[str, Any], body: dict[str, Any], _path: dict[str, str]
) -> Any:
    return platform.models(principal, body["processPlanId"])
