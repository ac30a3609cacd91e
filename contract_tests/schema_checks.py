"""Schemathesis checks for this API: envelope-aware, each classed (violation / leniency / observation)."""

from __future__ import annotations

import copy
import functools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import jsonschema
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation.meta import CoverageScenario, coverage_scenario
from schemathesis.specs.openapi import checks as builtin

from contract_tests.plugins.safety import WriteBlocked, policy
from contract_tests.plugins.target import target
from contract_tests.support.envelope import DOCUMENTED_CODES, ERROR_CODES, parse_json
from contract_tests.support.kit import KIT
from contract_tests.support.redact import curl_line
from contract_tests.support.spec import document as spec_document
from contract_tests.support.tokens import is_jwt, tamper_signature
from contract_tests.support.verdicts import SCHEMATHESIS_CHECKS, LeniencyFailure, Verdict

WRITE_OPS = frozenset({"executePlan", "saveTimingParam"})
# Cases steered to what the document promises to accept (the kit's client, a fresh code with the real secret,
# a visible plan, a started run): only these may be judged by positive_data_acceptance. id(case) -> True.
PROMISED: set[int] = set()
JUDGED: Counter[str] = Counter()  # promised cases positive_data_acceptance judged, per operation
# Request media types the document itself shows (its 请求头 and examples); the contract may list more.
DOCUMENT_MEDIA: dict[str, frozenset[str]] = {
    "getToken": frozenset({"application/json"}),  # 1.2's request example is a JSON object
    "queryModelByPlanId": frozenset({"application/json"}),
    "saveTimingParam": frozenset({"application/x-www-form-urlencoded"}),
    "executePlan": frozenset({"application/json"}),
}


def envelope(response: Any) -> dict[str, Any] | None:
    # In its declared charset when not UTF-8 (GBK): the leniency is parse_json's to report, the content is judged.
    try:
        body, _charset = parse_json(response)
    except (ValueError, AttributeError):
        return None
    return body if isinstance(body, dict) else None


def _effective_status(response: Any) -> int:
    """The status a check should judge: an error envelope counts as its business code, whether it travels with
    HTTP 200, with its own code as the status (997-999 included) or any status of 600 and over."""
    body = envelope(response)
    code = body.get("code") if body else None
    if isinstance(code, int) and not isinstance(code, bool) and code in ERROR_CODES:
        # Whatever HTTP status carries it (200, its own code, 400 for all, a 5xx for a business exception): the
        # document ties no status to a code, so the business code is the answer.
        return code if code < 600 else 400  # 997/998/999 are rejections too
    return response.status_code


def _shadow(response: Any) -> Any:
    status = _effective_status(response)
    if status == response.status_code:
        return response
    shadow = copy.copy(response)
    shadow.status_code = status
    return shadow


def envelope_conformance(ctx: Any, response: Any, case: Any) -> None:
    """Every response is a {code, message, data} envelope with a documented code, and never a server error."""
    if response.request.method == "HEAD":
        return  # no body by definition
    body = envelope(response)
    if wrong_method(case):
        # A method the path does not have: any refusal will do (a plain HTTP 405, or an envelope with any
        # code, 405 included); never a server error. 405 itself is unsupported_method's business. A success that
        # is the operation's own answer (Spring's @RequestMapping without `method`) is a leniency; a success
        # that is not (a bare envelope, a body of another shape) is a violation.
        code = body.get("code") if body else None
        if code == 200 or (body is None and 200 <= response.status_code < 300):
            _wrong_method_success(ctx, response, case)
            return
        assert code in ERROR_CODES - {500} or not 500 <= response.status_code < 600 or response.status_code == 503, (
            f"{response.request.method} on {case.operation.path}: server error HTTP {response.status_code}"
        )
        return
    problem = _envelope_problem(response, body)
    server_error = isinstance(body, dict) and body.get("code") == 500
    if (
        problem
        and not server_error
        and 400 <= response.status_code < 500
        and case.meta is not None
        and case.meta.generation.mode.is_negative
    ):
        # A request the document forbids, refused by the framework's own 4xx page: no follower is hurt.
        request = response.request
        KIT.lenient(
            "error answer not an envelope",
            f"{case.operation.label} ({request.method}): {problem}",
            curl=curl_line(request.method, request.url, dict(request.headers), request.body),
        )
        return
    if problem:
        raise AssertionError(problem)


def _wrong_method_success(ctx: Any, response: Any, case: Any) -> None:
    what = f"{response.request.method} on {case.operation.path}"
    try:
        _by_name("response_schema_conformance")(ctx, response, case)
    except AssertionError as exc:
        raise AssertionError(
            f"{what} answered success (HTTP {response.status_code}) with a body that is not "
            f"the operation's answer: {_finding_text(exc)}"
        ) from None
    request = response.request
    KIT.lenient(
        "wrong method accepted",
        f"{what}: answered as the documented method (HTTP {response.status_code})",
        curl=curl_line(request.method, request.url, dict(request.headers), request.body),
    )


def wrong_method(case: Any) -> bool:
    return coverage_scenario(case) == CoverageScenario.UNSPECIFIED_HTTP_METHOD


def _envelope_problem(response: Any, body: dict[str, Any] | None) -> str | None:
    status = response.status_code
    if body is None:
        snippet = response.content[:120].decode("utf-8", "replace")
        return f"HTTP {status}: the body is not a JSON envelope: {snippet!r}"
    code, message = body.get("code"), body.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        return f"HTTP {status}: envelope 'code' is {code!r}, not an int"
    if not isinstance(message, str):
        return f"HTTP {status}: envelope 'message' is {message!r}, not a string"
    if code not in DOCUMENTED_CODES:
        return f"HTTP {status}: envelope code {code} is not a documented code"
    if code == 200 and "data" not in body:
        return f"HTTP {status}: success envelope without 'data'"
    if code == 500 or (500 <= status < 600 and status != 503 and code not in ERROR_CODES):
        # A documented non-500 error code is judged by its code whatever HTTP status carries it (a Spring
        # handler answering a business exception with HTTP 500): the status is observed below.
        return f"server error: HTTP {status}, code {code}, message {message!r}"
    if code in ERROR_CODES and status != 405:  # a wrong method's answer says nothing about the code's status
        KIT.observe(f"http-status.code-{code}", str(status))
    return None


def negative_data_rejection_envelope(ctx: Any, response: Any, case: Any) -> Any:
    """The built-in check, judging an HTTP-200 error envelope by its code."""
    if _only_nulled_optionals(case):
        # `"field": null` for an optional field reads as "not given" to a Java-style binder: not judged.
        KIT.observe("request.null-optional", "absent" if _effective_status(response) < 300 else "rejected")
        return None
    return builtin.negative_data_rejection(ctx, _shadow(response), case)


def _without_nulls(value: Any) -> Any:
    """The value with every null-valued object member dropped, at any depth (array items are kept)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _only_nulled_optionals(case: Any) -> bool:
    """True when the JSON body is valid once its null-valued fields are dropped, nested ones too (modelVarReq
    items' modelId and mapParam are optional: D23)."""
    body = case.body
    if not isinstance(body, dict) or "json" not in (case.media_type or ""):
        return False
    stripped = _without_nulls(body)
    if stripped == body:
        return False
    validator = _body_validator(case.operation.definition.raw.get("operationId"), case.media_type)
    return validator is not None and validator.is_valid(stripped)


def scene_would_be_created(case: Any) -> bool:
    """Whether a saveTimingParam case, once steered by before_call (single, an allowed plan), is a valid form."""
    if case.meta is None or case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return True
    steered = {**case.body, "executeStrategy": "single"}
    if policy().plan_ids is not None and steered.get("processPlanId") not in policy().plan_ids:
        steered["processPlanId"] = next(iter(policy().plan_ids), "")
    validator = _body_validator("saveTimingParam", "application/x-www-form-urlencoded")
    return validator is None or validator.is_valid(steered)


_VALIDATORS: dict[tuple[str, str], Any] = {}


def _body_validator(op_id: str, media_type: str) -> Any:
    """A JSON Schema validator for an operation's request body, read from the contract (refs inlined)."""
    key = (op_id, media_type)
    if key not in _VALIDATORS:
        document = spec_document()
        body = next(
            (
                op.get("requestBody")
                for item in document["paths"].values()
                for op in item.values()
                if isinstance(op, dict) and op.get("operationId") == op_id
            ),
            None,
        )
        schema = ((body or {}).get("content", {}).get(media_type) or {}).get("schema")
        _VALIDATORS[key] = None if schema is None else jsonschema.Draft7Validator(_inline(schema, document))
    return _VALIDATORS[key]


def _inline(node: Any, document: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target_node: Any = document
            for part in node["$ref"].lstrip("#/").split("/"):
                target_node = target_node[part]
            return _inline(target_node, document)
        return {k: _inline(v, document) for k, v in node.items() if k not in ("example", "examples")}
    if isinstance(node, list):
        return [_inline(v, document) for v in node]
    return node


def positive_data_acceptance_envelope(ctx: Any, response: Any, case: Any) -> Any:
    """A request the document promises to accept (steered to the kit's real client, code, plans or run) must get
    code 200. Generated ids the target does not know prove nothing: their refusal is not judged."""
    promised = id(case) in PROMISED
    PROMISED.discard(id(case))
    if not promised or case.meta is None or not case.meta.generation.mode.is_positive or wrong_method(case):
        return None
    if case.operation.definition.raw.get("security", [{}]) and "Authorization" not in response.request.headers:
        return None  # a token-less probe is ignored_auth's business
    op_id = case.operation.definition.raw.get("operationId")
    body = envelope(response)
    code = body.get("code") if body else None
    media = (getattr(case, "media_type", None) or "").split(";")[0].strip().lower()
    if media and op_id in DOCUMENT_MEDIA and media not in DOCUMENT_MEDIA[op_id]:
        # The contract lists this media type too, but the document never shows it: refusing it breaks no
        # promise (e.g. a token endpoint that takes JSON only). Diagnostic only.
        KIT.observe("fuzzing.codes", f"{op_id}: {media} (not in the document) answered code {code}")
        return None
    JUDGED[op_id] += 1
    assert code == 200, (
        f"{case.operation.label}: a request the document promises to accept (real client, plan "
        f"or run) was refused: HTTP {response.status_code}, code {code}, "
        f"message {(body or {}).get('message')!r}"
    )
    return None


def missing_required_header_envelope(ctx: Any, response: Any, case: Any) -> Any:
    # The document's code for a failed authentication is 403 (身份验证失败), where the built-in expects 401.
    shadow = _shadow(response)
    if shadow.status_code == 403:
        return None
    return builtin.missing_required_header(ctx, shadow, case)


_AUTH_PROBED: Counter[str] = Counter()
_PROBE_LOCK = threading.Lock()


def ignored_auth_envelope(ctx: Any, response: Any, case: Any) -> None:
    """A secured operation that succeeded with the kit's token must fail without it and with a tampered one."""
    body = envelope(response)
    request = response.request
    if not body or body.get("code") != 200 or "Authorization" not in request.headers:
        return
    if not case.operation.definition.raw.get("security", [{}]):
        return  # the OAuth operations are public
    label = case.operation.label
    with _PROBE_LOCK:
        if _AUTH_PROBED[label] >= 2:
            return  # enforcement is a property of the operation: a couple of confirmations suffice
        _AUTH_PROBED[label] += 1
    token = request.headers["Authorization"].partition(" ")[2]
    variants: dict[str, str | None] = {"no Authorization header": None}
    if is_jwt(token):
        variants["a tampered token"] = f"Bearer {tamper_signature(token, 7)}"
    for what, header in variants.items():
        probe = request.copy()
        probe.headers.pop("Authorization", None)
        if header:
            probe.headers["Authorization"] = header
        try:
            answer = target().session.send(probe, timeout=30)
        except WriteBlocked:
            return
        probe_body = _envelope_of_requests(answer)
        code = probe_body.get("code") if probe_body else None
        accepted = code == 200 or (probe_body is None and 200 <= answer.status_code < 300)
        assert not accepted, f"{label} accepted {what} (HTTP {answer.status_code}, code {code})"


def _envelope_of_requests(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


REPLACED = [
    builtin.negative_data_rejection,
    builtin.positive_data_acceptance,
    builtin.missing_required_header,
    builtin.ignored_auth,
]


def _finding_text(exc: BaseException) -> str:
    title = getattr(exc, "title", None)
    message = getattr(exc, "message", None) or str(exc)
    first = next((line for line in str(message).splitlines() if line.strip()), "")
    return f"{title}: {first}" if title and title not in first else first


def classed(check: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """`check` with its verdict class (verdicts.SCHEMATHESIS_CHECKS): a violation fails the test; a leniency is
    recorded with the request (and fails only under --strict); an observation is swallowed."""
    check_name = name or check.__name__
    verdict = SCHEMATHESIS_CHECKS[check_name][0]

    @functools.wraps(check)
    def wrapper(ctx: Any, response: Any, case: Any) -> Any:
        try:
            return check(ctx, response, case)
        except LeniencyFailure:
            raise  # a leniency found inside the check, under --strict: already recorded and classed
        except AssertionError as exc:  # schemathesis' Failure is an AssertionError too
            if verdict is Verdict.VIOLATION:
                KIT.mark(Verdict.VIOLATION)
                raise
            if verdict is Verdict.LENIENCY:
                request = response.request
                detail = f"{case.operation.label} ({request.method}): {_finding_text(exc)}"
                KIT.lenient(
                    check_name, detail, curl=curl_line(request.method, request.url, dict(request.headers), request.body)
                )
            return None

    wrapper.__name__ = check_name  # schemathesis names a failure after its check
    return wrapper


def _by_name(name: str) -> Callable[..., Any]:
    load_all_checks()
    return CHECKS.get_one(name)


def _not_a_server_error(ctx: Any, response: Any, case: Any) -> Any:
    # HTTP 997/998/999 carrying their own code (a faithful reading of the document) are not 5xx errors.
    return _by_name("not_a_server_error")(ctx, _shadow(response), case)


_not_a_server_error.__name__ = "not_a_server_error"


def _response_schema_conformance(ctx: Any, response: Any, case: Any) -> Any:
    """A violation, except for a request the document forbids refused with a 4xx that is not the envelope (a
    framework's own error page): no integrator following the document ever meets it, so a leniency."""
    try:
        return _by_name("response_schema_conformance")(ctx, response, case)
    except AssertionError as exc:
        negative = case.meta is not None and case.meta.generation.mode.is_negative
        if not negative or not 400 <= response.status_code < 500 or _is_envelope(envelope(response)):
            raise
        request = response.request
        KIT.lenient(
            "error answer not an envelope",
            f"{case.operation.label} ({request.method}): HTTP {response.status_code}: {_finding_text(exc)}",
            curl=curl_line(request.method, request.url, dict(request.headers), request.body),
        )
        return None


def _is_envelope(body: dict[str, Any] | None) -> bool:
    return body is not None and isinstance(body.get("code"), int) and isinstance(body.get("message"), str)


_response_schema_conformance.__name__ = "response_schema_conformance"
_BUILTIN_KEPT = (
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
)


def _kit_checks() -> list[Callable[..., Any]]:
    own = [
        classed(envelope_conformance),
        classed(negative_data_rejection_envelope, "negative_data_rejection"),
        classed(positive_data_acceptance_envelope, "positive_data_acceptance"),
        classed(missing_required_header_envelope, "missing_required_header"),
        classed(ignored_auth_envelope, "ignored_auth"),
        classed(_not_a_server_error),
        classed(_response_schema_conformance),
    ]
    return own + [classed(_by_name(name), name) for name in _BUILTIN_KEPT]


KIT_CHECKS = _kit_checks()


def checks_for(op_id: str) -> list[Any]:
    """Every check (schemathesis' own and the kit's), classed. Positive data can still break cross-field rules
    the schema cannot express (path/body plan ids agree, modelId is one of the plan's workflows), so acceptance
    is not judged for the two write operations."""
    if op_id in WRITE_OPS:
        return [c for c in KIT_CHECKS if c.__name__ != "positive_data_acceptance"]
    return KIT_CHECKS
