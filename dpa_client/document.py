"""What the vendor document promises of every answer — its business codes, run statuses and the envelope's shape —
in one place for everything that judges a server from outside (the contract kit and `dpa-mock proxy`)."""

from __future__ import annotations

import json
from typing import Any

# 响应状态码说明: 200 OK, 400 参数校验异常, 403 身份验证失败, 404 请求路径异常, 500 服务器内部错误,
# 503 服务器异常未发现, 997 未知错误, 998 用户不存在, 999 业务逻辑异常.
DOCUMENTED_CODES = frozenset({200, 400, 403, 404, 500, 503, 997, 998, 999})
ERROR_CODES = DOCUMENTED_CODES - {200}
# Interface 7: DEFAULT 默认, RUNNING 执行中, PENDING 挂起, SUCCESS 成功, FAIL 失败.
STATUSES = ("DEFAULT", "RUNNING", "PENDING", "SUCCESS", "FAIL")
# 2000-01-01 .. 2100-01-01 in epoch milliseconds: createTime/updateTime in seconds or microseconds fall outside.
EPOCH_MS_RANGE = (946_684_800_000, 4_102_444_800_000)


def envelope_shape_problems(body: Any) -> list[str]:
    """What keeps a decoded JSON body from being the `{code, message, data}` envelope with a documented code
    (empty: it is one). `data` is left to the caller: the document promises it on success only."""
    if not isinstance(body, dict):
        return [f"body is a JSON {type(body).__name__}, not the {{code, message, data}} envelope"]
    problems = []
    code = body.get("code")
    if "code" not in body:
        problems.append("field 'code' is missing")
    elif not isinstance(code, int) or isinstance(code, bool):
        problems.append(f"'code' is {type(code).__name__} {code!r}, not an int")
    elif code not in DOCUMENTED_CODES:
        problems.append(f"'code' {code} is not a documented code {sorted(DOCUMENTED_CODES)}")
    if "message" not in body:
        problems.append("field 'message' is missing")
    elif not isinstance(body["message"], str):
        problems.append(f"'message' is {type(body['message']).__name__}, not a string")
    return problems


def callback_media_class(content_type: str) -> str:
    """How interface 7's `Content-Type: application/json` (请求头) judges a callback's header (D13): `json` for
    application/json with any parameters (charset…), `json-suffix` for application/*+json (a leniency), else
    `other` (a broken promise). The contract kit and the proxy both judge by it."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return "json"
    if media.startswith("application/") and media.endswith("+json"):
        return "json-suffix"
    return "other"


def callback_status(raw: bytes) -> str | None:
    """The `status` a callback body names (interface 7), or None when the body is not a JSON object naming one."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    status = payload.get("status") if isinstance(payload, dict) else None
    return status if isinstance(status, str) else None
