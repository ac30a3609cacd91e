"""Where state goes besides memory: a Store keeps records (plain dicts) of codes, runs, scenes, deliveries, clock.

A shared store (SQLite) is the source of truth for several processes: each catches up on the others'
changes (`poll`) before it reads or writes, writes inside `begin`/`commit`, and one process at a time
holds the lease that lets it run the scheduler and the callback dispatcher.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

Records = dict[str, dict[str, dict[str, Any]]]  # kind -> key -> record
RELOAD: Literal["reload"] = "reload"  # poll(): too much changed (a reset, a long absence): rebuild from load()
Changes = None | Literal["reload"] | list[tuple[str, str, dict[str, Any] | None]]


class Store(Protocol):
    durable: bool
    shared: bool

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Remember the latest record of one thing (a run, a scene, a delivery, a code, the clock)."""

    def delete(self, kind: str, key: str) -> None:
        """Forget one thing."""

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """One record as stored now."""

    def load(self) -> Records:
        """Everything remembered, to rebuild the platform after a restart."""

    def clear(self) -> None:
        """Forget everything (/__admin/reset)."""

    def close(self) -> None:
        """Release the underlying resource."""

    def begin(self) -> None:
        """Start a write transaction that no other process interleaves with."""

    def commit(self) -> None:
        """End it."""

    def poll(self) -> Changes:
        """Other processes' changes since the last poll."""

    def lease_available(self) -> bool:
        """Could this process take or renew the scheduler lease now (a read, no write)?"""

    def claim_lease(self) -> bool:
        """Inside a transaction: keep or take the scheduler lease; False while another live process holds it."""

    def holds_lease(self) -> bool:
        """Does this process hold an unexpired lease (a read)?"""


class MemoryStore:
    """The default: state lives only in the platform's objects; nothing survives the process."""

    durable = False
    shared = False

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        return None

    def delete(self, kind: str, key: str) -> None:
        return None

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return None

    def load(self) -> Records:
        return {}

    def clear(self) -> None:
        return None

    def close(self) -> None:
        return None

    def begin(self) -> None:
        return None

    def commit(self) -> None:
        return None

    def poll(self) -> Changes:
        return None

    def lease_available(self) -> bool:
        return True

    def claim_lease(self) -> bool:
        return True

    def holds_lease(self) -> bool:
        return True
