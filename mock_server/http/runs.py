"""Interfaces 5 and 6: manual execution and a run's output parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mock_server.domain.oauth import Principal
from mock_server.http.envelope import ok
from mock_server.http.routing import operation, platform
from mock_server.http.spec import vendor_contract

bp = Blueprint("runs", __name__)


@operation(bp, vendor_contract(), "executePlan")
def execute(principal: Principal, body: dict[str, Any], processPlanId: str, **_: Any) -> Response:
    return ok(platform().execute(principal, processPlanId, body))


@operation(bp, vendor_contract(), "queryPlanRunOutParam")
def out_params(principal: Principal, query: dict[str, Any], **_: Any) -> Response:
    return ok(platform().out_params(principal, query["processPlanId"], query["planInstanceId"]))
