"""Keeping one process's objects in step with a shared store: the state lock and other processes' changes."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator

from mock_server.domain.persistence import delivery_from, run_from, scene_from, update_run, update_scene
from mock_server.domain.store import RELOAD

if TYPE_CHECKING:
    from mock_server.domain.platform import Platform

log = logging.getLogger("dpa_mock.engine")


class StateLock:
    """The platform's lock. With a shared store, whoever takes it first (outermost) also takes the store's
    write transaction and first catches up with the other processes; leaving it commits."""

    def __init__(self, begin: Callable[[], None] | None = None, end: Callable[[], None] | None = None) -> None:
        self.mutex = threading.RLock()
        self._begin, self._end = begin, end
        self._depth = 0  # transaction depth, only touched by the thread holding the mutex

    def __enter__(self) -> "StateLock":
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

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._depth == 1 and self._end is not None:
                # Committed even after a domain error: what was changed in memory is what is written.
                self._end()
        finally:
            self._depth -= 1
            self.mutex.release()


def apply_change(platform: "Platform", kind: str, key: str, record: dict[str, Any] | None) -> None:
    """Bring one thing another process changed into this process (scheduling it if this one dispatches)."""
    p = platform
    if kind == "run":
        run = p.runs.runs.get(key)
        if record is None:
            p.runs.forget(key)
            return
        if run is None:
            run = run_from(record, p.catalog)
            if run is None:
                return
        elif not update_run(run, record):
            return
        p.runs.observe(run)
        p.runs.schedule_next(run)  # a no-op unless this process holds the scheduler lease
        p.ids.bump(int(key[2:]))
    elif kind == "delivery":
        if record is None:
            p.outbox.forget(int(key))
        else:
            p.outbox.apply(delivery_from(record), p.clock.now())
    elif kind == "code":
        p.oauth.apply_code(key, record)
    elif kind == "scene":
        _apply_scene(p, key, record)
    elif kind == "fault":
        p.faults.apply(int(key), record)
    elif kind == "advance":
        if record is None:
            p.advance_requests.pop(key, None)
        else:
            p.advance_requests[key] = float(record["target"])
    elif kind == "meta" and key == f"clock-{p.clock.mode}" and record is not None:
        p.clock.restore(record)


def _apply_scene(p: "Platform", key: str, record: dict[str, Any] | None) -> None:
    scene = p.scenes.get(key)
    if record is None:
        if scene is not None:
            scene.active, scene.next_fire = False, None
            del p.scenes[key]
        return
    if scene is not None:
        update_scene(scene, record)
        return
    scene = scene_from(record)
    p.scenes[key] = scene
    p.ids.bump(int(key[2:]))
    if scene.active and scene.next_fire is not None:
        p.arm(scene, scene.next_fire)


class SharedState:
    """The part of the Platform that keeps this process in step with a shared store and its lease."""

    if TYPE_CHECKING:  # provided by Platform
        from mock_server.domain.store import Store
        from mock_server.settings import Settings
        store: Store
        settings: Settings
        lock: StateLock
        leader: bool
        advance_requests: dict[str, float]
        _stopping: threading.Event

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
                self._reload()
        elif changes:
            for kind, key, record in changes:
                apply_change(self, kind, key, record)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock for a read, having caught up with other processes first (no transaction)."""
        with self.lock.mutex:
            if self.shared:
                self._catch_up()
            yield

    def _set_leader(self, leader: bool) -> None:
        if leader:
            log.info("this process now runs the scheduler and the callback dispatcher")
        else:
            log.warning("this process lost the scheduler lease to another process")
        self.leader = self.scheduler.enabled = self.outbox.dispatching = leader
        self._reload()

    def _reload(self) -> None:
        """Rebuild this process's objects from the store (start, lease change, another process's reset)."""
        self.scheduler.clear()
        self.oauth.reset()
        self.runs.reset()
        self.outbox.reset()
        self.scenes.clear()
        self.faults.forget_all()
        self.advance_requests.clear()
        self._restore(self.store.load())

    def heartbeat(self) -> None:
        """Take over the lease if it is free, renew it, pick up others' work (the keeper thread, every beat)."""
        if self.store.lease_available() or (self.leader and not self.store.holds_lease()):
            with self.lock:
                pass
        else:
            with self.reading():
                pass

    def _keep(self) -> None:
        # Its own thread, so a long advance or a slow callback never delays renewing the lease.
        while not self._stopping.wait(self.settings.shared_poll_interval):
            try:
                self.heartbeat()
            except Exception:  # a busy or vanished state file must not end the keeper
                log.exception("catching up with the shared state failed")

    def _serve_pending(self) -> None:
        """The engine's ticker does the advances other processes asked of this lease holder."""
        if self.leader and self.advance_requests:
            self._serve_advances()
