"""Instance ids shaped like the document's (`in` + epoch milliseconds), unique and increasing."""

from __future__ import annotations

import threading


class IdGenerator:
    """`in1606749734084`-style ids: the clock's milliseconds, bumped so no two ids are ever equal."""

    def __init__(self, prefix: str = "in") -> None:
        self._prefix = prefix
        self._last = 0
        self._lock = threading.Lock()

    def next(self, now_ms: int) -> str:
        with self._lock:
            # Never reset, even by /__admin/reset: ids stay unique for an integrator's idempotency keys.
            self._last = max(now_ms, self._last + 1)
            return f"{self._prefix}{self._last}"

    def bump(self, last_ms: int) -> None:
        """Never hand out an id at or below one already given (ids restored from a store)."""
        with self._lock:
            self._last = max(self._last, last_ms)
