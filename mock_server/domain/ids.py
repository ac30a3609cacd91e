"""Instance ids shaped like the document's (`in` + epoch milliseconds), unique and increasing; or, as a profile
chooses (setting plan_instance_id_format), 19 digits or a UUID."""

from __future__ import annotations

import threading
import uuid


class IdGenerator:
    """`in1606749734084`-style ids: the clock's milliseconds, bumped so no two ids are ever equal."""

    def __init__(self, prefix: str = "in") -> None:
        self._prefix = prefix
        self._last = 0
        self._lock = threading.Lock()

    def next(self, now_ms: int, shape: str = "in-millis") -> str:
        """A fresh id: `in-millis` (prefix + milliseconds), `digits` (milliseconds + 6 digits, 19 in all
        today, like a Java long), or `uuid`."""
        if shape == "uuid":
            return str(uuid.uuid4())
        with self._lock:
            # Never reset, even by /__admin/reset: ids stay unique for an integrator's idempotency keys.
            self._last = max(now_ms, self._last + 1)
            last = self._last
        if shape == "digits":
            return f"{last}{uuid.uuid4().int % 1_000_000:06d}"
        return f"{self._prefix}{last}"

    def bump(self, last_ms: int) -> None:
        """Never hand out an id at or below one already given (ids restored from a store)."""
        with self._lock:
            self._last = max(self._last, last_ms)

    def bump_past(self, given: str) -> None:
        """`bump` by an id of any shape this generator makes (a UUID holds no time: nothing to do)."""
        millis = millis_of(given, self._prefix)
        if millis is not None:
            self.bump(millis)


def millis_of(given: str, prefix: str = "in") -> int | None:
    """The milliseconds an id was made at, or None for a UUID (or anything else)."""
    if given.startswith(prefix) and given[len(prefix) :].isdigit():
        return int(given[len(prefix) :])
    if given.isdigit() and len(given) > 6:
        return int(given[:-6])
    return None
