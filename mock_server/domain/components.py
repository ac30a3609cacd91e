"""The stored kinds as components: one small interface (reset, restore from the store, apply a change), one registry.

Every kind of state the platform keeps (codes, runs, scenes, deliveries, faults, advance requests, the clock,
the journal) is a component registered once with `Components`; the platform resets, reloads and catches up by
looping over the registry, never by listing kinds by hand. A component's records live in the store under its
`kind`; the order of registration is the order of a restore (the clock first: the others read the time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from mock_server.domain.catalog import Catalog
from mock_server.domain.clock import Clock
from mock_server.domain.errors import ValidationError
from mock_server.domain.runs import resolve_inputs
from mock_server.domain.store import Records, Store

Record = dict[str, Any]
log = logging.getLogger("dpa_mock.engine")


class RequestJournal(Protocol):
    """The in-memory `Journal`, or a shared store's journal (one table for every process)."""

    def record(self, entry: dict[str, Any]) -> None: ...

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def clear(self) -> None: ...


class Component(Protocol):
    """One stored kind of state, as seen by the platform's reset, reload and catch-up."""

    kind: str  # the store's kind its records are kept under

    def reset(self) -> None:
        """Forget everything (/__admin/reset); the store has been emptied just before."""

    def restore(self, records: dict[str, Record]) -> None:
        """Replace what is in memory with the store's records of this kind (start, lease change, reload)."""

    def apply(self, key: str, record: Record | None) -> None:
        """One record another process wrote (None: it deleted it)."""


C = TypeVar("C", bound=Component)


class Components:
    """The registry: every stored kind once, in restore order. Given the catalog, a restore first screens the
    stored runs and scenes for plans the fixtures no longer have (`screen_orphans`)."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._all: list[Component] = []
        self._by_kind: dict[str, Component] = {}
        self._catalog = catalog
        self._warned: set[str] = set()  # each orphan warning once per process, not at every reload

    def register(self, component: C) -> C:
        if component.kind in self._by_kind:
            raise ValueError(f"two components keep records of kind {component.kind!r}")
        self._all.append(component)
        self._by_kind[component.kind] = component
        return component

    def reset(self) -> None:
        for component in self._all:
            component.reset()

    def restore(self, records: Records) -> None:
        if self._catalog is not None:
            records = screen_orphans(records, self._catalog, self._warn)
        for component in self._all:
            component.restore(records.get(component.kind, {}))

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def apply(self, kind: str, key: str, record: Record | None) -> None:
        component = self._by_kind.get(kind)
        if component is not None:  # a kind this version does not know (a newer process wrote it): ignored
            component.apply(key, record)


def screen_orphans(records: Records, catalog: Catalog, warn: Callable[[str], None]) -> Records:
    """The records to restore, when the fixtures changed under a state file: a run or scene of a plan no longer
    there (or whose nodes or workflows no longer fit it) cannot go on. Nothing is deleted from the store, so
    serving fixtures that have the plan again carries on; meanwhile one warning per plan says what is held
    back, and such a scene is restored inactive (before, it stayed active and every firing failed with a
    KeyError in the log while the clock advance answered 200). Such runs the run engine leaves out itself."""
    runs: dict[str, list[str]] = {}  # plan id -> instance ids held back
    scenes: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for key, run in records.get("run", {}).items():
        plan = catalog.plans.get(run.get("plan_id", ""))
        if plan is None:
            runs.setdefault(run.get("plan_id", ""), []).append(key)
        elif len(run.get("nodes", ())) != sum(len(w.nodes) for w in plan.workflows):
            runs.setdefault(plan.id, []).append(key)
            reasons.setdefault(plan.id, "has other nodes in the fixtures now")
    screened: dict[str, Record] = {}
    for key, scene in records.get("scene", {}).items():
        plan = catalog.plans.get(scene.get("plan_id", ""))
        problem = None
        if plan is None:
            problem = "missing"
        else:
            try:
                resolve_inputs(plan, scene.get("model_var_req"))
            except ValidationError as exc:
                problem = f"no longer takes a saved scene's inputs ({exc})"
        if problem is None or not scene.get("active"):
            screened[key] = scene
            continue
        scenes.setdefault(scene["plan_id"], []).append(key)
        if problem != "missing":
            reasons.setdefault(scene["plan_id"], problem)
        screened[key] = {**scene, "active": False, "next_fire": None}
    for plan_id in sorted({*runs, *scenes}):
        held = []
        if plan_id in runs:
            held.append(f"{_count(runs[plan_id], 'run')} kept in the state file, frozen")
        if plan_id in scenes:
            held.append(f"{_count(scenes[plan_id], 'active scene')} kept, not fired (shown inactive)")
        why = reasons.get(plan_id, "is no longer in the fixtures")
        warn(
            f"stored state of plan {plan_id!r}, which {why}: {'; '.join(held)} "
            "(serve fixtures that have the plan as it was to carry on)"
        )
    return {**records, "scene": screened} if scenes else records


def _count(keys: list[str], what: str) -> str:
    shown = ", ".join(sorted(keys)[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return f"{len(keys)} {what}{'s' if len(keys) > 1 else ''} ({shown})"


class StoredClock:
    """The clock as a component: its snapshot is one `meta` record per clock mode."""

    kind = "meta"

    def __init__(self, clock: Clock, store: Store) -> None:
        self._clock, self._store = clock, store
        self._key = f"clock-{clock.mode}"

    def save(self) -> None:
        if self._store.durable:
            self._store.put(self.kind, self._key, self._clock.snapshot())

    def reset(self) -> None:
        self._clock.reset()
        self.save()

    def restore(self, records: dict[str, Record]) -> None:
        snapshot = records.get(self._key)
        if snapshot:
            self._clock.restore(snapshot)
        else:
            self.save()  # a store that never saw this clock mode starts from where this process stands

    def apply(self, key: str, record: Record | None) -> None:
        if key == self._key and record is not None:
            self._clock.restore(record)


class StoredJournal:
    """The request journal as a component: only a reset touches it (a shared journal keeps its own table)."""

    kind = "journal"

    def __init__(self, journal: RequestJournal) -> None:
        self._journal = journal

    def reset(self) -> None:
        self._journal.clear()

    def restore(self, records: dict[str, Record]) -> None:
        return None  # never in the records: a restart starts a fresh in-memory journal

    def apply(self, key: str, record: Record | None) -> None:
        return None


class AdvanceRequests:
    """Clock advances asked of the lease holder by other processes (shared state only), by key -> target."""

    kind = "advance"

    def __init__(self) -> None:
        self.pending: dict[str, float] = {}

    def reset(self) -> None:
        self.pending.clear()  # a request made before a reset must not move the clock after it

    def restore(self, records: dict[str, Record]) -> None:
        self.pending = {key: float(record["target"]) for key, record in records.items()}

    def apply(self, key: str, record: Record | None) -> None:
        if record is None:
            self.pending.pop(key, None)
        else:
            self.pending[key] = float(record["target"])

    def oldest(self) -> tuple[str, float] | None:
        """The request with the earliest target, if any."""
        return min(self.pending.items(), key=lambda item: item[1]) if self.pending else None
