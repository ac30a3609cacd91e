"""Judging responses: the `{code, message, data}` envelope, documented codes, statuses and epoch-ms fields."""

from __future__ import annotations

import itertools
import json
import re
from email.message import Message
from typing import Any

import requests

from contract_tests.support.kit import KIT
from dpa_client.document import (  # noqa: F401 -- re-exported: the kit's checks import them from here
    DOCUMENTED_CODES,
    EPOCH_MS_RANGE,
    ERROR_CODES,
    STATUSES,
    envelope_shape_problems,
)

TERMINAL = frozenset({"SUCCESS", "FAIL"})
# Progress rank: a run never goes back (RUNNING and PENDING may alternate), and never leaves SUCCESS/FAIL.
_RANK = {"DEFAULT": 0, "RUNNING": 1, "PENDING": 1, "SUCCESS": 2, "FAIL": 2}


def describe(response: requests.Response) -> str:
    request = response.request
    path = (request.path_url or "").split("?", 1)[0] if request is not None else "?"
    method = request.method if request is not None else "?"
    return f"{method} {path} -> HTTP {response.status_code}"


def declared_charset(response: requests.Response) -> str | None:
    """The charset parameter of the response's Content-Type, if any."""
    message = Message()
    message["Content-Type"] = response.headers.get("Content-Type") or ""
    charset = message.get_param("charset")
    return charset.strip() if isinstance(charset, str) and charset.strip() else None


def parse_json(response: requests.Response) -> tuple[Any, str | None]:
    """The JSON body and, when it is not UTF-8, the declared charset it was decoded with.

    RFC 8259 8.1 asks for UTF-8 between systems, but a body in the charset its Content-Type declares (GBK, a
    Chinese vendor's default) is still readable by an integrator's HTTP client: a leniency, and the content
    is judged. Raises ValueError with what is wrong (not UTF-8 and no usable charset, or not JSON)."""
    raw = response.content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        charset = declared_charset(response)
        if charset is None or charset.lower().replace("-", "").replace("_", "") == "utf8":
            raise ValueError(f"body is not UTF-8 (declared charset {charset or 'none'})") from None
        try:
            return json.loads(raw.decode(charset)), charset
        except LookupError:
            raise ValueError(f"body is not UTF-8; declared charset {charset} is unknown") from None
        except (UnicodeDecodeError, ValueError):
            raise ValueError(f"body is not UTF-8, nor JSON in its declared charset {charset}") from None
    try:
        return json.loads(text), None
    except ValueError:
        raise ValueError("body is not JSON") from None


def envelope_problems(response: requests.Response) -> tuple[dict[str, Any] | None, list[str]]:
    """The parsed body and what is wrong with it as an envelope (empty list: a well-formed envelope)."""
    try:
        body, charset = parse_json(response)
    except ValueError as exc:
        snippet = response.content[:80].decode("utf-8", "replace")
        return None, [f"{exc} (Content-Type {response.headers.get('Content-Type')!r}): {snippet!r}"]
    if charset is not None:
        KIT.observe("envelope.charset", charset)
        KIT.lenient("non-UTF-8 JSON", f"JSON answers in their declared charset {charset}, not UTF-8 (RFC 8259 8.1)")
    problems = envelope_shape_problems(body)
    if not isinstance(body, dict):
        return None, problems
    code = body.get("code")
    if "data" not in body:
        if code == 200:
            problems.append("field 'data' is missing")
        elif not problems:
            # Only of an envelope: a framework's own error JSON (no code) has no `data` either, and says
            # nothing about the target's error envelopes.
            # The contract (ErrorEnvelope) lets an error omit data; dpa-mock sends null.
            KIT.observe("error.data", "absent")
    return body, problems


NOT_AN_ENVELOPE = "not-an-envelope"  # key of the stand-in body check_envelope returns for a plain 4xx refusal


def check_envelope(response: requests.Response, what: str = "", refused_request: bool = False) -> dict[str, Any]:
    """Assert a well-formed envelope with a documented code; return the body.

    `refused_request`: the request is one the document forbids (malformed, arbitrary, missing fields). A
    plain HTTP 4xx answer to it (a framework's own error page, e.g. Spring's 415) hurts no integrator who
    follows the document: a leniency, and a stand-in body `{code: <HTTP status>, not-an-envelope: True}`.
    """
    KIT.blame(response)
    body, problems = envelope_problems(response)
    if problems and refused_request and 400 <= response.status_code < 500:
        KIT.lenient(
            "error answer not an envelope",
            f"{what or describe(response)}: HTTP {response.status_code}: {'; '.join(problems)}",
            response,
        )
        return {"code": response.status_code, "message": "", "data": None, NOT_AN_ENVELOPE: True}
    assert not problems, f"{what or describe(response)}: not a valid envelope: {'; '.join(problems)}"
    assert body is not None
    note_http_status(response, body)
    return body


def expect_success(response: requests.Response, what: str = "") -> Any:
    """Assert the success envelope: code exactly 200 with `data` present and not null; return data."""
    body = check_envelope(response, what)
    label = what or describe(response)
    assert body["code"] == 200, f"{label}: expected success code 200, got {body['code']}: {body['message']!r}"
    assert body.get("data") is not None, f"{label}: success envelope has data null"
    return body["data"]


def expect_rejected(
    response: requests.Response,
    what: str,
    expected: int = 400,
    *,
    topic: str | None = "validation.code",
    lenient: str | None = None,
    exact: bool = False,
) -> dict[str, Any]:
    """Assert an error envelope (documented, non-200 code) for a request the document refuses.

    Success is a violation, or — when `lenient` names the check — a leniency (the target accepts what the
    document forbids). Which error code is used is observed under `topic`; with `exact` (403 for a bad token,
    a rule of the document's OAuth) another code is a violation too.
    """
    body = check_envelope(response, what, refused_request=lenient is not None)
    if body["code"] == 200:
        if lenient is not None:
            KIT.lenient(lenient, f"{what}: accepted (code 200)", response)
            return body
        raise AssertionError(f"{what}: expected an error (code {expected}), but the target answered success")
    if exact:
        assert body["code"] == expected, f"{what}: expected code {expected}, got {body['code']}: {body['message']!r}"
    if topic is not None:
        KIT.observe(topic, f"HTTP {body['code']} (no envelope)" if body.get(NOT_AN_ENVELOPE) else str(body["code"]))
    return body


def note_http_status(response: requests.Response, body: dict[str, Any]) -> None:
    """Observation: which HTTP status carries each error code (the document is silent)."""
    code = body.get("code")
    if isinstance(code, int) and code in ERROR_CODES and response.status_code != 405:  # 405: a wrong method
        KIT.observe(f"http-status.code-{code}", str(response.status_code))


def id_shape(value: str) -> str:
    """A stable description of an id's shape: `in + 13 digits`, `24 hex`, or `other (N chars)`."""
    match = re.fullmatch(r"([A-Za-z]*)([0-9]+)", value)
    if match:
        return f"{match.group(1)} + {len(match.group(2))} digits" if match.group(1) else f"{len(value)} digits"
    if re.fullmatch(r"[0-9a-f]+", value):
        return f"{len(value)} hex"
    return f"other ({len(value)} chars)"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_epoch_ms(value: Any) -> bool:
    return is_int(value) and EPOCH_MS_RANGE[0] <= value < EPOCH_MS_RANGE[1]


def legal_status_path(statuses: list[str]) -> str | None:
    """Why a sequence of distinct statuses is not a legal lifecycle, or None if it is one."""
    for s in statuses:
        if s not in STATUSES:
            return f"illegal status {s!r} (allowed: {', '.join(STATUSES)})"
    for a, b in itertools.pairwise(statuses):
        if a in TERMINAL:
            return f"{a} -> {b}: a terminal status was left"
        if _RANK[b] < _RANK[a]:
            return f"{a} -> {b}: the run went backwards"
    return None


def collapse(items: list[str]) -> list[str]:
    """Drop immediate repeats (retries of one status): A A B B A -> A B A."""
    out: list[str] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out
