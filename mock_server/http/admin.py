"""The emulator's own /__admin API (openapi/admin.yaml): reset, clock, runs, scenes, callbacks, journal, faults."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request

from mock_server.domain.clock import check_advance, to_ms
from mock_server.domain.errors import AuthError, ValidationError
from mock_server.http.envelope import ok
from mock_server.http.routing import current_platform, operation
from mock_server.http.spec import admin_contract, vendor_contract
from mock_server.transport import CALLBACK_MARKER

bp = Blueprint("admin", __name__)
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
MAX_FAULT_LATENCY_MS = 60_000  # a fault's delay holds a server thread: a minute at most


def guard() -> None:
    """Loopback clients only, unless an admin token is configured, which is then always required.

    Never the emulator's own callback sender, whatever the URL it was given: it posts from loopback, so a
    callbackUrl naming /__admin would otherwise let any API client reset the emulator or resume others' runs.
    """
    if CALLBACK_MARKER in request.headers:
        raise AuthError(
            f"admin API: refused a request carrying {CALLBACK_MARKER}, the header of the emulator's own status "
            "callbacks: a callbackUrl cannot point at the admin API (this delivery fails and is given up)"
        )
    token = current_app.config["DPA_SETTINGS"].admin_token
    if token:
        if not hmac.compare_digest(request.headers.get("X-Admin-Token", "").encode(), token.encode()):
            raise AuthError("admin API: missing or wrong X-Admin-Token header")
        return
    forwarded = [name for name in _PROXY_HEADERS if name in request.headers]
    if forwarded:
        # A reverse proxy on this host makes every remote client look like loopback: only a token can tell.
        raise AuthError(
            f"admin API: request came through a proxy ({', '.join(forwarded)} header); "
            "start dpa-mock with --admin-token and send X-Admin-Token to use it through one"
        )
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        address = None
    # A dual-stack socket reports IPv4 loopback as ::ffff:127.0.0.1, which is_loopback does not cover.
    mapped = getattr(address, "ipv4_mapped", None)
    loopback = address is not None and (address.is_loopback or (mapped is not None and mapped.is_loopback))
    if not loopback:
        raise AuthError("admin API answers loopback clients only; start dpa-mock with --admin-token to open it")


def _admin(op_id: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return operation(bp, admin_contract(), op_id, guard=guard)


def clock_info() -> dict[str, Any]:
    p = current_platform()
    now = p.now()
    return {
        "mode": p.clock.mode,
        "now": now,
        "nowMs": to_ms(now),
        "offset": getattr(p.clock, "offset", 0.0),
        "timezone": p.settings.timezone,
    }


@_admin("adminReset")
def reset(**_: Any) -> Response:
    current_platform().reset()
    return ok(None)


@_admin("adminGetClock")
def get_clock(**_: Any) -> Response:
    return ok(clock_info())


@_admin("adminAdvanceClock")
def advance(body: dict[str, Any], **_: Any) -> Response:
    p = current_platform()
    seconds = float(body["seconds"])
    check_advance(p.now(), seconds)  # before any schedule is computed for the target
    p.advance(seconds)
    return ok(clock_info())


@_admin("adminListRuns")
def list_runs(query: dict[str, Any], **_: Any) -> Response:
    return ok(current_platform().list_runs(query.get("processPlanId"), query.get("status")))


@_admin("adminGetRun")
def get_run(planInstanceId: str, **_: Any) -> Response:
    return ok(current_platform().get_run(planInstanceId))


@_admin("adminResumeRun")
def resume(planInstanceId: str, **_: Any) -> Response:
    p = current_platform()
    p.resume(planInstanceId)
    return ok(p.get_run(planInstanceId))


@_admin("adminListScenes")
def list_scenes(**_: Any) -> Response:
    return ok(current_platform().list_scenes())


@_admin("adminDeleteScene")
def delete_scene(instanceId: str, **_: Any) -> Response:
    return ok(current_platform().delete_scene(instanceId))


@_admin("adminListCallbacks")
def list_callbacks(query: dict[str, Any], **_: Any) -> Response:
    return ok([d.to_dict() for d in current_platform().deliveries(query.get("planInstanceId"))])


@_admin("adminListRequests")
def list_requests(query: dict[str, Any], **_: Any) -> Response:
    return ok(current_platform().journal.recent(query.get("limit")))


@_admin("adminListFaults")
def list_faults(**_: Any) -> Response:
    return ok([f.to_dict() for f in current_platform().list_faults()])


@_admin("adminAddFault")
def add_fault(body: dict[str, Any], **_: Any) -> Response:
    for name in ("latencyMs", "latency_ms", "delayMs"):  # the field and its aliases
        latency = body.get(name)
        if (
            isinstance(latency, (int, float))
            and not isinstance(latency, bool)
            and not 0 <= latency <= MAX_FAULT_LATENCY_MS
        ):
            raise ValidationError(
                f"{name}: must be between 0 and {MAX_FAULT_LATENCY_MS} (a delay holds a server thread), got {latency:g}"
            )
    operations = vendor_contract().operations
    # What a faulted request can carry: the contract's operations and methods, plus HEAD and OPTIONS, which
    # Flask answers at the same paths. A typo there would make a fault that silently never fires.
    methods = {op.method for op in operations.values()} | {"HEAD", "OPTIONS"}
    return ok(current_platform().faults.add(body, operations=operations.keys(), methods=methods).to_dict())


@_admin("adminClearFaults")
def clear_faults(**_: Any) -> Response:
    current_platform().faults.clear()
    return ok(None)
