"""What every answered request leaves behind: a redacted journal entry and an access-log line."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any
from urllib.parse import urlencode

from mock_server.domain.clock import to_ms
from mock_server.domain.platform import Platform

access_log = logging.getLogger("dpa_mock.access")
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "code",
        "access_token",
        "refresh_token",
        "password",
        "token",
        "authorization",
        "secret",
        "jwt_secret",
        "admin_token",
    }
)
MASK = "***"
_NORMALISED = frozenset(k.replace("_", "") for k in SECRET_KEYS)
_KEY_PARTS = re.compile(r"[\[\].]+")


def is_secret_key(key: object) -> bool:
    """`client_secret`, `Client-Secret`, `clientSecret`, `form[client_secret]`: all one secret field."""
    if not isinstance(key, str):
        return False
    return any(part.lower().replace("_", "").replace("-", "") in _NORMALISED for part in _KEY_PARTS.split(key) if part)


def redact(values: Any) -> Any:
    """A copy of a parsed body or query with every secret field's value masked, however deep."""
    if isinstance(values, dict):
        return {k: (MASK if is_secret_key(k) else redact(v)) for k, v in values.items()}
    if isinstance(values, list):
        return [redact(v) for v in values]
    return values


def secret_values(values: Any, out: set[str] | None = None) -> set[str]:
    """The values of every secret field in a parsed body or query (to keep them out of error messages)."""
    out = set() if out is None else out
    if isinstance(values, dict):
        for key, value in values.items():
            if is_secret_key(key) and not isinstance(value, (dict, list)) and value is not None:
                out.add(str(value))
            else:
                secret_values(value, out)
    elif isinstance(values, list):
        for value in values:
            secret_values(value, out)
    return out


def opaque(data: bytes) -> str:
    """What the journal keeps of a body it cannot parse: a secret may hide anywhere in it, so only its size
    and a hash (to tell two bodies apart)."""
    return f"<{len(data)} bytes, not parsed; sha256 {hashlib.sha256(data).hexdigest()[:16]}>"


def record_exchange(
    platform: Platform,
    log_requests: bool,
    *,
    method: str,
    path: str,
    query: dict[str, Any],
    status: int,
    code: int | None,
    elapsed_ms: float,
    body: Any,
    remote_addr: str | None,
) -> None:
    """Journal and log one answered request; `query` and `body` must already be redacted."""
    # Admin reads (the dashboard polls them every second) would push real traffic out of the window.
    if not (method == "GET" and path.startswith("/__admin")):
        platform.journal.record(
            {
                "at": to_ms(platform.clock.now()),
                "method": method,
                "path": path,
                "query": query,
                "status": status,
                "code": code,
                "durationMs": round(elapsed_ms, 3),
                "body": body,
            }
        )
    if log_requests:
        target = path + ("?" + urlencode(query, safe="*") if query else "")  # secrets as *** too
        access_log.info("%s %s %s -> %s code=%s %.1fms", remote_addr, method, target, status, code, elapsed_ms)
