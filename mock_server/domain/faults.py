"""Injected faults: matching requests answer a chosen business code or HTTP status, or slow down."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

from mock_server.domain.errors import ValidationError
from mock_server.domain.lock import StateLock

# Every request is matched against each fault's `path` while faults are set: with a backtracking engine one
# pattern like (.*)*Z held the server thread for ever, /__admin included. RE2 matches in linear time, and
# refuses (rather than runs slowly) what it cannot do so: backreferences, lookaround.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the operator's 400, not a line on stderr
RE2_SYNTAX = "https://github.com/google/re2/wiki/Syntax"


@functools.lru_cache(maxsize=256)
def path_pattern(pattern: str) -> Any:
    """The compiled RE2 pattern (cached: matched on every request while the fault is set); raises re2.error."""
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _pattern_problem(pattern: str) -> str | None:
    try:
        path_pattern(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return None


@dataclass
class Fault:
    id: int
    method: str | None
    path: str | None
    operation_id: str | None
    code: int | None
    http_status: int | None
    latency_ms: float
    times: int | None  # None: until cleared
    remaining: int | None
    message: str
    hits: int = 0

    def matches(self, method: str, path: str, operation_id: str | None) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.operation_id and self.operation_id != operation_id:
            return False
        if not self.path:
            return True
        try:
            pattern = path_pattern(self.path)
        except re2.error:
            return False  # saved in a state file before patterns were checked: it can never be used
        return pattern.search(path) is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "operationId": self.operation_id,
            "code": self.code,
            "httpStatus": self.http_status,
            "latencyMs": self.latency_ms,
            "times": self.times,
            "remaining": self.remaining,
            "message": self.message,
            "hits": self.hits,
        }


# Names a test author might reach for first, read as the documented ones.
_ALIASES = {
    "count": "times",
    "n": "times",
    "http_status": "httpStatus",
    "status": "httpStatus",
    "latency_ms": "latencyMs",
    "delayMs": "latencyMs",
    "delay_ms": "latencyMs",
    "operation_id": "operationId",
    "operation": "operationId",
    "businessCode": "code",
    "business_code": "code",
    "pathRegex": "path",
}


def _canonical(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        name = _ALIASES.get(key, key)
        if name in out and out[name] != value:
            raise ValidationError(f"{key}: conflicts with {name}")
        out[name] = value
    unknown = set(out) - {"method", "path", "operationId", "code", "httpStatus", "latencyMs", "times", "message"}
    if unknown:
        raise ValidationError(
            f"{sorted(unknown)[0]}: unknown fault field (use method, path, operationId, code, "
            "httpStatus, latencyMs, times, message)"
        )
    for name in ("code", "httpStatus", "times"):
        if out.get(name) is not None and (isinstance(out[name], bool) or not isinstance(out[name], int)):
            raise ValidationError(f"{name}: must be an integer")
    latency = out.get("latencyMs")
    if latency is not None and (
        isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency) or latency < 0
    ):  # 1e400 parses as inf
        raise ValidationError("latencyMs: must be a finite number >= 0")
    return out


class Faults:
    """The injected faults, first match wins; the component of kind `fault`."""

    kind = "fault"

    def __init__(
        self,
        lock: StateLock | None = None,
        on_change: Callable[[Fault], None] | None = None,
        on_forget: Callable[[int], None] | None = None,
    ) -> None:
        self._faults: list[Fault] = []
        self._last_id = 0
        # The platform's lock when state is shared: a fault's `times` then counts across processes.
        self._lock: StateLock | threading.Lock = lock if lock is not None else threading.Lock()
        self._on_change, self._on_forget = on_change, on_forget

    def add(
        self,
        spec: dict[str, Any],
        operations: Collection[str] | None = None,
        methods: Collection[str] | None = None,
    ) -> Fault:
        """Add a fault; `operations` and `methods`, when given, are all a request can carry: others never match."""
        spec = _canonical(spec)
        for name in ("method", "path", "operationId", "message"):
            if spec.get(name) is not None and not isinstance(spec[name], str):
                raise ValidationError(f"{name}: must be a string")
        path = spec.get("path")
        if path:
            problem = _pattern_problem(path)
            if problem is not None:
                raise ValidationError(
                    f"path: cannot be used as a fault pattern ({problem}); faults match paths with RE2, in linear "
                    f"time, which has no backreferences or lookaround (syntax: {RE2_SYNTAX})"
                )
        operation_id = spec.get("operationId")
        if operation_id and operations is not None and operation_id not in operations:
            raise ValidationError(
                f"operationId: no operation {operation_id!r}, so the fault could never match; "
                f"use one of {', '.join(sorted(operations))}"
            )
        method = spec.get("method")
        if method and methods is not None and method.upper() not in methods:
            raise ValidationError(
                f"method: the emulator serves no {method!r} requests, so the fault could never match; "
                f"use one of {', '.join(sorted(methods))}"
            )
        code, status = spec.get("code"), spec.get("httpStatus")
        latency = float(spec.get("latencyMs") or 0)
        if code is None and status is None and latency <= 0:
            raise ValidationError("a fault needs at least one of code, httpStatus or latencyMs")
        if status is not None and not 100 <= int(status) <= 599:
            raise ValidationError("httpStatus: must be an HTTP status between 100 and 599")
        times = spec.get("times")
        if times is not None and int(times) < 1:
            raise ValidationError("times: must be >= 1 (omit it for 'until cleared')")
        with self._lock:
            self._last_id += 1
            fault = Fault(
                self._last_id,
                spec.get("method"),
                path,
                spec.get("operationId"),
                None if code is None else int(code),
                None if status is None else int(status),
                latency,
                None if times is None else int(times),
                None if times is None else int(times),
                spec.get("message") or "injected fault",
            )
            self._faults.append(fault)
            if self._on_change is not None:
                self._on_change(fault)
        return fault

    def active(self) -> bool:
        return bool(self._faults)

    def take(self, method: str, path: str, operation_id: str | None = None) -> Fault | None:
        """The first fault matching the request, counting one use of it."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, operation_id):
                    fault.hits += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                            if self._on_forget is not None:
                                self._on_forget(fault.id)
                            return fault
                    if self._on_change is not None:
                        self._on_change(fault)
                    return fault
        return None

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            for fault in self._faults:
                if self._on_forget is not None:
                    self._on_forget(fault.id)
            self._faults.clear()

    # -- the component interface ------------------------------------------------------------------
    def reset(self) -> None:
        """Drop every fault from memory (the store is emptied by the reset itself)."""
        self._faults = []

    def restore(self, records: dict[str, dict[str, Any]]) -> None:
        self._faults = []
        for key, record in records.items():
            self.apply(key, record)

    def apply(self, key: str, record: dict[str, Any] | None) -> None:
        """A fault another process added, used or removed."""
        fault_id = int(key)
        self._last_id = max(self._last_id, fault_id)
        kept = [f for f in self._faults if f.id != fault_id]
        if record is not None:
            kept.append(Fault(**record))
            kept.sort(key=lambda f: f.id)  # the first matching fault wins, as in one process
        self._faults = kept
