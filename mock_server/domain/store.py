"""Where state goes besides memory: a Store keeps records (plain dicts) of codes, runs, scenes, deliveries, clock."""

from __future__ import annotations

from typing import Any, Protocol

Records = dict[str, dict[str, dict[str, Any]]]  # kind -> key -> record


class Store(Protocol):
    durable: bool

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        """Remember the latest record of one thing (a run, a scene, a delivery, a code, the clock)."""

    def delete(self, kind: str, key: str) -> None:
        """Forget one thing."""

    def load(self) -> Records:
        """Everything remembered, to rebuild the platform after a restart."""

    def clear(self) -> None:
        """Forget everything (/__admin/reset)."""

    def close(self) -> None:
        """Release the underlying resource."""


class MemoryStore:
    """The default: state lives only in the platform's objects; nothing survives the process."""

    durable = False

    def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        return None

    def delete(self, kind: str, key: str) -> None:
        return None

    def load(self) -> Records:
        return {}

    def clear(self) -> None:
        return None

    def close(self) -> None:
        return None
