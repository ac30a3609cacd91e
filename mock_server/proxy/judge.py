"""Judging one vendor exchange by the document and the contract: the client's request, then the server's answer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict

from dpa_client.document import EPOCH_MS_RANGE, STATUSES, envelope_shape_problems
from mock_server.domain.errors import ValidationError
from mock_server.http.spec import FORM_TYPES, Contract, Operation, RequestSchema, form_to_dict, vendor_contract
from mock_server.proxy.model import Finding, Side, Verdict, collector

INTERFACES = {
    "authorize": "1.1",
    "getToken": "1.2",
    "listPlans": "2",
    "queryModelByPlanId": "3",
    "saveTimingParam": "4",
    "executePlan": "5",
    "queryPlanRunOutParam": "6",
}
# The Content-Type each interface's section of the document names (the token call names none; D3).
DOCUMENT_MEDIA = {
    "queryModelByPlanId": "application/json",
    "executePlan": "application/json",
    "saveTimingParam": "application/x-www-form-urlencoded",
}

_S = {"type": "string"}
_I = {"type": "integer"}
_STATUS = {"enum": list(STATUSES)}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props}


def _list(item: dict[str, Any], min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": min_items}


# What the document promises in `data` on success, and no more: extra fields are allowed everywhere.
SUCCESS_DATA: dict[str, RequestSchema] = {
    k: RequestSchema(v)
    for k, v in {
        "authorize": _obj(code=_S),
        "getToken": _obj(token_type=_S, access_token=_S),
        "listPlans": _list(
            _obj(
                processPlanId=_S,
                title=_S,
                status=_STATUS,
                stepNums=_I,
                version=_I,
                createTime=_I,
                createUser=_S,
                updateTime=_I,
                updateUser=_S,
            )
        ),
        "queryModelByPlanId": _list(_obj(modelName=_S, processModelId=_S, mapParam=_list(_obj(name=_S, type=_S)))),
        "saveTimingParam": _obj(instanceId=_S, modelId=_S, status=_STATUS),
        "executePlan": _list(_obj(processPlanId=_S, planInstanceId=_S), min_items=1),
        "queryPlanRunOutParam": _list(
            _obj(modelName=_S, processModelId=_S, mapParam=_list(_obj(result=_S, nodeName=_S)))
        ),
    }.items()
}


@dataclass
class Route:
    """Which operation a request is, and how it reached it."""

    operation: Operation | None
    path_params: dict[str, str] = field(default_factory=dict)
    collapsed: bool = False  # the document's `//` written as `/`
    wrong_method: bool = False

    @property
    def interface(self) -> str:
        return INTERFACES.get(self.operation.id, "") if self.operation else ""


class Router:
    """Finds the document's operation for a method and path, noticing the collapsed `//` form."""

    def __init__(self, contract: Contract | None = None) -> None:
        self.contract = contract or vendor_contract()
        self._patterns = [
            (
                re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(op.path)) + "$"),
                re.compile(
                    "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(re.sub("/{2,}", "/", op.path))) + "$"
                ),
                op,
            )
            for op in self.contract.operations.values()
        ]

    def route(self, method: str, path: str) -> Route:
        wrong: Route | None = None
        for exact, single, op in self._patterns:
            match = exact.match(path)
            collapsed = False
            if match is None and "//" in op.path:
                match, collapsed = single.match(path), True
            if match is None:
                continue
            if op.method != method.upper():
                wrong = wrong or Route(op, match.groupdict(), collapsed, wrong_method=True)
                continue
            return Route(op, match.groupdict(), collapsed)
        return wrong or Route(None)


@dataclass
class Judged:
    """Findings on a request, and what the request said (for the answer's checks and the recorder)."""

    findings: list[Finding] = field(default_factory=list)
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)

    def add(self, verdict: Verdict, side: Side, check: str, message: str) -> None:
        self.findings.append(Finding(verdict, side, check, message))


def judge_request(
    route: Route, method: str, path: str, query_string: str, headers: dict[str, str], raw: bytes
) -> Judged:
    """The client's side of an exchange: is this request one the document describes, as it describes it?"""
    out = Judged()
    op = route.operation
    if op is None:
        out.add(
            "observation",
            "client",
            "unknown-path",
            f"{method} {path} is not an interface of the document; forwarded without judging",
        )
        return out
    if route.wrong_method:
        # HEAD is GET without the body (RFC 9110): not what the document shows, but no broken request either.
        verdict: Verdict = "observation" if (method.upper(), op.method) == ("HEAD", "GET") else "violation"
        out.add(verdict, "client", "method", f"{method} {path}: the document's method here is {op.method}")
        return out
    if route.collapsed:
        out.add(
            "violation",
            "client",
            "double-slash",
            f"{path}: the document's path is {op.path} (with `//`); the single slash is not promised",
        )
    try:
        text = query_string.encode("latin1").decode("utf-8")
    except UnicodeError:
        text = query_string.encode("latin1").decode("utf-8", "replace")
        out.add("violation", "client", "query", "query string is not UTF-8")
    pairs = parse_qsl(text, keep_blank_values=True)
    out.query = dict(reversed(pairs))  # first value wins, as a servlet's getParameter
    if op.query_schema is not None:
        problem = _query_problem(op, out.query)
        if problem:
            out.add("violation", "client", "parameters", f"query: {problem}")
    if op.secured:
        auth = headers.get("Authorization", "")
        scheme, _, token = auth.strip().partition(" ")
        if not auth.strip():
            out.add("violation", "client", "auth", "no Authorization header: the document asks for 'Bearer <token>'")
        elif scheme.lower() != "bearer" or not token.strip():
            out.add("violation", "client", "auth", "Authorization header is not 'Bearer <token>'")
    if op.bodies:
        out.body = _judge_body(op, route, headers, raw, out)
    return out


def _query_problem(op: Operation, values: dict[str, str]) -> str | None:
    try:
        op.check_query(MultiDict(values))
    except ValidationError as exc:
        return str(exc)
    return None


def _judge_body(op: Operation, route: Route, headers: dict[str, str], raw: bytes, out: Judged) -> Any:
    content_type = headers.get("Content-Type", "")
    media = content_type.split(";")[0].strip().lower()
    expected = DOCUMENT_MEDIA.get(op.id)
    if not raw.strip():
        if op.body_required:
            out.add("violation", "client", "body", f"request body is missing (the document's is {expected or 'JSON'})")
        return None
    if expected and media != expected:
        if media in op.bodies or (media in FORM_TYPES and set(FORM_TYPES) & set(op.bodies)):
            out.add(
                "observation",
                "client",
                "content-type",
                f"Content-Type {media!r}; the document names {expected!r} (the contract accepts both)",
            )
        else:
            out.add(
                "violation",
                "client",
                "content-type",
                f"Content-Type {media or '(none)'!r}; the document names {expected!r}",
            )
    elif not expected and media != "application/json":
        out.add(
            "observation",
            "client",
            "content-type",
            f"token body sent as {media or '(no Content-Type)'}; the document's example is JSON",
        )
    if media in FORM_TYPES:
        schema_media = next((m for m in op.bodies if m in FORM_TYPES), None)
        if schema_media is None:
            return None
        if media != "application/x-www-form-urlencoded":
            return None  # multipart is judged by its Content-Type only
        form = MultiDict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if op.id == "saveTimingParam" and "modelVarReq" not in form and any(k.startswith("modelVarReq") for k in form):
            out.add(
                "observation",
                "client",
                "form-encoding",
                "modelVarReq sent as indexed form fields; the contract's encoding is one JSON-string field",
            )
        try:
            body = form_to_dict(form, op.bodies[schema_media].schema)
        except ValidationError as exc:
            out.add("violation", "client", "body", str(exc))
            return None
        except RecursionError:
            out.add("violation", "client", "body", "a form field holds JSON nested too deeply to read")
            return None
        schema = op.bodies[schema_media]
    else:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            out.add("violation", "client", "body", f"malformed JSON body: {exc}")
            return None
        except RecursionError:
            out.add("violation", "client", "body", "JSON body nested too deeply to read")
            return None
        schema = op.bodies.get("application/json") or next(iter(op.bodies.values()))
    problem = schema.problem(body)
    if problem:
        out.add("violation", "client", "body", f"body: {problem}")
    if op.id == "executePlan" and isinstance(body, dict):
        in_path, in_body = route.path_params.get("processPlanId"), body.get("processPlanId")
        if isinstance(in_body, str) and in_path is not None and in_body != in_path:
            out.add(
                "violation",
                "client",
                "body",
                f"the body's processPlanId {in_body!r} differs from the path's {in_path!r}",
            )
    return body


def parse_envelope(raw: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """The body as an envelope, and what is wrong with it (empty: a well-formed envelope with a documented code)."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, [f"body is not JSON: {raw[:80].decode('utf-8', 'replace')!r}"]
    problems = envelope_shape_problems(body)
    if not isinstance(body, dict):
        return None, problems
    if body.get("code") == 200 and body.get("data") is None:
        problems.append("success envelope without 'data'")
    return body, problems


def judge_response(
    route: Route, request: Judged, status: int, raw: bytes
) -> tuple[list[Finding], dict[str, Any] | None]:
    """The server's side: the envelope, the documented fields on success, and what it accepted."""
    out: list[Finding] = []
    add = collector(out)

    op = route.operation
    body, problems = parse_envelope(raw)
    if op is None or route.wrong_method:
        # An unknown path or method may get the envelope with any documented error code, or a plain 404/405;
        # a 2xx for a path outside the document may belong to another API of the platform: not judged.
        if op is None and 200 <= status < 300:
            return out, body
        if problems and status not in (404, 405):
            add("violation", "server", "envelope", f"HTTP {status}: not an envelope: {'; '.join(problems)}")
        elif body is not None and body.get("code") == 200 and route.wrong_method and op is not None:
            add(
                "leniency",
                "server",
                "method",
                f"answered success on a path of the document with a method other than {op.method}",
            )
        return out, body
    if problems:
        add("violation", "server", "envelope", f"HTTP {status}: {'; '.join(problems)}")
        return out, body
    assert body is not None
    code = body["code"]
    if code == 200:
        expected = "" if op.id in ("authorize", "getToken") else "success"
        if body["message"] != expected:
            add(
                "observation",
                "server",
                "success-message",
                f"{op.id} success message {body['message']!r} (the document's example: {expected!r})",
            )
        if not 200 <= status < 300:
            add("violation", "server", "http-status", f"code 200 (success) travels with HTTP {status}")
        problem = SUCCESS_DATA[op.id].problem(body["data"])
        if problem:
            add("violation", "server", "fields", f"data{problem if problem.startswith('[') else ': ' + problem}")
        else:
            out.extend(_success_details(op.id, body["data"], request))
        client_violations = [f for f in request.findings if f.verdict == "violation"]
        for finding in client_violations:
            if finding.check == "double-slash":
                add("observation", "server", "double-slash", "serves the single-slash form of a `//` path")
            else:
                add(
                    "leniency",
                    "server",
                    "accepted",
                    f"answered success to a request that breaks the document: {finding.message}",
                )
    else:
        if status not in (200, code):
            add(
                "violation",
                "server",
                "http-status",
                f"code {code} travels with HTTP {status} (the document's codes are "
                f"HTTP 200 or the status equal to the code)",
            )
        else:
            add("observation", "server", "http-status-policy", f"code {code} travels with HTTP {status}")
        if "data" not in body:
            add("observation", "server", "error-data", "error envelopes omit 'data'")
        if code == 500 or (status >= 500 and status != 503):
            # As the kit judges it: a server error (other than the documented 503) is never a promise kept.
            add("violation", "server", "server-error", f"code {code} (HTTP {status}): {body.get('message')!r}")
    return out, body


def _success_details(op_id: str, data: Any, request: Judged) -> list[Finding]:
    out: list[Finding] = []
    add = collector(out)

    if op_id == "authorize" and not re.fullmatch(r"[A-Z0-9_-]+", data["code"]):
        add("observation", "server", "code-format", "the authorization code is not of the document's shape [A-Z0-9]")
    elif op_id == "getToken" and data["token_type"].lower() != "bearer":
        add("violation", "server", "fields", f"token_type {data['token_type']!r}: the document's is 'Bearer'")
    elif op_id == "listPlans":
        for i, plan in enumerate(data):
            for key in ("createTime", "updateTime"):
                if not EPOCH_MS_RANGE[0] <= plan[key] < EPOCH_MS_RANGE[1]:
                    add("violation", "server", "fields", f"data[{i}].{key} {plan[key]} is not epoch milliseconds")
    elif op_id == "executePlan" and isinstance(request.body, dict):
        asked = request.body.get("processPlanId")
        if any(run["processPlanId"] != asked for run in data):
            add("violation", "server", "fields", f"the run's processPlanId is not the plan executed ({asked!r})")
    return out
