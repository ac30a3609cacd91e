"""A bounded journal of received requests (already redacted by the HTTP layer)."""

from __future__ import annotations

import collections
import threading
from typing import Any


class Journal:
    def __init__(self, size: int) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(size, 1))
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._entries)
        return items[-limit:] if limit else items

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
