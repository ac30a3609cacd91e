"""Time control: the emulator's /__admin clock when available, else real time (only with --slow) or a skip."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from contract_tests.plugins.auth import auth
from contract_tests.plugins.target import Target, target
from contract_tests.support.kit import KIT

T = TypeVar("T")


class KitClock:
    def __init__(self, tgt: Target) -> None:
        self.target = tgt
        cfg = KIT.config
        assert cfg is not None
        self.slow, self.wait_seconds = cfg.slow, cfg.wait_seconds

    @property
    def controlled(self) -> bool:
        """True when the kit can move the target's time (/__admin/clock/advance)."""
        return self.target.admin

    def require(self, what: str, real_seconds: float | None = None) -> None:
        """Skip unless time can be advanced, or --slow allows waiting `real_seconds` of real time."""
        if self.controlled:
            return
        if not self.slow:
            pytest.skip(f"{what}: needs time control (/__admin/clock on the target) or --slow for real time")
        if real_seconds is not None and real_seconds > 3600:
            pytest.skip(f"{what}: would take {real_seconds:.0f} s of real time")

    def now(self) -> float:
        if self.controlled:
            return float(self.target.admin_call("GET", "/__admin/clock")["nowMs"]) / 1000
        return time.time()

    def advance(self, seconds: float) -> float:
        """Move the target's clock (everything due happens, callbacks included); else sleep if allowed."""
        if self.controlled:
            data = self.target.admin_call("POST", "/__admin/clock/advance", json={"seconds": seconds})
            now = float(data["nowMs"]) / 1000
        else:
            self.require(f"waiting {seconds} s")
            time.sleep(seconds)
            now = time.time()
        auth().forget_if_expired(now)  # tokens of the kit may have expired with the jump
        return now

    def settle(self) -> None:
        """Let what is due now happen (virtual clocks do not move by themselves)."""
        if self.controlled:
            self.advance(0)

    def poll(
        self, probe: Callable[[], T], done: Callable[[T], bool], *, step: float = 0.25, limit: float | None = None
    ) -> list[T]:
        """Probe, move time by `step`, repeat until `done` or `limit` seconds; return every probe's value."""
        limit = limit if limit is not None else (60.0 if self.controlled else self.wait_seconds)
        seen = [probe()]
        elapsed = 0.0
        while not done(seen[-1]) and elapsed < limit:
            if self.controlled:
                self.advance(step)
            else:
                time.sleep(step)
            elapsed += step
            seen.append(probe())
        return seen

    # -- emulator views (dpa-mock's /__admin only) ---------------------------------------------------
    def run(self, instance_id: str) -> dict[str, Any] | None:
        if not self.controlled:
            return None
        return self.target.admin_call("GET", f"/__admin/runs/{instance_id}")

    def resume(self, instance_id: str) -> None:
        self.target.admin_call("POST", f"/__admin/runs/{instance_id}/resume")


@pytest.fixture(scope="session")
def kit_clock(kit_target: Target) -> KitClock:
    return KitClock(target())
