"""The one clock everything reads: real (wall time plus an offset) or virtual (moves only when told)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Protocol, TypeGuard

from mock_server.domain.errors import ValidationError

log = logging.getLogger("dpa_mock.clock")

# The latest instant the emulator represents: dates (scene arithmetic, ISO strings) stop at the year 9999, and
# schedules are computed ahead of now, so the clock stops well before: 9000-01-01T00:00:00Z.
MAX_INSTANT = 221_845_392_000.0
MAX_INSTANT_TEXT = "9000-01-01T00:00:00Z"


def check_advance(now: float, seconds: object) -> None:
    """A ValidationError (a 400) unless moving the clock from `now` by `seconds` stays representable; `seconds`
    may be anything a request body held."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise ValidationError(f"seconds: must be a finite number >= 0, got {seconds!r}")
    if now + seconds > MAX_INSTANT:
        room = max(0, int(MAX_INSTANT - now))
        raise ValidationError(
            f"seconds: {seconds:g} would move the clock past {MAX_INSTANT_TEXT}, the latest "
            f"instant the emulator represents; at most {room} seconds from now"
        )


def _representable(t: object) -> TypeGuard[float]:
    return isinstance(t, (int, float)) and math.isfinite(t) and 0 <= t <= MAX_INSTANT


class Clock(Protocol):
    mode: str

    def now(self) -> float:
        """Seconds since the epoch, as the emulator sees them."""

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (an offset in real mode)."""

    def set_at_least(self, t: float) -> None:
        """Let the engine pin virtual time to an event's due time; a no-op for real clocks."""

    def stopwatch(self) -> float:
        """A reading whose differences are the emulator time that work on the wire took (a callback attempt):
        wall seconds in real mode, whatever advances happen meanwhile; always 0 in virtual mode, where such
        work takes no time."""

    def reset(self) -> None:
        """Forget any offset or advance."""

    def snapshot(self) -> dict[str, float]:
        """What a durable store keeps of the clock."""

    def restore(self, snapshot: Mapping[str, object]) -> None:
        """Carry on from a snapshot taken before a restart (read back from the store's JSON: checked)."""


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
            check_advance(self.now(), seconds)
            self._offset += seconds

    def set_at_least(self, t: float) -> None:
        return None

    def stopwatch(self) -> float:
        return time.monotonic()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def snapshot(self) -> dict[str, float]:
        return {"offset": self._offset}

    def restore(self, snapshot: Mapping[str, object]) -> None:
        offset = snapshot.get("offset", 0.0)
        if not (isinstance(offset, (int, float)) and _representable(time.time() + offset)):
            # Written by an older version that let an advance overflow: every request would fail with it.
            log.warning(
                "state: the saved real-clock offset %r s is beyond what the clock represents (up to %s); "
                "starting with no offset instead",
                offset,
                MAX_INSTANT_TEXT,
            )
            offset = 0.0
        with self._lock:
            self._offset = float(offset)


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
            check_advance(self._now, seconds)
            self._now += seconds

    def set_at_least(self, t: float) -> None:
        with self._lock:
            if self._now < t <= MAX_INSTANT:
                self._now = t

    def stopwatch(self) -> float:
        return 0.0

    def reset(self) -> None:
        with self._lock:
            self._now = self._start

    def snapshot(self) -> dict[str, float]:
        return {"start": self._start, "now": self._now}

    def restore(self, snapshot: Mapping[str, object]) -> None:
        # Virtual time resumes where it stood: the downtime did not happen in it.
        start, now = snapshot.get("start", self._start), snapshot.get("now", self._now)
        if not (_representable(start) and _representable(now)):
            log.warning(
                "state: the saved virtual clock (start %r, now %r) is beyond what the clock represents "
                "(0 to %s); starting it afresh at the current wall time",
                start,
                now,
                MAX_INSTANT_TEXT,
            )
            start = now = round(time.time(), 3)
        with self._lock:
            self._start = float(start)
            self._now = max(float(now), self._start)


def make_clock(mode: str, start: float | None = None) -> Clock:
    if mode == "real":
        return RealClock()
    if mode == "virtual":
        return VirtualClock(start)
    raise ValueError(f"unknown clock mode {mode!r} (expected 'real' or 'virtual')")


def to_ms(t: float) -> int:
    return round(t * 1000)
