"""Does everything due up to a time, in time order: scene firings, node steps, callback attempts."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import wait
from typing import Any, Callable, Iterator

from mock_server.domain.callbacks import Outbox
from mock_server.domain.clock import Clock
from mock_server.domain.scheduler import Scheduler


class Engine:
    """Runs scheduled events under the platform lock; a ticker thread keeps up with the clock by itself."""

    def __init__(self, clock: Clock, scheduler: Scheduler, outbox: Outbox, lock: threading.RLock,
                 on_error: Callable[[BaseException], None] | None = None,
                 heartbeat: Callable[[], None] | None = None, beat: float = 0.5, gather: float = 0.0) -> None:
        self._clock, self._scheduler, self._outbox, self._lock = clock, scheduler, outbox, lock
        self._process = threading.Lock()  # one runner at a time: the ticker or an advance
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        # The ticker calls `heartbeat` at least every `beat` seconds; after each round it waits `gather`
        # seconds so steps falling due meanwhile are done together (one transaction with a shared store).
        self._heartbeat, self._beat, self._gather = heartbeat, beat, gather

    # Events done under one hold of the lock: with a shared store that is one transaction for many steps,
    # and a request waits for at most one batch.
    BATCH = 64

    def run_until(self, until: float, wait_callbacks: bool) -> int:
        """Process every event due at or before `until`; with wait_callbacks, also every attempt they start."""
        done = 0
        current = float("-inf")
        with self._process:
            while True:
                nxt = self._scheduler.peek()
                # Attempts on the wire may schedule retries before `nxt`: let them land before time moves on
                # (checked only when time is about to move, so a burst at one instant stays linear).
                if wait_callbacks and (nxt is None or nxt > current):
                    inflight = self._on_the_wire()
                    if inflight:
                        wait(inflight)
                        continue
                if nxt is None or nxt > until:
                    break
                with self._lock:
                    for _ in range(self.BATCH):
                        nxt = self._scheduler.peek()
                        if nxt is None or nxt > until or (wait_callbacks and nxt > current and self._on_the_wire()):
                            break  # nothing more due, or time would move while attempts are on the wire
                        event = self._scheduler.pop_due(until)
                        if event is None:
                            break
                        self._clock.set_at_least(event.due)
                        current = event.due
                        if self._scheduler.stale(event):
                            continue  # the state it was scheduled on was reloaded meanwhile (another process's reset)
                        try:
                            event.fn(event.due)
                        except Exception as exc:  # one broken event must not stop the engine
                            if self._on_error:
                                self._on_error(exc)
                        done += 1
        return done

    def _on_the_wire(self) -> list[Any]:
        return [f for f in self._outbox.inflight() if not f.done()]

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
            if self._heartbeat is not None:
                try:
                    self._heartbeat()
                except Exception as exc:  # a busy or vanished state file must not end the ticker
                    if self._on_error:
                        self._on_error(exc)
            with self._scheduler.changed:  # peek and wait under one lock, so no notify is missed
                now = self._clock.now()
                nxt = self._scheduler.peek()
                if nxt is None or nxt > now:
                    # Virtual time only moves by an advance, which processes for itself; real time is polled.
                    far = nxt is None or self._clock.mode == "virtual"
                    self._scheduler.changed.wait(self._beat if far else min(max(nxt - now, 0.001), self._beat))
                    continue
            self.run_until(now, wait_callbacks=False)
            if self._gather > 0:
                self._stop.wait(self._gather)  # recorded times stay the due times; only the work runs late
