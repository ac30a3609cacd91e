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
    epoch: int = 0  # the scheduler's epoch when scheduled: an event from before a clear() is stale


class Scheduler:
    """Holds future work; `changed` is notified whenever the earliest due time may have moved."""

    def __init__(self) -> None:
        # (due, seq, event) tuples: heap comparisons stay in C instead of a dataclass __lt__.
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = itertools.count()
        self.changed = threading.Condition()
        self.epoch = 0
        # A process that does not hold the scheduler lease keeps no timed work: another process does it.
        self.enabled = True

    def at(self, due: float, fn: Callable[[float], Any], label: str = "") -> Event:
        # Due times are kept to the microsecond, so steps that add up to a due time (0.1 + 0.1) reach it.
        event = Event(round(due, 6), next(self._seq), fn, label, epoch=self.epoch)
        if not self.enabled:
            event.cancelled = True
            return event
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
            self.epoch += 1  # an event already popped but not yet run is stale too
            self._heap.clear()
            self.changed.notify_all()

    def stale(self, event: Event) -> bool:
        return event.cancelled or event.epoch != self.epoch

    def __len__(self) -> int:
        return len(self._heap)
