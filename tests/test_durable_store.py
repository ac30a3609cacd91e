"""The SQLite store: a platform rebuilt from the file is the platform that wrote it, and carries on."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server.domain.clock import VirtualClock
from mock_server.domain.platform import Platform
from mock_server.sqlite_store import SqliteStore
from tests.plugins.engine import ALL_PRINCIPAL, POC, START, ScriptedTransport, domain_platform

PLANS = ["acf42dd3", "c3d9f4e5", "d4a8e6f1", "e5f2b7c9"]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("execute"), st.sampled_from(PLANS), st.booleans()),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.1, 0.3, 0.7, 2.0])),
        st.tuples(st.just("resume"), st.integers(0, 10)),
        st.tuples(st.just("scene"), st.sampled_from(["single", "cycle"])),
        st.tuples(st.just("code"), st.booleans()),
    ),
    max_size=14,
)


def state_of(platform: Platform) -> dict[str, Any]:
    with platform.lock:
        return {
            "runs": {
                i: (r.status, r.history, [(n.state, n.result, n.started_at, n.finished_at) for n in r.nodes])
                for i, r in platform.runs.runs.items()
            },
            "deliveries": sorted(
                (d.id, d.instance_id, d.status, d.state, len(d.attempts)) for d in platform.outbox.deliveries()
            ),
            "scenes": {i: (s.k, s.fired, s.active, s.next_fire) for i, s in platform.scenes.scenes.items()},
            "codes": {c: (e.client_id, e.used) for c, e in platform.oauth._codes.items()},
            "now": platform.clock.now(),
        }


def drive(platform: Platform, ops: list[tuple[Any, ...]]) -> None:
    instances: list[str] = []
    for op in ops:
        if op[0] == "execute":
            body = {"processPlanId": op[1], **({"callbackUrl": "http://receiver.invalid/cb"} if op[2] else {})}
            instances.append(platform.execute(ALL_PRINCIPAL, op[1], body)[0]["planInstanceId"])
        elif op[0] == "advance":
            platform.advance(op[1])
        elif op[0] == "resume" and instances:
            run = platform.runs.runs[instances[op[1] % len(instances)]]
            if run.status == "PENDING":
                platform.resume(run.instance_id)
        elif op[0] == "scene":
            platform.save_scene(
                ALL_PRINCIPAL,
                {
                    "processPlanId": "acf42dd3",
                    "callbackUrl": "http://r.invalid/cb",
                    "dimension": "seconds",
                    "intervals": "1",
                    "executeStrategy": op[1],
                    "sceneName": "s",
                },
            )
        elif op[0] == "code":
            code = platform.oauth.authorize(POC["client_id"], "code", "all")
            if op[1]:
                platform.oauth.token(code, POC["client_id"], POC["client_secret"], "authorization_code")
    platform.settle()


@settings(max_examples=20)  # each example writes and reopens a SQLite file
@given(steps)
def test_a_platform_rebuilt_from_the_file_has_the_same_state_and_the_same_future(ops: list[tuple[Any, ...]]) -> None:
    path = Path(tempfile.mkdtemp(prefix="dpa-store-")) / "state.db"
    first = domain_platform(ScriptedTransport(), VirtualClock(START), SqliteStore(path), callback_workers=1)
    try:
        drive(first, ops)
        before = state_of(first)
    finally:
        first.close()
    second = domain_platform(ScriptedTransport(), VirtualClock(START + 999), SqliteStore(path), callback_workers=1)
    try:
        # Deliveries that were queued are attempted again (at-least-once); everything else is as it was.
        assert {k: v for k, v in state_of(second).items() if k != "deliveries"} == {
            k: v for k, v in before.items() if k != "deliveries"
        }
        assert {d[:4] for d in state_of(second)["deliveries"]} >= {
            d[:4] for d in before["deliveries"] if d[3] in ("acked", "gave_up")
        }
        # Long enough for every run and its callbacks (the longest plan takes 6 s, the retries under 1 s); not
        # an hour: each cycle scene would fire a thousand runs (up to 108 s of CPU for one example).
        fired = {i: s.fired for i, s in second.scenes.scenes.items()}
        second.advance(60)
        for instance, run in second.runs.runs.items():
            if instance in before["runs"]:
                assert run.terminal or run.status == "PENDING", (instance, run.status)
        assert all(
            d.state in ("acked", "gave_up") for d in second.outbox.deliveries() if d.instance_id in before["runs"]
        )
        for i, scene in second.scenes.scenes.items():  # an active cycle scene goes on firing after the restart
            assert scene.fired > fired[i] or not (scene.active and scene.strategy == "cycle"), (i, scene)
    finally:
        second.close()


def test_reset_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    platform = domain_platform(ScriptedTransport(), VirtualClock(START), SqliteStore(path))
    try:
        platform.execute(ALL_PRINCIPAL, "acf42dd3", {"processPlanId": "acf42dd3"})
        platform.reset()
    finally:
        platform.close()
    again = domain_platform(ScriptedTransport(), VirtualClock(START), SqliteStore(path))
    try:
        assert again.runs.runs == {} and again.scenes.scenes == {}
    finally:
        again.close()


def test_a_lone_surrogate_is_stored_and_journalled_like_any_text() -> None:
    # json.loads accepts "\ud800" in a request body; UTF-8 cannot encode it, so the file keeps \u-escapes.
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        journal = store.journal(10)
        try:
            store.put("run", "1", {"inputs": {"x": "\ud800中"}})
            journal.record({"at": 1, "body": {"x": "\ud800中"}})
            journal.flush()
            assert store.get("run", "1") == {"inputs": {"x": "\ud800中"}}
            assert [e["body"] for e in journal.recent()] == [{"x": "\ud800中"}]
        finally:
            journal.close()
            store.close()
