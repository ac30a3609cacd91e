"""The stored kinds as components: one small interface (reset, restore from the store, apply a change), one registry.

Every kind of state the platform keeps (codes, runs, scenes, deliveries, faults, advance requests, the clock,
the journal) is a component registered once with `Components`; the platform resets, reloads and catches up by
looping over the registry, never by listing kinds by hand. A component's records live in the store under its
`kind`; the order of registration is the order of a restore (the clock first: the others read the time).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from mock_server.domain.clock import Clock
from mock_server.domain.store import Records, Store

Record = dict[str, Any]


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
    """The registry: every stored kind once, in restore order."""

    def __init__(self) -> None:
        self._all: list[Component] = []
        self._by_kind: dict[str, Component] = {}

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
        for component in self._all:
            component.restore(records.get(component.kind, {}))

    def apply(self, kind: str, key: str, record: Record | None) -> None:
        component = self._by_kind.get(kind)
        if component is not None:  # a kind this version does not know (a newer process wrote it): ignored
            component.apply(key, record)


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
