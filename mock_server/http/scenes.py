"""Interface 4: timing scenes, form-encoded."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mock_server.domain.oauth import Principal
from mock_server.http.envelope import ok
from mock_server.http.routing import current_platform, operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("scenes", __name__)


@operation(bp, vendor_contract(), "saveTimingParam")
def save_timing_param(principal: Principal, body: dict[str, Any], **_: Any) -> Response:
    return ok(current_platform().save_scene(principal, body))
