"""Interface 1: GET authorize and POST token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from mock_server.http.envelope import ok
from mock_server.http.routing import current_platform, operation
from mock_server.http.spec import vendor_contract

bp = Blueprint("oauth", __name__)


@operation(bp, vendor_contract(), "authorize")
def authorize(query: dict[str, Any], **_: Any) -> Response:
    code = current_platform().oauth.authorize(query["client_id"], query["response_type"], query["scope"])
    return ok({"code": code}, oauth=True)


@operation(bp, vendor_contract(), "getToken")
def token(body: dict[str, Any], **_: Any) -> Response:
    user_id = body.get("user_id")
    access = current_platform().oauth.token(body["code"], body["client_id"], body["client_secret"],
                                            body["grant_type"], None if user_id in (None, "") else str(user_id))
    return ok({"token_type": "Bearer", "access_token": access}, oauth=True)
