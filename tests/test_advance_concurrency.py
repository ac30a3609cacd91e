"""Concurrent /__admin/clock/advance calls compose: each moves the clock by its amount, with a cycle scene due
(one process with app threads, and two workers on one --state file, where advances are asked of the lease holder)."""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import SCENE
from tests.plugins.engine import (
    START,
    PinnedApps,
    api_for,
    http_admin,
    http_advance,
    http_login,
    ledger,
    ms,
    scene_form,
)


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


def check_composed(base: str, amounts: list[float], *, shared: bool = False) -> None:
    scene = cycle_scene(base)
    answered = advance_together(base, amounts)
    total = sum(amounts)
    assert http_admin(base, "GET", "/__admin/clock")["offset"] == total
    if shared:
        # Asked of the lease holder, each answers the clock as it reads it once its own advance is done: a later
        # advance may already have moved it on (both answering the total is fine); none may answer short.
        assert max(answered) == total and all(a >= min(amounts) for a in answered), answered
    else:
        # One after another: each answered where it left the clock, none counted from the middle of another.
        assert sorted(answered) == [sum(amounts[: i + 1]) for i in range(len(amounts))], answered
    [info] = [s for s in http_admin(base, "GET", "/__admin/scenes") if s["instanceId"] == scene]
    assert info["firedCount"] + info.get("coalescedCount", 0) == int(total), info


@pytest.mark.http
def test_concurrent_advances_add_up_with_a_cycle_scene_due() -> None:
    with ServerProcess("--clock", "virtual", "--threads", "4") as server:
        check_composed(server.base_url, [200, 200, 200])  # each a second or more of firings: they overlap


@pytest.mark.http
def test_concurrent_advances_add_up_across_two_workers_on_one_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    with ServerProcess("--clock", "virtual", "--workers", "2", "--threads", "2", "--state", state) as server:
        check_composed(server.base_url, [150, 150], shared=True)


# -- F17: callback attempts of different instances share the worker pool during an advance -----------------
class SlowTransport:
    """Answers `answer` after `delay` wall seconds (a slow receiver); records overlaps."""

    def __init__(self, delay: float, answer: tuple[int, str]) -> None:
        self.delay, self.answer = delay, answer
        self._lock = threading.Lock()
        self._open: collections.Counter[str] = collections.Counter()
        self.most_at_once = 0  # attempts on the wire together, any instances
        self.most_per_instance = 0  # ... of one instance: must stay 1 (its callbacks go in order)
        self.calls: list[tuple[str, str]] = []

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        instance = payload["planInstanceId"]
        with self._lock:
            self._open[instance] += 1
            self.calls.append((instance, payload["status"]))
            self.most_at_once = max(self.most_at_once, sum(self._open.values()))
            self.most_per_instance = max(self.most_per_instance, self._open[instance])
        time.sleep(self.delay)
        with self._lock:
            self._open[instance] -= 1
        return self.answer


def two_runs_ledger(transport: SlowTransport, pinned: PinnedApps) -> list[list[tuple[str, str, list[Any]]]]:
    """Two runs 50 ms apart (their attempts are never due at the same instant), advanced 5 s; per run, each
    delivery's attempts (time, verdict)."""
    api = api_for(pinned(transport=transport))
    headers = api.login()
    first = api.start(headers, callbackUrl="http://127.0.0.1:9/cb")
    api.advance(0.05)
    second = api.start(headers, callbackUrl="http://127.0.0.1:9/cb")
    api.advance(5)
    return [
        [
            (d["status"], d["state"], [(a["at"], a["verdict"]) for a in d["attempts"]])
            for d in ledger(api.client, instance)
        ]
        for instance in (first, second)
    ]


# Attempt times (ms after the run started) of DEFAULT, RUNNING (entered at 200) and SUCCESS (entered at 1500):
# with an ack each is tried when entered; never acked, each tries 4 times (backoff 100, 200, 400), the next
# status waiting for the previous one to be given up.
ACKED = [[0], [200], [1500]]
GIVEN_UP = [[0, 100, 300, 700], [700, 800, 1000, 1400], [1500, 1600, 1800, 2200]]


@pytest.mark.parametrize(
    "answer,times,state",
    [((500, "FAIL"), GIVEN_UP, "gave_up"), ((200, "SUCCESS"), ACKED, "acked")],
    ids=["never-acks", "acks"],
)
def test_attempts_of_different_instances_overlap_and_keep_their_virtual_times(
    pinned: PinnedApps, answer: tuple[int, str], times: list[list[int]], state: str
) -> None:
    slow = SlowTransport(0.05, answer)
    got = two_runs_ledger(slow, pinned)
    for run, started in zip(got, (ms(START), ms(START) + 50), strict=True):
        # Virtual-time facts, whatever overlapped on the wire (with an ack, RUNNING is entered while DEFAULT
        # may still be on the wire: it is tried when entered, not when DEFAULT's answer came).
        assert [(status, st, [at - started for at, _ in tries]) for status, st, tries in run] == [
            (status, state, at) for status, at in zip(("DEFAULT", "RUNNING", "SUCCESS"), times, strict=True)
        ]
    assert slow.most_per_instance == 1  # one instance's callbacks never overlap
    assert slow.most_at_once == 2  # but the two instances' do: the pool is used across instances
    for instance in {i for i, _ in slow.calls}:  # what the receiver saw of each instance: its statuses in order
        expected = [s for s, at in zip(("DEFAULT", "RUNNING", "SUCCESS"), times, strict=True) for _ in at]
        assert [s for i, s in slow.calls if i == instance] == expected
