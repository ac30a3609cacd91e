"""Two platforms on one SQLite file, as two server processes would be: one state, one scheduler at a time."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server.domain.clock import VirtualClock
from mock_server.domain.errors import AuthError
from mock_server.domain.platform import Platform
from mock_server.sqlite_journal import SqliteJournal
from mock_server.sqlite_store import SqliteStore
from tests.plugins.engine import ALL_PRINCIPAL, POC, START, ScriptedTransport, domain_platform
from tests.test_durable_store import PLANS, state_of

PLAN = "acf42dd3"  # three nodes that succeed; see fixtures/plans.yaml


def pair(path: Path, **overrides: Any) -> tuple[Platform, Platform, ScriptedTransport, ScriptedTransport]:
    ta, tb = ScriptedTransport(), ScriptedTransport()
    overrides.setdefault("advance_timeout", 10.0)  # a lost advance request fails the test instead of hanging it
    lease_ttl = overrides.pop("lease_ttl", 3.0)
    a = domain_platform(
        ta, VirtualClock(START), SqliteStore(path, lease_ttl=lease_ttl), callback_workers=1, **overrides
    )
    b = domain_platform(
        tb, VirtualClock(START), SqliteStore(path, lease_ttl=lease_ttl), callback_workers=1, **overrides
    )
    return a, b, ta, tb


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Platform, Platform, ScriptedTransport, ScriptedTransport]]:
    a, b, ta, tb = pair(tmp_path / "state.db")
    yield a, b, ta, tb
    a.close()
    b.close()


def execute(p: Platform, plan: str = PLAN, callback: bool = True) -> str:
    body = {"processPlanId": plan, **({"callbackUrl": "http://receiver.invalid/cb"} if callback else {})}
    return p.execute(ALL_PRINCIPAL, plan, body)[0]["planInstanceId"]


def test_exactly_one_platform_holds_the_lease(two: Any) -> None:
    a, b, _, _ = two
    assert (a.leader, b.leader) == (True, False)
    b.sync.beat()
    a.sync.beat()
    assert (a.leader, b.leader) == (True, False)
    assert len(b.scheduler) == 0  # the other process keeps no timed work


def test_a_code_issued_by_one_is_redeemed_once_at_either(two: Any) -> None:
    a, b, _, _ = two
    code = a.oauth.authorize(POC["client_id"], "code", "all")
    token = b.oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")
    assert a.oauth.verify(token).client_id == POC["client_id"]
    with pytest.raises(AuthError, match="already been used"):
        a.oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")


def test_a_run_accepted_by_the_other_is_run_and_called_back_by_the_lease_holder(two: Any) -> None:
    a, b, ta, tb = two
    instance = execute(b)
    assert b.get_run(instance)["status"] == "DEFAULT"
    a.advance(60)
    assert a.get_run(instance)["status"] == "SUCCESS"
    assert b.get_run(instance)["status"] == "SUCCESS"  # b catches up before it reads
    assert [(s, how) for i, s, how in ta.calls if i == instance] == [
        ("DEFAULT", "ack"),
        ("RUNNING", "ack"),
        ("SUCCESS", "ack"),
    ]
    assert tb.calls == []  # only the lease holder sends
    assert [d.state for d in b.deliveries(instance)] == ["acked"] * 3


def test_ids_handed_out_by_both_never_collide(two: Any) -> None:
    a, b, _, _ = two
    ids = [execute(p, callback=False) for p in (a, b, b, a, b, a, a, b)]  # all at the same virtual millisecond
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda i: int(i[2:]))


def test_an_advance_asked_of_the_other_is_done_by_the_lease_holder(two: Any) -> None:
    a, b, ta, _ = two
    instance = execute(b)
    a.start()  # its ticker serves advance requests from other processes
    b.advance(60)
    assert b.get_run(instance)["status"] == "SUCCESS"
    assert b.clock.now() == a.clock.now() == START + 60
    assert {s for i, s, _ in ta.calls if i == instance} == {"DEFAULT", "RUNNING", "SUCCESS"}


def test_a_reset_drops_advances_asked_before_it(two: Any) -> None:
    a, b, _, _ = two
    with b.lock:  # another process asked the lease holder for an advance, and has not seen it done yet
        b.store.put("advance", "asked-before-reset", {"target": START + 3600})
    a.sync.beat()
    assert a.advances.pending == {"asked-before-reset": START + 3600}
    a.reset()
    assert a.advances.pending == {}
    a.start()  # its loop serves whatever advance requests it still holds
    a.settle()
    b.sync.beat()
    assert a.now() == b.now() == START  # the request made before the reset did not move the clock after it


def test_faults_are_counted_across_processes(two: Any) -> None:
    a, b, _, _ = two
    a.faults.add({"operationId": "listPlans", "code": 503, "times": 2})
    assert b.take_fault("GET", "/x", "listPlans") is not None
    assert a.take_fault("GET", "/x", "listPlans") is not None
    assert b.take_fault("GET", "/x", "listPlans") is None
    assert a.list_faults() == [] and b.list_faults() == []


def test_a_reset_by_one_empties_the_other(two: Any) -> None:
    a, b, _, _ = two
    instance = execute(a)
    b.reset()
    with pytest.raises(Exception, match="does not exist"):
        a.get_run(instance)
    a.sync.beat()
    assert len(a.scheduler) == 0
    assert execute(b) != instance


def test_scenes_saved_and_deleted_by_the_other_fire_and_stop_at_the_lease_holder(two: Any) -> None:
    a, b, _, _ = two
    scene = b.save_scene(
        ALL_PRINCIPAL,
        {
            "processPlanId": PLAN,
            "callbackUrl": "http://r.invalid/cb",
            "dimension": "seconds",
            "intervals": "10",
            "executeStrategy": "cycle",
            "sceneName": "s",
        },
    )["instanceId"]
    a.advance(35)
    assert [s["firedCount"] for s in b.list_scenes()] == [3]
    b.delete_scene(scene)
    a.advance(60)
    assert a.list_scenes() == []
    assert len([r for r in a.list_runs() if r["sceneId"] == scene]) == 3


def test_when_the_holder_stops_the_other_takes_over_and_finishes_its_work(tmp_path: Path) -> None:
    a, b, _, tb = pair(tmp_path / "state.db")
    try:
        ta_fail = ScriptedTransport(lambda instance, status, n: "fail")
        a.outbox._transport = ta_fail  # every attempt of the holder fails: retries stay pending
        instance = execute(b)
        a.advance(0.5)
        assert a.get_run(instance)["status"] in ("RUNNING", "SUCCESS")
        assert all(how == "fail" for _, _, how in ta_fail.calls) and ta_fail.calls
        a.close()  # a clean stop hands the lease over at once
        b.sync.beat()
        assert b.leader
        b.advance(60)
        assert b.get_run(instance)["status"] == "SUCCESS"
        assert [s for i, s, _ in tb.calls if i == instance] == ["DEFAULT", "RUNNING", "SUCCESS"]
    finally:
        b.close()


def test_a_stalled_holder_loses_the_lease_and_stops_scheduling(tmp_path: Path) -> None:
    a, b, _, _ = pair(tmp_path / "state.db", lease_ttl=0.2)
    try:
        instance = execute(a)
        time.sleep(0.3)  # a renews only from its ticker, which is not running: its lease runs out
        b.sync.beat()
        assert b.leader
        with a.lock:
            pass  # a's next transaction finds the lease gone
        assert not a.leader and len(a.scheduler) == 0
        b.advance(60)
        assert a.get_run(instance)["status"] == "SUCCESS"
    finally:
        a.close()
        b.close()


def test_the_journal_is_shared(two: Any) -> None:
    a, b, _, _ = two
    a.journal.record({"path": "/from-a"})
    b.journal.record({"path": "/from-b"})
    assert [e["path"] for e in a.journal.recent()] == ["/from-a", "/from-b"]
    assert [e["path"] for e in b.journal.recent(1)] == ["/from-b"]


steps = st.lists(
    st.tuples(
        st.sampled_from("ab"),
        st.one_of(
            st.tuples(st.just("execute"), st.sampled_from(PLANS)),
            st.tuples(st.just("advance"), st.sampled_from([0.0, 0.3, 2.0])),
            st.tuples(st.just("resume"), st.integers(0, 10)),
            st.tuples(st.just("code"), st.booleans()),
        ),
    ),
    max_size=12,
)


@settings(max_examples=15, deadline=None)
@given(steps)
def test_both_processes_see_the_same_state_whatever_each_was_asked(ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    a, b, _, _ = pair(Path(tempfile.mkdtemp(prefix="dpa-shared-")) / "state.db")
    a.start()  # serves b's advances
    try:
        instances: list[str] = []
        for who, op in ops:
            p = a if who == "a" else b
            if op[0] == "execute":
                instances.append(execute(p, op[1]))
            elif op[0] == "advance":
                p.advance(op[1])
            elif op[0] == "resume" and instances:
                instance = instances[op[1] % len(instances)]
                if p.get_run(instance)["status"] == "PENDING":
                    p.resume(instance)
            elif op[0] == "code":
                code = p.oauth.authorize(POC["client_id"], "code", "all")
                if op[1]:
                    (b if p is a else a).oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")
        a.advance(0)  # let what is due now, callbacks included, finish at the holder
        seen_a, seen_b = state_of(a), state_of(b)
        assert seen_a == seen_b
        assert set(seen_a["runs"]) == set(instances)
    finally:
        a.close()
        b.close()


def test_the_shared_journal_keeps_a_window_of_the_latest_entries(tmp_path: Path) -> None:
    a, b, _, _ = pair(tmp_path / "state.db", journal_size=25)
    try:
        for i in range(100):
            (a if i % 2 else b).journal.record({"path": f"/{i}", "at": i})
            if i % 7 == 0:
                for journal in (a.journal, b.journal):
                    assert isinstance(journal, SqliteJournal)  # a shared store's journal, written behind
                    journal.flush()
        assert [e["path"] for e in a.journal.recent()] == [f"/{i}" for i in range(75, 100)]
        assert [e["path"] for e in b.journal.recent(3)] == ["/97", "/98", "/99"]
        a.reset()
        assert b.journal.recent() == []
    finally:
        a.close()
        b.close()
