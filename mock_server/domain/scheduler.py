"""A timed event queue on emulator time: what is due, in time order, ties broken by insertion order."""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(slots=True)
class Event:
    due: float
    seq: int
    fn: Callable[[float], Any]
    label: str = ""
    cancelled: bool = False


class Scheduler:
    """Holds future work; `changed` is notified whenever the earliest due time may have moved."""

    def __init__(self) -> None:
        # (due, seq, event) tuples: heap comparisons stay in C instead of a dataclass __lt__.
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = itertools.count()
        self.changed = threading.Condition()

    def at(self, due: float, fn: Callable[[float], Any], label: str = "") -> Event:
        # Due times are kept to the microsecond, so steps that add up to a due time (0.1 + 0.1) reach it.
        event = Event(round(due, 6), next(self._seq), fn, label)
        with self.changed:
            heapq.heappush(self._heap, (event.due, event.seq, event))
            self.changed.notify_all()
        return event

    def peek(self) -> float | None:
        with self.changed:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def pop_due(self, until: float) -> Event | None:
        with self.changed:
            while self._heap and self._heap[0][2].cancelled:
                heapq.heappop(self._heap)
            if self._heap and self._heap[0][0] <= until:
                return heapq.heappop(self._heap)[2]
            return None

    def clear(self) -> None:
        with self.changed:
            self._heap.clear()
            self.changed.notify_all()

    def __len__(self) -> int:
        return len(self._heap)
