"""Interface 4: timing scenes, form-encoded."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mock_server.domain.oauth import Principal
from mock_server.domain.platform import Platform
from mock_server.http.routing import vendor_operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("scenes", __name__)


@vendor_operation(bp, vendor_contract(), "saveTimingParam")
def save_timing_param(
    platform: Platform, principal: Principal, _query: dict[str, Any], body: dict[str, Any], _path: dict[str, str]
) -> Any:
    return platform.save_scene(principal, body)
