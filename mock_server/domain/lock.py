"""The state lock: one re-entrant mutex over the platform's objects, and with a shared store its transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable


class StateLock:
    """The platform's lock. With a shared store, whoever takes it first (outermost) also takes the store's
    write transaction and first catches up with the other processes; leaving it commits."""

    def __init__(self, begin: Callable[[], None] | None = None, end: Callable[[], None] | None = None) -> None:
        self.mutex = threading.RLock()
        self._begin, self._end = begin, end
        self._depth = 0  # transaction depth, only touched by the thread holding the mutex

    def __enter__(self) -> StateLock:
        self.mutex.acquire()
        self._depth += 1
        if self._depth == 1 and self._begin is not None:
            try:
                self._begin()
            except BaseException:
                self._depth -= 1
                self.mutex.release()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._depth == 1 and self._end is not None:
                # Committed even after a domain error: what was changed in memory is what is written.
                self._end()
        finally:
            self._depth -= 1
            self.mutex.release()
