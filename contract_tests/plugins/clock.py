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

FINE_SECONDS = 60.0  # target time polled at the caller's step (what a healthy run needs)
COARSE_STEP = 600.0  # then steps grow to this: minutes-long queues are faithful, and cost few advances
CONTROLLED_LIMIT = 6 * 3600.0  # target time before a run is taken to never finish (as receiver.settled)


def next_step(elapsed: float, step: float) -> float:
    """The caller's step for the first FINE_SECONDS of target time, then growing (a quarter of the time
    waited so far) up to COARSE_STEP: a six-hour wait costs about 300 advances."""
    return step if elapsed < FINE_SECONDS else max(step, min(elapsed / 4, COARSE_STEP))


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
        self,
        probe: Callable[[], T],
        done: Callable[[T], bool],
        *,
        step: float = 0.25,
        limit: float | None = None,
        pending: Callable[[T], str | None] | None = None,
    ) -> list[T]:
        """Probe, move time by `step`, repeat until `done` or `limit` seconds; return every probe's value.

        Under /__admin moving time costs nothing: after the first minute at `step`, steps grow (a quarter of
        the time waited) up to ten minutes, to CONTROLLED_LIMIT (hours) of target time — the document promises
        no duration (D25), so a run queued for minutes is not a broken promise. In real time the limit is
        --wait-seconds; `pending` says what the last probe was still doing (None: nothing legal, the caller
        judges) and makes reaching the limit inconclusive: observed, and the test skipped.
        """
        limit = limit if limit is not None else (CONTROLLED_LIMIT if self.controlled else self.wait_seconds)
        seen = [probe()]
        elapsed = 0.0
        while not done(seen[-1]) and elapsed < limit:
            move = min(next_step(elapsed, step), limit - elapsed)
            if self.controlled:
                self.advance(move)
            else:
                time.sleep(move)
            elapsed += move
            seen.append(probe())
        if pending is not None and not self.controlled and not done(seen[-1]):
            still = pending(seen[-1])
            if still is not None:
                self.inconclusive(still, limit)
        return seen

    def inconclusive(self, still: str, waited: float) -> None:
        """A wait in real time ended before the target finished: not a broken promise (no duration is
        documented), so observed and skipped, naming the option that waits longer."""
        KIT.observe("run.wait-inconclusive", still)
        pytest.skip(
            f"inconclusive: {still} after {waited:.0f} s of real time; the document promises no duration "
            "(give a longer --wait-seconds, or a target with /__admin time control)"
        )

    def finish(self, instance_id: str, limit: float = CONTROLLED_LIMIT) -> list[str]:
        """Under /__admin: drive time until the run is SUCCESS/FAIL (resuming a PENDING run once: the emulator's
        approval step, a person on a real platform); return every status its run view reported."""
        seen: list[str] = []
        elapsed, resumed = 0.0, False
        while elapsed <= limit:
            run = self.run(instance_id)
            assert run is not None, "finish() needs /__admin"
            seen.append(str(run.get("status")))
            if seen[-1] in ("SUCCESS", "FAIL"):
                break
            if seen[-1] == "PENDING" and not resumed:
                self.resume(instance_id)
                resumed = True
                continue
            move = next_step(elapsed, 0.25)
            self.advance(move)
            elapsed += move
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
