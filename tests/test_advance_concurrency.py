"""Concurrent /__admin/clock/advance calls compose: each moves the clock by its amount, with a cycle scene due
(one process with app threads, and two workers on one --state file, where advances are asked of the lease holder)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import SCENE
from tests.plugins.engine import http_admin, http_advance, http_login, scene_form

pytestmark = pytest.mark.http


def cycle_scene(base: str) -> str:
    """A one-second cycle scene: each advance has hundreds of firings to walk through."""
    form = scene_form(dimension="seconds", intervals="1", executeStrategy="cycle")
    reply = requests.post(base + SCENE, headers=http_login(base), data=form, timeout=10).json()
    assert reply["code"] == 200, reply
    return str(reply["data"]["instanceId"])


def advance_together(base: str, amounts: list[float]) -> list[float]:
    """Send the advances at once; the offset each one answered with."""
    with ThreadPoolExecutor(len(amounts)) as pool:
        replies: list[Any] = list(pool.map(lambda s: http_advance(base, s), amounts))
    return [float(r["offset"]) for r in replies]


def check_composed(base: str, amounts: list[float]) -> None:
    scene = cycle_scene(base)
    answered = advance_together(base, amounts)
    total = sum(amounts)
    assert http_admin(base, "GET", "/__admin/clock")["offset"] == total
    # One after another: each answered where it left the clock, none counted from the middle of another.
    assert sorted(answered) == [sum(amounts[: i + 1]) for i in range(len(amounts))], answered
    [info] = [s for s in http_admin(base, "GET", "/__admin/scenes") if s["instanceId"] == scene]
    assert info["firedCount"] + info.get("coalescedCount", 0) == int(total), info


def test_concurrent_advances_add_up_with_a_cycle_scene_due() -> None:
    with ServerProcess("--clock", "virtual", "--threads", "4") as server:
        check_composed(server.base_url, [600, 600, 600])


def test_concurrent_advances_add_up_across_two_workers_on_one_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    with ServerProcess("--clock", "virtual", "--workers", "2", "--threads", "2", "--state", state) as server:
        check_composed(server.base_url, [300, 300])
