"""What every answered request leaves behind: a redacted journal entry and an access-log line."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlencode

from mock_server.domain.clock import to_ms
from mock_server.domain.platform import Platform

access_log = logging.getLogger("dpa_mock.access")
SECRET_KEYS = frozenset({"client_secret", "code", "access_token", "refresh_token", "password", "token"})

# A secret's value inside a body that did not parse (broken JSON, text, odd forms).
SECRET_IN_TEXT = re.compile(r"""(["']?(?:%s)["']?\s*[:=]\s*["']?)[^"'&,;\s}]*""" % "|".join(sorted(SECRET_KEYS)))


def redact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in values.items()}


def record_exchange(platform: Platform, log_requests: bool, *, method: str, path: str, query: dict[str, Any],
                    status: int, code: int | None, elapsed_ms: float, body: Any, remote_addr: str | None) -> None:
    """Journal and log one answered request; `query` and `body` must already be redacted."""
    # Admin reads (the dashboard polls them every second) would push real traffic out of the window.
    if not (method == "GET" and path.startswith("/__admin")):
        platform.journal.record({
            "at": to_ms(platform.clock.now()), "method": method, "path": path, "query": query,
            "status": status, "code": code, "durationMs": round(elapsed_ms, 3), "body": body,
        })
    if log_requests:
        target = path + ("?" + urlencode(query, safe="*") if query else "")  # secrets as *** too
        access_log.info("%s %s %s -> %s code=%s %.1fms", remote_addr, method, target, status, code, elapsed_ms)
