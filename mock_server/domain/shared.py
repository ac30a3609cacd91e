"""One process's link to its store: the state lock, catching up with other processes, the scheduler lease."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from mock_server.domain.components import Components
from mock_server.domain.lock import StateLock
from mock_server.domain.scheduler import Scheduler
from mock_server.domain.store import RELOAD, Store

log = logging.getLogger("dpa_mock.engine")


class StoreSync:
    """Keeps this process's components in step with the store, and knows whether this process leads.

    With an in-memory or single-process store this is only the lock (and, for a durable store, the
    restore at start). With a shared store (several processes, one state) every outermost hold of the lock
    is a write transaction that first catches up with the others' changes; `reading()` catches up without
    one; and one process at a time, the leader, holds the lease that lets it schedule and send callbacks.
    """

    def __init__(
        self,
        store: Store,
        components: Components,
        scheduler: Scheduler,
        on_leader: Callable[[bool], None],
        poll_interval: float,
    ) -> None:
        self.store, self._components, self._scheduler = store, components, scheduler
        self.shared = store.shared
        self.lock = StateLock(self._begin, store.commit) if self.shared else StateLock()
        # Until it knows it holds the lease, a process sharing the store neither schedules nor dispatches.
        self.leader = not self.shared
        self._on_leader = on_leader
        self._poll_interval = poll_interval
        self._keeper: threading.Thread | None = None
        self._stopping = threading.Event()

    def open(self) -> None:
        """Load what the store remembers (a shared store: by the first transaction, which claims the lease)."""
        if self.shared:
            with self.lock:
                pass
        elif self.store.durable:
            with self.lock:
                self.reload()

    def start(self) -> None:
        if self.shared and self._keeper is None:
            self._keeper = threading.Thread(target=self._keep, name="dpa-lease", daemon=True)
            self._keeper.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._keeper is not None:
            self._keeper.join(timeout=5)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock for a read, having caught up with other processes first (no transaction)."""
        with self.lock.mutex:
            if self.shared:
                self._catch_up()
            yield

    def reload(self) -> None:
        """Rebuild every component from the store (start, lease change, another process's reset)."""
        self._scheduler.clear()
        self._components.restore(self.store.load())

    def beat(self) -> None:
        """Take the lease if it is free, renew it if held, pick up others' changes (the keeper, every interval)."""
        if self.store.lease_available() or (self.leader and not self.store.holds_lease()):
            with self.lock:
                pass
        else:
            with self.reading():
                pass

    def _begin(self) -> None:
        self.store.begin()
        try:
            leader = self.store.claim_lease()
            if leader != self.leader:
                self._set_leader(leader)
            else:
                self._catch_up()
        except BaseException:
            self.store.commit()
            raise

    def _catch_up(self) -> None:
        changes = self.store.poll()
        if changes == RELOAD:
            with self.lock:  # a reload writes (the clock, coalesced scenes): in a transaction (reentrant in _begin)
                self.reload()
        elif changes:
            for kind, key, record in changes:
                self._components.apply(kind, key, record)

    def _set_leader(self, leader: bool) -> None:
        if leader:
            log.info("this process now runs the scheduler and the callback dispatcher")
        else:
            log.warning("this process lost the scheduler lease to another process")
        self.leader = self._scheduler.enabled = leader
        self._on_leader(leader)
        self.reload()

    def _keep(self) -> None:
        # Its own thread, so a long advance or a slow callback never delays renewing the lease.
        while not self._stopping.wait(self._poll_interval):
            try:
                self.beat()
            except Exception:  # a busy or vanished state file must not end the keeper
                log.exception("catching up with the shared state failed")
