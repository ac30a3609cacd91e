"""Properties of the run engine and scenes at the domain level: legal histories, bounded ordered callbacks, calendar."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_server.domain.clock import VirtualClock
from mock_server.domain.errors import ValidationError
from mock_server.domain.platform import Platform
from mock_server.domain.runs import PENDING, TERMINAL, TRANSITIONS
from mock_server.domain.scenes import fire_time
from tests.plugins.engine import (
    ACK,
    ALL_PRINCIPAL,
    FAIL,
    RAISE,
    START,
    WRONG,
    ScriptedTransport,
    domain_platform,
    make_store,
    ms,
)

PLANS = ["acf42dd3", "b7e1c0a2", "c3d9f4e5", "d4a8e6f1", "e5f2b7c9", "f6c1a3d8"]
STATUS_OFFSET = {"DEFAULT": 0, "RUNNING": 1, "PENDING": 2, "SUCCESS": 3, "FAIL": 4}
BACKOFF = (0.1, 0.2, 0.4)
MAX_ATTEMPTS = 4
TZ = ZoneInfo("Asia/Shanghai")

behaviours = st.sampled_from([ACK, FAIL, WRONG, RAISE])
execute_op = st.tuples(
    st.just("execute"), st.sampled_from(PLANS), st.booleans(), st.lists(behaviours, min_size=1, max_size=9)
)
resume_op = st.tuples(st.just("resume"), st.integers(0, 30))
advance_op = st.tuples(st.just("advance"), st.sampled_from([0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 3, 10]))
operations = st.lists(st.one_of(execute_op, resume_op, advance_op), min_size=1, max_size=30)


class Scripts:
    """Each instance's own answer script, indexed by status and the n-th call for that status."""

    def __init__(self) -> None:
        self.by_instance: dict[str, list[str]] = {}

    def choose(self, instance_id: str, status: str, n: int) -> str:
        script = self.by_instance.get(instance_id, [ACK])
        return script[(STATUS_OFFSET[status] + n) % len(script)]


def check_history(run: Any, now: float) -> None:
    history = run.history
    assert history[0][0] == "DEFAULT"
    for (a, ta), (b, tb) in itertools.pairwise(history):
        assert b in TRANSITIONS[a], f"{run.instance_id}: {a} -> {b}"
        assert ta <= tb
        assert a not in TERMINAL
    assert history[-1][1] <= now + 1e-9
    assert run.status == history[-1][0]


def check_deliveries(platform: Platform, transport: ScriptedTransport, run: Any, scripts: Scripts) -> None:
    deliveries = platform.outbox.deliveries(run.instance_id)
    calls = transport.calls_for(run.instance_id)
    if run.callback_url is None:
        assert deliveries == [] and calls == []
        return
    # One delivery per status entered, in the order entered.
    assert [d.status for d in deliveries] == [s for s, _ in run.history]
    expected_calls: list[tuple[str, str]] = []
    previous_end = float("-inf")
    for d in deliveries:
        attempts = d.attempts
        assert 1 <= len(attempts) <= MAX_ATTEMPTS
        assert [a.n for a in attempts] == list(range(1, len(attempts) + 1))
        *retries, last = attempts
        assert all(a.verdict == "retry" for a in retries)
        if last.verdict == "ack":
            assert d.state == "acked"
        else:
            assert last.verdict == "gave_up" and len(attempts) == MAX_ATTEMPTS and d.state == "gave_up"
        assert attempts[0].at >= d.created_at and attempts[0].at >= previous_end
        for i, (a, b) in enumerate(itertools.pairwise(attempts)):
            assert b.at - a.at == pytest.approx(BACKOFF[i], abs=1e-6)
        previous_end = last.at
        expected_calls += [(d.status, "ack" if a.verdict == "ack" else "not-ack") for a in attempts]
    # What the receiver saw matches the ledger call for call: never more, never after an ack, in order.
    assert [(s, "ack" if b == ACK else "not-ack") for s, b in calls] == expected_calls


# The same property against both stores: the durable one must not change what happens.
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@given(ops=operations)
def test_any_sequence_keeps_runs_legal_and_callbacks_bounded_and_ordered(
    store_kind: str, ops: list[tuple[Any, ...]]
) -> None:
    scripts = Scripts()
    transport = ScriptedTransport(scripts.choose)
    platform = domain_platform(transport, VirtualClock(START), make_store(store_kind), callback_workers=2)
    instances: list[str] = []
    try:
        for op in ops:
            if op[0] == "execute":
                _, plan_id, with_callback, script = op
                body: dict[str, Any] = {"processPlanId": plan_id}
                if with_callback:
                    body["callbackUrl"] = "http://receiver.invalid/cb"
                if plan_id == "b7e1c0a2":
                    body["modelVarReq"] = [{"modelId": "md1606743910601", "mapParam": {"TARGET_HOST": "h"}}]
                with platform.lock:  # the script must be known before the engine can send anything
                    instance_id = platform.execute(ALL_PRINCIPAL, plan_id, body)[0]["planInstanceId"]
                    scripts.by_instance[instance_id] = script
                instances.append(instance_id)
            elif op[0] == "resume" and instances:
                run = platform.runs.runs[instances[op[1] % len(instances)]]
                before = list(run.history)
                if run.status == PENDING:
                    platform.resume(run.instance_id)
                    assert run.status == "RUNNING"
                else:
                    with pytest.raises(ValidationError):
                        platform.resume(run.instance_id)
                    assert run.history == before
            elif op[0] == "advance":
                platform.advance(op[1])
            for instance_id in instances:
                check_history(platform.runs.runs[instance_id], platform.clock.now())
        platform.advance(3600)
        assert platform.outbox.pending_count() == 0  # everything settled; PENDING runs have no future status yet
        for instance_id in instances:
            run = platform.runs.runs[instance_id]
            check_history(run, platform.clock.now())
            assert run.terminal or run.status == PENDING
            check_deliveries(platform, transport, run, scripts)
    finally:
        platform.close()


# -- scenes against an independent calendar ----------------------------------------------------------
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
UTC_OFFSET = 8 * 3600  # Asia/Shanghai: UTC+8, no DST since 1991


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_days(year: int, month: int) -> int:
    return [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def _epoch_ms(ordinal: int, ms_of_day: int) -> int:
    return (ordinal - _EPOCH_ORDINAL) * 86_400_000 + ms_of_day - UTC_OFFSET * 1000


def expected_fire_ms(anchor: dt.datetime, k: int, dimension: str, intervals: int) -> int:
    """The k-th firing in epoch ms, by day counting and month arithmetic written here, not by zoneinfo."""
    ms_of_day = ((anchor.hour * 60 + anchor.minute) * 60 + anchor.second) * 1000 + anchor.microsecond // 1000
    ordinal = anchor.toordinal()
    step = k * intervals
    if dimension in ("seconds", "minutes", "hours"):
        unit = {"seconds": 1000, "minutes": 60_000, "hours": 3_600_000}[dimension]
        return _epoch_ms(ordinal, ms_of_day) + step * unit
    if dimension in ("day", "weeks"):
        return _epoch_ms(ordinal + step * (7 if dimension == "weeks" else 1), ms_of_day)
    months = anchor.year * 12 + anchor.month - 1 + step
    year, month = months // 12, months % 12 + 1
    day = min(anchor.day, _month_days(year, month))
    return _epoch_ms(dt.date(year, month, day).toordinal(), ms_of_day)


anchors = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2029, 12, 31, 23, 59, 59)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)
month_end_anchors = st.builds(
    lambda y, m, back, h, mi: dt.datetime(y, m, _month_days(y, m) - back, h, mi),
    st.integers(2023, 2029),
    st.integers(1, 12),
    st.integers(0, 3),
    st.integers(0, 23),
    st.integers(0, 59),
)
dimensions = st.sampled_from(["seconds", "minutes", "hours", "day", "weeks", "month"])


def _anchor_epoch(anchor: dt.datetime) -> float:
    return expected_fire_ms(anchor, 0, "seconds", 1) / 1000


@given(st.one_of(anchors, month_end_anchors), dimensions, st.integers(1, 40), st.integers(1, 30))
def test_fire_time_matches_an_independent_calendar(anchor: dt.datetime, dimension: str, intervals: int, k: int) -> None:
    got = fire_time(_anchor_epoch(anchor), k, dimension, intervals, TZ)
    assert ms(got) == expected_fire_ms(anchor, k, dimension, intervals)


@given(st.one_of(anchors, month_end_anchors), dimensions, st.integers(1, 13), st.sampled_from(["single", "cycle"]))
def test_scenes_fire_exactly_at_their_calendar_times(
    anchor: dt.datetime, dimension: str, intervals: int, strategy: str
) -> None:
    clock = VirtualClock(_anchor_epoch(anchor))
    platform = domain_platform(ScriptedTransport(), clock, callback_workers=1)
    try:
        scene = platform.save_scene(
            ALL_PRINCIPAL,
            {
                "processPlanId": "e5f2b7c9",
                "callbackUrl": "http://receiver.invalid/cb",
                "dimension": dimension,
                "intervals": str(intervals),
                "executeStrategy": strategy,
                "sceneName": "p",
            },
        )
        expected = [expected_fire_ms(anchor, k, dimension, intervals) for k in (1, 2, 3, 4)]
        # Stop half-way between the third and fourth firings: no boundary rounding can matter.
        platform.advance((expected[2] + expected[3]) / 2000 - clock.now())
        fired = sorted(ms(r.created_at) for r in platform.runs.runs.values())
        assert fired == (expected[:3] if strategy == "cycle" else expected[:1])
        record = platform.scenes.scenes[scene["instanceId"]]
        assert record.fired == len(fired) and record.coalesced == 0
        if strategy == "cycle":
            assert record.next_fire is not None and ms(record.next_fire) == expected[3]
    finally:
        platform.close()
