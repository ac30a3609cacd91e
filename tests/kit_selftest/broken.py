"""Deliberately broken dpa-mock servers: the real emulator with exactly one contract defect, to prove the kit fails."""

from __future__ import annotations

import argparse
import io
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

import urllib3
from flask import Flask

from mock_server import jsonbytes
from mock_server.app import create_app
from mock_server.domain.callbacks import Transport, TransportError
from mock_server.domain.platform import Platform
from mock_server.settings import Settings
from mock_server.transport import CALLBACK_HEADERS, HttpTransport

AUTHORIZE = "/api/dp/auth/oauth/authorize"
TOKEN = "/api/dp/auth/oauth/token"
LIST_PLANS = "/api/dpa/process/processPlan/queryPlanByUserId"
MODELS = "/api/dpa/process/processPlan/queryModelByPlanId"
OUT_PARAMS = "/api/dpa/process/processPlan/queryPlanRunOutParam"  # served at `//` too; compared collapsed
PROTECTED_PREFIX = "/api/dpa/"
# The demo app the `ignores-token` defect silently logs in as.
POC_ID, POC_SECRET = "JhYhK/XcFKuVlpVijwLCkw==", "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="
SAFE_PLAN_ID = re.compile(r"[A-Za-z0-9]{1,20}")

DEFECTS: dict[str, str] = {
    "healthy": "no defect: the emulator as shipped",
    "missing-envelope-field": "`message` dropped from every vendor JSON envelope",
    "wrong-field-type": "listPlans `createTime` sent as a string",
    "success-code-not-200": "success envelopes carry `code: 0`",
    "ignores-token": "protected operations act as poc_client whatever the Authorization header says",
    "code-reuse": "a second exchange of an authorization code replays the first token response",
    "500-on-input": "queryModelByPlanId with a processPlanId that is not 1-20 ASCII letters/digits "
    "answers HTTP 500 with an HTML body",
    "validation-as-success": "authorize without `scope` issues a code (as if scope=default)",
    "callbacks-never-retried": "callback_retries=0: one attempt only",
    "callbacks-retried-too-much": "callback_retries=5: up to 6 attempts",
    "illegal-callback-status": "callback payloads say STARTED where the status is RUNNING",
    "out-params-missing-nodename": "queryPlanRunOutParam entries lack `nodeName`",
    "double-slash-not-served": "any vendor path containing `//` gets the 404 envelope",
    "callback-no-answer-acknowledged": "a callback attempt without an HTTP answer (connection refused or closed, "
    "timed out) counts as acknowledged: never retried",
    "callback-plan-fixed": "every callback says processPlanId `acf42dd3`, whichever plan ran",
    "callback-text-plain": "callbacks sent with Content-Type text/plain;charset=UTF-8 (the body still JSON)",
    "authorize-not-envelope": "authorize answers HTTP 200 `ok` as text/plain: no envelope, no code (so no token)",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[str, str]]


@dataclass
class Reply:
    """A buffered WSGI response the middleware may rewrite before it is sent."""

    status: str
    headers: Headers
    body: bytes

    def json(self) -> Any:
        if "json" not in {k.lower(): v for k, v in self.headers}.get("content-type", ""):
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    def with_json(self, value: Any) -> Reply:
        body = json.dumps(value, ensure_ascii=False).encode("utf-8")
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        return Reply(self.status, [*headers, ("Content-Length", str(len(body)))], body)


def envelope_reply(http_status: str, code: int, message: str, data: Any = None) -> Reply:
    body = json.dumps({"code": code, "message": message, "data": data}, ensure_ascii=False).encode("utf-8")
    return Reply(
        http_status, [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))], body
    )


def collapsed(environ: dict[str, Any]) -> str:
    return re.sub(r"/{2,}", "/", environ.get("PATH_INFO", ""))


def is_vendor(environ: dict[str, Any]) -> bool:
    return not environ.get("PATH_INFO", "").startswith("/__admin")


def read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so the emulator still sees it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    raw = stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    return raw


def form_or_json(environ: dict[str, Any], raw: bytes) -> dict[str, Any]:
    media = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    text = raw.decode("utf-8", "replace")
    if media == "application/x-www-form-urlencoded":
        return {k: v[0] for k, v in parse_qs(text).items()}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass
class Defect:
    """Hooks of one defect: `before` may answer instead of the emulator, `after` may rewrite its answer."""

    before: Callable[[dict[str, Any]], Reply | None] = lambda environ: None
    after: Callable[[dict[str, Any], Reply], Reply] = lambda environ, reply: reply
    settings: dict[str, Any] = field(default_factory=dict)
    transport: Transport | None = None


class Middleware:
    """Runs the emulator, buffering its answer so a defect can rewrite it; /__admin is never touched."""

    def __init__(self, app: WSGIApp, defect: Defect) -> None:
        self.app, self.defect = app, defect

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not is_vendor(environ):
            return self.app(environ, start_response)
        reply = self.defect.before(environ)
        if reply is None:
            reply = self.defect.after(environ, self._forward(environ))
        start_response(reply.status, reply.headers)
        return [reply.body]

    def _forward(self, environ: dict[str, Any]) -> Reply:
        seen: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], None]:
            seen["status"], seen["headers"] = status, list(headers)
            return chunks.append

        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return Reply(seen["status"], seen["headers"], b"".join(chunks))


# -- the defects -------------------------------------------------------------------------------------
def _envelope_rewrite(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any], Reply], Reply]:
    def after(environ: dict[str, Any], reply: Reply) -> Reply:
        body = reply.json()
        if not isinstance(body, dict) or "code" not in body:
            return reply
        change(body)
        return reply.with_json(body)

    return after


def _drop_message(body: dict[str, Any]) -> None:
    body.pop("message", None)


def _zero_success(body: dict[str, Any]) -> None:
    if body.get("code") == 200:
        body["code"] = 0


def _stringify_create_time(environ: dict[str, Any], reply: Reply) -> Reply:
    body = reply.json()
    if collapsed(environ) != LIST_PLANS or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return reply
    for plan in body["data"]:
        if isinstance(plan, dict) and "createTime" in plan:
            plan["createTime"] = str(plan["createTime"])
    return reply.with_json(body)


def _drop_node_names(environ: dict[str, Any], reply: Reply) -> Reply:
    body = reply.json()
    if collapsed(environ) != OUT_PARAMS or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return reply
    for workflow in body["data"]:
        entries = workflow.get("mapParam") if isinstance(workflow, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                entry.pop("nodeName", None)
    return reply.with_json(body)


def _ignore_token(platform: Callable[[], Platform]) -> Callable[[dict[str, Any]], Reply | None]:
    def before(environ: dict[str, Any]) -> Reply | None:
        if not collapsed(environ).startswith(PROTECTED_PREFIX):
            return None
        oauth = platform().oauth
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise ValueError("not a bearer header")
            oauth.verify(token.strip())
            return None  # a valid token passes as it is, so other users and scopes still work
        except Exception:  # noqa: BLE001 - any rejection (403, 998, malformed) becomes a fresh valid login
            # Minted per request, on the emulator clock, so advancing the clock never expires it.
            code = oauth.authorize(POC_ID, "code", "all")
            environ["HTTP_AUTHORIZATION"] = "Bearer " + oauth.token(code, POC_ID, POC_SECRET, "authorization_code")
        return None

    return before


class CodeReplay:
    """Remembers each successful code exchange and replays it for the same code instead of asking the emulator."""

    def __init__(self) -> None:
        self.seen: dict[str, Reply] = {}
        self.lock = threading.Lock()

    def before(self, environ: dict[str, Any]) -> Reply | None:
        if collapsed(environ) != TOKEN or environ.get("REQUEST_METHOD") != "POST":
            return None
        code = form_or_json(environ, read_body(environ)).get("code")
        environ["broken.code"] = code
        with self.lock:
            return self.seen.get(code) if isinstance(code, str) else None

    def after(self, environ: dict[str, Any], reply: Reply) -> Reply:
        code = environ.get("broken.code")
        body = reply.json()
        if isinstance(code, str) and isinstance(body, dict) and body.get("code") == 200:
            with self.lock:
                self.seen[code] = reply
        return reply


def _server_error_on_odd_id(environ: dict[str, Any]) -> Reply | None:
    if collapsed(environ) != MODELS or environ.get("REQUEST_METHOD") != "POST":
        return None
    plan_id = form_or_json(environ, read_body(environ)).get("processPlanId")
    if isinstance(plan_id, str) and not SAFE_PLAN_ID.fullmatch(plan_id):
        body = b"<html><body><h1>Whitelabel Error Page</h1><p>Internal Server Error</p></body></html>"
        return Reply(
            "500 INTERNAL SERVER ERROR",
            [("Content-Type", "text/html;charset=UTF-8"), ("Content-Length", str(len(body)))],
            body,
        )
    return None


def _default_scope(environ: dict[str, Any]) -> Reply | None:
    if collapsed(environ) != AUTHORIZE:
        return None
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if not any(name == "scope" for name, _ in query):
        environ["QUERY_STRING"] = urlencode([*query, ("scope", "default")])
    return None


def _no_double_slash(environ: dict[str, Any]) -> Reply | None:
    path = environ.get("PATH_INFO", "")
    if "//" not in path:
        return None
    return envelope_reply("404 NOT FOUND", 404, f"no such path: {environ.get('REQUEST_METHOD')} {path}")


class RenamingTransport:
    """The real callback transport, except that RUNNING goes out as the undocumented STARTED."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        if payload.get("status") == "RUNNING":
            payload = {**payload, "status": "STARTED"}
        return self.inner.post_json(url, payload, timeout)


class NoAnswerIsAck:
    """The real callback transport, except that an attempt without any HTTP answer counts as `SUCCESS`."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        try:
            return self.inner.post_json(url, payload, timeout)
        except (TransportError, OSError):
            return 200, "SUCCESS"


class FixedPlanTransport:
    """The real callback transport, except that every payload names the document's example plan."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        return self.inner.post_json(url, {**payload, "processPlanId": "acf42dd3"}, timeout)


class PlainTextTransport:
    """POSTs the callback JSON as the real transport does, but labelled text/plain."""

    def __init__(self) -> None:
        self._pool = urllib3.PoolManager(retries=False)

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        headers = {**CALLBACK_HEADERS, "Content-Type": "text/plain;charset=UTF-8"}
        try:
            response = self._pool.request(
                "POST", url, body=jsonbytes.dumps(payload), headers=headers, timeout=timeout, redirect=False
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(str(exc)) from exc
        return response.status, response.data.decode("utf-8", "replace")


def _authorize_text(environ: dict[str, Any], reply: Reply) -> Reply:
    if collapsed(environ) == AUTHORIZE:
        return Reply("200 OK", [("Content-Type", "text/plain")], b"ok")
    return reply


def make_defect(name: str, platform: Callable[[], Platform]) -> Defect:
    if name == "healthy":
        return Defect()
    if name == "authorize-not-envelope":
        return Defect(after=_authorize_text)
    if name == "missing-envelope-field":
        return Defect(after=_envelope_rewrite(_drop_message))
    if name == "wrong-field-type":
        return Defect(after=_stringify_create_time)
    if name == "success-code-not-200":
        return Defect(after=_envelope_rewrite(_zero_success))
    if name == "ignores-token":
        return Defect(before=_ignore_token(platform))
    if name == "code-reuse":
        replay = CodeReplay()
        return Defect(before=replay.before, after=replay.after)
    if name == "500-on-input":
        return Defect(before=_server_error_on_odd_id)
    if name == "validation-as-success":
        return Defect(before=_default_scope)
    if name == "callbacks-never-retried":
        return Defect(settings={"callback_retries": 0})
    if name == "callbacks-retried-too-much":
        return Defect(settings={"callback_retries": 5})
    if name == "illegal-callback-status":
        return Defect(transport=RenamingTransport(HttpTransport()))
    if name == "out-params-missing-nodename":
        return Defect(after=_drop_node_names)
    if name == "double-slash-not-served":
        return Defect(before=_no_double_slash)
    if name == "callback-no-answer-acknowledged":
        return Defect(transport=NoAnswerIsAck(HttpTransport()))
    if name == "callback-plan-fixed":
        return Defect(transport=FixedPlanTransport(HttpTransport()))
    if name == "callback-text-plain":
        return Defect(transport=PlainTextTransport())
    raise ValueError(f"unknown defect {name!r}; choose from {', '.join(DEFECTS)}")


def build(name: str, **settings: Any) -> tuple[WSGIApp, Flask]:
    """The WSGI app to serve for `name`, and the emulator app inside it (for its platform and closing)."""
    holder: dict[str, Flask] = {}
    defect = make_defect(name, lambda: holder["app"].extensions["dpa_platform"])
    base = {"clock": "virtual", "log_requests": False, **settings, **defect.settings}
    app = create_app(Settings(**base), transport=defect.transport)
    holder["app"] = app
    return (app if name == "healthy" else Middleware(app.wsgi_app, defect)), app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kit_selftest.broken", description=__doc__)
    parser.add_argument("defect", choices=sorted(DEFECTS), help="the one defect to serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    wsgi, app = build(args.defect)
    return serve(wsgi, app, args.host, args.port, f"broken dpa-mock ({args.defect}: {DEFECTS[args.defect]})")


def serve(wsgi: WSGIApp, app: Flask, host: str, port: int, label: str) -> int:
    """Serve a self-test server on waitress until SIGTERM or Ctrl-C, then close its platform."""
    import waitress

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"{label} on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        waitress.serve(
            wsgi, host=host, port=port, threads=8, ident="dpa-mock-selftest", channel_timeout=30, _quiet=True
        )
    except KeyboardInterrupt:
        pass
    finally:
        app.extensions["dpa_platform"].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
