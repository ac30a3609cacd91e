"""Faithful variants: the emulator choosing differently wherever the document is silent, keeping every promise.

The contract kit must pass each with zero violations (issue 11 (a)-(j)); they are served like the broken servers
(`python -m tests.kit_selftest.faithful VARIANT --port N`), reusing broken.py's buffering middleware.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from typing import Any

from flask import Flask

from mock_server.app import create_app
from mock_server.settings import Settings
from mock_server.transport import HttpTransport
from tests.kit_selftest.broken import Defect, Middleware, Reply, WSGIApp, collapsed, read_body, serve

VARIANTS: dict[str, str] = {
    "always-200": "(a) HTTP 200 for every business code (dpa-mock --http-status always200)",
    "status-is-code": "(b) HTTP status equal to the code for every code, 997-999 included",
    "pretty-extra-fields": "(c) pretty-printed JSON, keys reversed, extra fields in every object, envelope "
    "and callback",
    "other-wording": "(d) error messages in other (Chinese, generic) words",
    "no-default-callback": "(e) no callback for DEFAULT",
    "999-unknown-ids": "(f) code 999 (HTTP 200) for unknown plan and instance ids",
    "405-code-405": "(g) a wrong method answered HTTP 405 with code 405 and no Allow header",
    "execute-path-only": "(h) executePlan takes the plan id from the path only (body id ignored, may be absent)",
    "slow-backoff": "(i) callback retries after 0.5 s, 1 s, 2 s",
    "late-callbacks": "(j) every callback arrives 1 s (real time) late",
    "framework-errors": "a malformed body (bad JSON, wrong or missing Content-Type) refused by the framework's own "
    "Spring-style 400/415 JSON, not the envelope",
    "all-at-once": "(b)-(i) together: status = code, pretty JSON with extra fields, other wording, no DEFAULT "
    "callback, 999 for unknown ids, 405/code 405, plan id from the path, slow backoff; and HTTP 201 for "
    "successful writes, token_type 'bearer', runs queued 90 s before RUNNING",
}
KNOWN_PATHS = (
    "/api/dp/auth/oauth/authorize",
    "/api/dp/auth/oauth/token",
    "/api/dpa/process/processPlan/queryPlanByUserId",
    "/api/dpa/process/processPlan/queryModelByPlanId",
    "/api/dpa/process/processPlan/saveTimingParam",
    "/api/dpa/process/processPlan/queryPlanRunOutParam",
)
EXECUTE = re.compile(r"/api/dpa/process/processPlan/opExecutePlanByApi/([^/]+)")
REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Server Error",
    503: "Service Unavailable",
    997: "Unknown Error",
    998: "User Not Found",
    999: "Business Error",
}


def _envelope(reply: Reply) -> dict[str, Any] | None:
    body = reply.json()
    return body if isinstance(body, dict) and isinstance(body.get("code"), int) else None


def _status_is_code(environ: dict[str, Any], reply: Reply) -> Reply:
    body = _envelope(reply)
    if body is None or body["code"] == 200:
        return reply
    return Reply(f"{body['code']} {REASONS.get(body['code'], 'Error')}", reply.headers, reply.body)


def _decorate(value: Any) -> Any:
    """Keys reversed and an extra field in every object (lists keep their order)."""
    if isinstance(value, dict):
        out = {k: _decorate(v) for k, v in reversed(list(value.items()))}
        out["vendorExtra"] = {"traceId": "t-1", "note": "extra"}
        return out
    if isinstance(value, list):
        return [_decorate(v) for v in value]
    return value


def _pretty(environ: dict[str, Any], reply: Reply) -> Reply:
    body = reply.json()
    if body is None:
        return reply
    text = json.dumps(_decorate(body), ensure_ascii=False, indent=4).encode("utf-8")
    headers = [(k, v) for k, v in reply.headers if k.lower() != "content-length"]
    return Reply(reply.status, [*headers, ("Content-Length", str(len(text)))], text)


def _reword(environ: dict[str, Any], reply: Reply) -> Reply:
    body = _envelope(reply)
    if body is None or body["code"] == 200:
        return reply
    body["message"] = "系统繁忙，请稍后再试" if body["code"] >= 500 else "请求失败"
    return reply.with_json(body)


def _unknown_ids_999(environ: dict[str, Any], reply: Reply) -> Reply:
    body = _envelope(reply)
    path = collapsed(environ)
    known = path in KNOWN_PATHS or EXECUTE.fullmatch(path)
    if body is None or body["code"] != 404 or not known or reply.status.startswith("405"):
        return reply
    body["code"], body["message"] = 999, "业务逻辑异常"
    return Reply("200 OK", reply.with_json(body).headers, reply.with_json(body).body)


def _wrong_method_405(environ: dict[str, Any], reply: Reply) -> Reply:
    if not reply.status.startswith("405"):
        return reply
    text = json.dumps({"code": 405, "message": "Request method not supported", "data": None}).encode()
    return Reply(
        "405 Method Not Allowed", [("Content-Type", "application/json"), ("Content-Length", str(len(text)))], text
    )


FRAMEWORK_REFUSALS = re.compile(r"malformed JSON body|request body is required|Content-Type .* is not supported")


def _framework_errors(environ: dict[str, Any], reply: Reply) -> Reply:
    """Where the emulator refuses a body it cannot parse, answer as Spring's error controller would."""
    body = _envelope(reply)
    if body is None or body["code"] != 400 or not FRAMEWORK_REFUSALS.search(str(body.get("message"))):
        return reply
    status = 415 if "Content-Type" in str(body["message"]) else 400
    error = {
        "timestamp": "2026-12-05T12:00:00.000+00:00",
        "status": status,
        "error": "Unsupported Media Type" if status == 415 else "Bad Request",
        "path": environ.get("PATH_INFO"),
    }
    text = json.dumps(error).encode()
    return Reply(
        f"{status} {error['error']}", [("Content-Type", "application/json"), ("Content-Length", str(len(text)))], text
    )


def _plan_id_from_path(environ: dict[str, Any]) -> Reply | None:
    match = EXECUTE.fullmatch(collapsed(environ))
    if match is None or environ.get("REQUEST_METHOD") != "POST":
        return None
    raw = read_body(environ)
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return None  # malformed: the emulator refuses it as before
    if not isinstance(body, dict):
        return None
    from urllib.parse import unquote

    body["processPlanId"] = unquote(match.group(1))
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(data), str(len(data))
    environ["CONTENT_TYPE"] = "application/json"
    return None


class ExtraFieldTransport:
    """Callbacks carry an extra field (as pretty-extra-fields' envelopes do)."""

    def __init__(self) -> None:
        self.inner = HttpTransport()

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        return self.inner.post_json(url, {"eventTime": 1, **payload}, timeout)


class LateTransport:
    """Every callback attempt leaves one real second after the emulator decided to send it."""

    def __init__(self) -> None:
        self.inner = HttpTransport()

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        time.sleep(1.0)
        return self.inner.post_json(url, payload, timeout)


def _created_201(environ: dict[str, Any], reply: Reply) -> Reply:
    """Writes that succeed answer HTTP 201 Created (the document ties no HTTP status to success, D1)."""
    body = _envelope(reply)
    path = collapsed(environ)
    if body is None or body["code"] != 200 or not (EXECUTE.fullmatch(path) or path.endswith("/saveTimingParam")):
        return reply
    return Reply("201 Created", reply.headers, reply.body)


def _bearer_lower(environ: dict[str, Any], reply: Reply) -> Reply:
    """token_type "bearer": RFC 6749 5.1 makes it case-insensitive; the document shows "Bearer" in an example."""
    body = _envelope(reply)
    if body is None or body["code"] != 200 or not collapsed(environ).endswith("/oauth/token"):
        return reply
    if isinstance(body.get("data"), dict) and "token_type" in body["data"]:
        body["data"]["token_type"] = "bearer"
    return reply.with_json(body)


def _chain(*steps: Any) -> Any:
    def after(environ: dict[str, Any], reply: Reply) -> Reply:
        for step in steps:
            reply = step(environ, reply)
        return reply

    return after


def make_variant(name: str) -> Defect:
    if name == "always-200":
        return Defect(settings={"http_status": "always200"})
    if name == "status-is-code":
        return Defect(after=_status_is_code)
    if name == "pretty-extra-fields":
        return Defect(after=_pretty, transport=ExtraFieldTransport())  # type: ignore[arg-type]  # a Transport by duck typing
    if name == "other-wording":
        return Defect(after=_reword)
    if name == "no-default-callback":
        return Defect(settings={"callback_statuses": ("RUNNING", "PENDING", "SUCCESS", "FAIL")})
    if name == "999-unknown-ids":
        return Defect(after=_unknown_ids_999)
    if name == "405-code-405":
        return Defect(after=_wrong_method_405)
    if name == "execute-path-only":
        return Defect(before=_plan_id_from_path)
    if name == "slow-backoff":
        return Defect(settings={"callback_backoff": (0.5, 1.0, 2.0)})
    if name == "late-callbacks":
        return Defect(transport=LateTransport())  # type: ignore[arg-type]  # the same
    if name == "framework-errors":
        return Defect(after=_framework_errors)
    if name == "all-at-once":
        # Order matters: codes first (999, 405), then the status follows the code, then wording and layout.
        return Defect(
            before=_plan_id_from_path,
            after=_chain(
                _unknown_ids_999, _wrong_method_405, _status_is_code, _created_201, _bearer_lower, _reword, _pretty
            ),
            transport=ExtraFieldTransport(),  # type: ignore[arg-type]  # the same
            settings={
                "callback_statuses": ("RUNNING", "PENDING", "SUCCESS", "FAIL"),
                "callback_backoff": (0.5, 1.0, 2.0),
                "run_start_delay": 90.0,  # a queue: runs stay DEFAULT past the kit's old 60 s of target time
            },
        )
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def build(name: str, clock: str = "virtual") -> tuple[WSGIApp, Flask]:
    variant = make_variant(name)
    app = create_app(Settings(clock=clock, log_requests=False, **variant.settings), transport=variant.transport)
    return Middleware(app.wsgi_app, variant), app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kit_selftest.faithful", description=__doc__)
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--clock",
        choices=("virtual", "real"),
        default="virtual",
        help="real: as a staging server, for kit runs with --no-admin",
    )
    args = parser.parse_args(argv)
    wsgi, app = build(args.variant, args.clock)
    return serve(wsgi, app, args.host, args.port, f"faithful dpa-mock ({args.variant}: {VARIANTS[args.variant]})")


if __name__ == "__main__":
    sys.exit(main())
