"""Interface 1: GET authorize and POST token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from mock_server.domain.platform import Platform
from mock_server.http.routing import vendor_operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("oauth", __name__)


@vendor_operation(bp, vendor_contract(), "authorize", oauth=True)
def authorize(platform: Platform, _principal: Any, query: dict[str, Any], _body: Any, _path: dict[str, str]) -> Any:
    return {"code": platform.oauth.authorize(query["client_id"], query["response_type"], query["scope"])}


@vendor_operation(bp, vendor_contract(), "getToken", oauth=True)
def token(
    platform: Platform, _principal: Any, _query: dict[str, Any], body: dict[str, Any], _path: dict[str, str]
) -> Any:
    user_id = body.get("user_id")
    access = platform.oauth.token(
        body["code"],
        body["client_id"],
        body["client_secret"],
        body["grant_type"],
        None if user_id in (None, "") else str(user_id),
    )
    return {"token_type": platform.settings.token_type, "access_token": access}
