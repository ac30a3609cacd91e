"""Timed work on emulator time: the queue of what is due (ties broken by insertion order) and the loop that runs it."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from mock_server.domain.clock import Clock
from mock_server.domain.lock import StateLock


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


class EventLoop:
    """Runs the scheduler's due events under the state lock; a ticker thread keeps up with the clock by itself.

    (The run and scene *engines* decide what to schedule; this loop only runs it, in time order.)
    """

    # Events done under one hold of the lock: with a shared store that is one transaction for many steps,
    # and a request waits for at most one batch.
    BATCH = 64

    def __init__(
        self,
        clock: Clock,
        scheduler: Scheduler,
        inflight: Callable[[], list[Future[None]]],
        lock: StateLock,
        on_error: Callable[[BaseException], None] | None = None,
        each_round: Callable[[], None] | None = None,
        max_wait: float = 0.5,
        gather: float = 0.0,
    ) -> None:
        self._clock, self._scheduler, self._inflight, self._lock = clock, scheduler, inflight, lock
        self._process = threading.Lock()  # one runner at a time: the ticker or an advance
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        # The ticker calls `each_round` at least every `max_wait` seconds; after each round it waits `gather`
        # seconds so steps falling due meanwhile are done together (one transaction with a shared store).
        self._each_round, self._max_wait, self._gather = each_round, max_wait, gather

    def run_until(self, until: float, wait_callbacks: bool) -> int:
        """Process every event due at or before `until`; with wait_callbacks, also every attempt they start."""
        done = 0
        with self._process:
            while True:
                nxt = self._scheduler.peek()
                if self._stop.is_set():
                    break  # the loop is stopping (an advance in flight ends here too)
                if nxt is None or nxt > until:
                    # Time does not wait for attempts on the wire: what an answer schedules (the retry, the
                    # instance's next status) belongs to that instance's queue alone and is timed from the
                    # attempt's own due time, so it lands at its proper time even when scheduled after later
                    # events ran. Attempts of different instances thus share the worker pool; here, at the end,
                    # the answers still out are awaited and what they scheduled up to `until` is done too.
                    inflight = self._on_the_wire() if wait_callbacks else []
                    if inflight:
                        wait(inflight, return_when=FIRST_COMPLETED)
                        continue
                    break  # nothing more due
                with self._lock:
                    for _ in range(self.BATCH):
                        event = self._scheduler.pop_due(until)
                        if event is None:
                            break
                        self._clock.set_at_least(event.due)
                        if self._scheduler.stale(event):
                            continue  # the state it was scheduled on was reloaded meanwhile (another process's reset)
                        try:
                            event.fn(event.due)
                        except Exception as exc:  # noqa: BLE001 - one broken event must not stop the loop (it is logged)
                            if self._on_error:
                                self._on_error(exc)
                        done += 1
        return done

    def _on_the_wire(self) -> list[Future[None]]:
        return [f for f in self._inflight() if not f.done()]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the runner lock: no event is processed meanwhile."""
        with self._process:
            yield

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._tick, name="dpa-engine", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._scheduler.changed:
            self._scheduler.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _tick(self) -> None:
        while not self._stop.is_set():
            if self._each_round is not None:
                try:
                    self._each_round()
                except Exception as exc:  # noqa: BLE001 - a busy or vanished state file must not end the ticker
                    if self._on_error:
                        self._on_error(exc)
            with self._scheduler.changed:  # peek and wait under one lock, so no notify is missed
                now = self._clock.now()
                nxt = self._scheduler.peek()
                if nxt is None or nxt > now:
                    # Virtual time only moves by an advance, which processes for itself; real time is polled.
                    if nxt is None or self._clock.mode == "virtual":
                        self._scheduler.changed.wait(self._max_wait)
                    else:
                        self._scheduler.changed.wait(min(max(nxt - now, 0.001), self._max_wait))
                    continue
            self.run_until(now, wait_callbacks=False)
            if self._gather > 0:
                self._stop.wait(self._gather)  # recorded times stay the due times; only the work runs late
