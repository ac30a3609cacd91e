"""Keeping one process's objects in step with a shared store: the state lock and other processes' changes."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from mock_server.domain.persistence import delivery_from, run_from, scene_from, update_run, update_scene

if TYPE_CHECKING:
    from mock_server.domain.platform import Platform


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
