"""The one clock everything reads: real (wall time plus an offset) or virtual (moves only when told)."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    mode: str

    def now(self) -> float:
        """Seconds since the epoch, as the emulator sees them."""

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (an offset in real mode)."""

    def set_at_least(self, t: float) -> None:
        """Let the engine pin virtual time to an event's due time; a no-op for real clocks."""

    def reset(self) -> None:
        """Forget any offset or advance."""

    def snapshot(self) -> dict[str, float]:
        """What a durable store keeps of the clock."""

    def restore(self, snapshot: dict[str, float]) -> None:
        """Carry on from a snapshot taken before a restart."""


class RealClock:
    """Wall time plus an offset that /__admin/clock/advance grows."""

    mode = "real"

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def set_at_least(self, t: float) -> None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def snapshot(self) -> dict[str, float]:
        return {"offset": self._offset}

    def restore(self, snapshot: dict[str, float]) -> None:
        with self._lock:
            self._offset = float(snapshot.get("offset", 0.0))


class VirtualClock:
    """Starts at a given instant (default: wall time at creation) and moves only when told."""

    mode = "virtual"

    def __init__(self, start: float | None = None) -> None:
        # Whole milliseconds, so instants computed from it survive the trip through epoch-ms fields.
        self._start = round(time.time(), 3) if start is None else float(start)
        self._now = self._start
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._now - self._start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set_at_least(self, t: float) -> None:
        with self._lock:
            if t > self._now:
                self._now = t

    def reset(self) -> None:
        with self._lock:
            self._now = self._start

    def snapshot(self) -> dict[str, float]:
        return {"start": self._start, "now": self._now}

    def restore(self, snapshot: dict[str, float]) -> None:
        # Virtual time resumes where it stood: the downtime did not happen in it.
        with self._lock:
            self._start = float(snapshot.get("start", self._start))
            self._now = max(float(snapshot.get("now", self._now)), self._start)


def make_clock(mode: str, start: float | None = None) -> Clock:
    if mode == "real":
        return RealClock()
    if mode == "virtual":
        return VirtualClock(start)
    raise ValueError(f"unknown clock mode {mode!r} (expected 'real' or 'virtual')")


def to_ms(t: float) -> int:
    return int(round(t * 1000))
