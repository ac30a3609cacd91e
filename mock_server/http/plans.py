"""Interfaces 2 and 3: the user's plans, and a plan's workflows with their input parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mock_server.domain.oauth import Principal
from mock_server.http.envelope import ok
from mock_server.http.routing import operation, platform
from mock_server.http.spec import vendor_contract

bp = Blueprint("plans", __name__)


@operation(bp, vendor_contract(), "listPlans")
def list_plans(principal: Principal, **_: Any) -> Response:
    return ok(platform().list_plans(principal))


@operation(bp, vendor_contract(), "queryModelByPlanId")
def query_models(principal: Principal, body: dict[str, Any], **_: Any) -> Response:
    return ok(platform().models(principal, body["processPlanId"]))
