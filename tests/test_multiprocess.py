"""Several server processes on one `--state` file: shared codes, runs, callbacks, faults, reset, clock; a lease
holder killed with SIGKILL mid-work and taken over; `--workers 2` on one port."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver, Delivery
from mock_server.testing.server import free_port
from tests.plugins.durable import Tree, admin, wait_until
from tests.plugins.emulator import AUTHORIZE, DOC_CLIENT, LIST_PLANS, SCENE, TOKEN
from tests.plugins.engine import http_execute, http_login, statuses

pytestmark = pytest.mark.http

LEADER_LINE = "now runs the scheduler"  # logged by the process that takes the lease
LOST_LINE = "lost the scheduler lease"  # logged by a holder that finds another process took it
STATUSES = ["DEFAULT", "RUNNING", "SUCCESS"]
LEASE_TTL = 3.0  # Settings.lease_ttl
# b7e1c0a2 runs 5 s (nodes of 1 + 2 + 1 + 1 s) and needs TARGET_HOST; acf42dd3 runs 1.3 s after a 0.2 s start delay.
LONG_PLAN, LONG_INPUTS = "b7e1c0a2", [{"modelId": "md1606743910601", "mapParam": {"TARGET_HOST": "h1"}}]


# -- helpers ------------------------------------------------------------------------------------------
def launch(trees: list[Tree], tmp_path: Path, *args: str, name: str | None = None) -> Tree:
    tree = Tree(*args, log=tmp_path / f"{name or f'server{len(trees)}'}.log")
    trees.append(tree)
    return tree.start()


def pair(trees: list[Tree], tmp_path: Path, *args: str) -> tuple[Tree, Tree]:
    """A then B on one state file (plus `args`); A, started first, holds the lease."""
    settings = ("--state", str(tmp_path / "state.db"), *args)
    a = launch(trees, tmp_path, *settings, name="A")
    b = launch(trees, tmp_path, *settings, name="B")
    assert wait_until(lambda: LEADER_LINE in a.log_text(), timeout=5), a.log_text()
    assert LEADER_LINE not in b.log_text(), ("B took the lease from a live A", b.log_text())
    return a, b


def authorize(tree: Tree, app: dict[str, str] = DOC_CLIENT, scope: str = "all") -> str:
    body = requests.get(
        tree.base_url + AUTHORIZE,
        timeout=10,
        params={"client_id": app["client_id"], "response_type": "code", "scope": scope},
    ).json()
    assert body["code"] == 200, body
    return str(body["data"]["code"])


def redeem(tree: Tree, code: str, app: dict[str, str] = DOC_CLIENT) -> dict[str, Any]:
    return requests.post(
        tree.base_url + TOKEN, timeout=10, json={"code": code, "grant_type": "authorization_code", **app}
    ).json()


def bearer(token_reply: dict[str, Any]) -> dict[str, str]:
    assert token_reply["code"] == 200, token_reply
    return {"Authorization": f"Bearer {token_reply['data']['access_token']}"}


def run_of(tree: Tree, instance: str) -> dict[str, Any]:
    return dict(admin(tree, "GET", f"/__admin/runs/{instance}"))


def ledger(tree: Tree, instance: str | None = None) -> list[dict[str, Any]]:
    params = {} if instance is None else {"planInstanceId": instance}
    return list(admin(tree, "GET", "/__admin/callbacks", params=params))


def acked(delivery: Delivery) -> bool:
    return delivery.answered_status == 200 and delivery.answered_body == "SUCCESS"


def key(delivery: Delivery) -> tuple[str, str]:
    return delivery.json["planInstanceId"], delivery.json["status"]


def all_acked(tree: Tree, instances: list[str]) -> bool:
    """Every instance's DEFAULT, RUNNING and SUCCESS deliveries are acked in the ledger `tree` shows."""
    rows = ledger(tree)
    got = {(d["planInstanceId"], d["status"]): d["state"] for d in rows if d["planInstanceId"] in instances}
    return got == {(i, s): "acked" for i in instances for s in STATUSES}


def all_acked_of(tree: Tree, instances: list[str], status: str) -> bool:
    got = {d["planInstanceId"] for d in ledger(tree) if d["status"] == status and d["state"] == "acked"}
    return got >= set(instances)


def lease_holder_pid(state: Path) -> int:
    """The pid in the state file's lease row (`host:pid:nonce`): which worker runs the scheduler."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        holder = db.execute("SELECT holder FROM lease WHERE name = 'engine'").fetchone()[0]
    finally:
        db.close()
    return int(holder.split(":")[1])


def stop_group(tree: Tree, sig: int) -> None:
    assert tree.proc is not None
    os.killpg(tree.proc.pid, sig)


# -- 1. OAuth codes and tokens are shared -------------------------------------------------------------
def test_codes_and_tokens_are_shared_between_processes(trees: list[Tree], tmp_path: Path) -> None:
    a, b = pair(trees, tmp_path)

    code = authorize(a)
    token = redeem(b, code)  # issued by A, redeemed at B
    assert token["code"] == 200, token
    again = redeem(a, code)
    assert again["code"] == 403 and "already been used" in again["message"], again
    assert redeem(b, code)["code"] == 403

    # A token from B works at A (and at B), for the document's client with scope=all.
    plans = requests.get(a.base_url + LIST_PLANS, headers=bearer(token), timeout=10).json()
    assert plans["code"] == 200 and {p["processPlanId"] for p in plans["data"]} >= {"acf42dd3", "f6c1a3d8"}, plans
    assert requests.get(b.base_url + LIST_PLANS, headers=bearer(token), timeout=10).json()["code"] == 200

    # The other direction, and the same code redeemed at both processes at once: exactly one wins.
    assert redeem(a, authorize(b))["code"] == 200
    codes = [authorize(a if n % 2 else b) for n in range(8)]
    barrier = threading.Barrier(2)

    def race(tree: Tree, code: str) -> int:
        barrier.wait(timeout=10)
        return int(redeem(tree, code)["code"])

    with ThreadPoolExecutor(2) as pool:
        for code in codes:
            answers = sorted(pool.map(lambda t, c=code: race(t, c), [a, b]))
            assert answers == [200, 403], (code, answers)


# -- 2. a run executed at the process without the lease ------------------------------------------------
def test_run_executed_at_the_non_holder_completes_with_callbacks(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    a, b = pair(trees, tmp_path)
    headers = http_login(b.base_url, DOC_CLIENT, scope="all")
    at_b = http_execute(b.base_url, headers, callbackUrl=receiver.url)  # B does not hold the lease
    at_a = http_execute(a.base_url, headers, callbackUrl=receiver.url)  # and the other direction
    # Each is visible at once at the other process (the read catches up first).
    assert run_of(a, at_b)["status"] in ("DEFAULT", "RUNNING")
    assert run_of(b, at_a)["status"] in ("DEFAULT", "RUNNING")

    instances = [at_b, at_a]
    assert wait_until(lambda: all(run_of(a, i)["status"] == "SUCCESS" for i in instances), timeout=6), [
        run_of(a, i) for i in instances
    ]
    assert wait_until(lambda: all_acked(a, instances) and all_acked(b, instances), timeout=5), ledger(a)
    time.sleep(0.4)  # a duplicate or a late extra delivery would show by now
    for instance in instances:
        got = receiver.for_instance(instance)
        assert statuses(got) == STATUSES, (instance, statuses(got))
        assert all(acked(d) for d in got), [(d.answered_status, d.answered_body) for d in got]
        run = run_of(a, instance)
        assert run == run_of(b, instance), "the two processes disagree about the run"
        assert [h["status"] for h in run["history"]] == STATUSES, run["history"]
        assert [n["state"] for n in run["nodes"]] == ["success"] * 3, run["nodes"]
        assert ledger(a, instance) == ledger(b, instance)
    assert LEADER_LINE not in b.log_text(), "the lease moved although its holder is alive"


# -- 3. kill -9 of the lease holder mid-work ----------------------------------------------------------
@pytest.mark.slow
def test_kill_9_of_the_lease_holder_hands_all_work_to_the_survivor(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    a, b = pair(trees, tmp_path, "--set", "callback_retries=100", "--set", "callback_backoff=0.15")
    headers = http_login(b.base_url, DOC_CLIENT, scope="all")
    receiver.fail(times=4)  # the first attempts fail and are retried; then the receiver acknowledges
    runs: list[str] = []
    for n in range(6):  # at both processes; half of them long enough to be mid-node at the kill
        tree = a if n % 2 else b
        if n < 3:
            runs.append(http_execute(tree.base_url, headers, callbackUrl=receiver.url))
        else:
            runs.append(
                http_execute(tree.base_url, headers, LONG_PLAN, callbackUrl=receiver.url, modelVarReq=LONG_INPUTS)
            )
    long_runs = runs[3:]
    # Some DEFAULT and RUNNING callbacks get acknowledged ...
    assert receiver.wait_for(lambda ds: sum(acked(d) for d in ds) >= 4, timeout=5), [
        (key(d), d.answered_status) for d in receiver.deliveries
    ]
    # ... then every attempt fails, so at the kill deliveries are being retried.
    receiver.fail()
    time.sleep(0.3)  # any attempt that was answered SUCCESS has been recorded by its sender by now

    def acked_before() -> set[tuple[str, str]]:
        return {key(d) for d in receiver.deliveries if acked(d)}

    def ledger_acked() -> set[tuple[str, str]]:
        return {(d["planInstanceId"], d["status"]) for d in ledger(b) if d["state"] == "acked"}

    # Precisely what was acknowledged before the crash: the receiver's acks, all recorded in the shared ledger.
    assert wait_until(lambda: ledger_acked() == acked_before(), timeout=3), (ledger_acked(), acked_before())
    pre_kill_acks = acked_before()
    retrying = [d for d in ledger(b) if d["state"] == "retrying"]
    assert retrying, "premise: some callbacks are being retried at the kill"
    in_flight = {r["planInstanceId"]: r["status"] for r in admin(b, "GET", "/__admin/runs")}
    assert all(in_flight[i] == "RUNNING" for i in long_runs), in_flight
    before_kill = len(receiver.deliveries)

    a.kill9()
    killed_at = time.monotonic()
    # At once, not when A's lease (lease_ttl 3 s) runs out: B sees A's worker dead on this host (a zombie,
    # orphaned by the kill of the whole group, until init reaps it, counts as dead).
    assert wait_until(lambda: LEADER_LINE in b.log_text(), timeout=LEASE_TTL + 1), b.log_text()
    takeover = time.monotonic() - killed_at
    time.sleep(0.3)  # B retries what A left unacknowledged; the receiver still fails
    receiver.ack()

    # Every accepted run ends, and every status callback is acknowledged in the end.
    assert wait_until(
        lambda: all(r["status"] == "SUCCESS" for r in admin(b, "GET", "/__admin/runs") if r["planInstanceId"] in runs),
        timeout=10,
    ), admin(b, "GET", "/__admin/runs")
    assert {r["planInstanceId"] for r in admin(b, "GET", "/__admin/runs")} >= set(runs)
    assert wait_until(lambda: all_acked(b, runs), timeout=8), ledger(b)
    time.sleep(0.5)  # a resend of something acknowledged would show by now

    everything = list(receiver.deliveries)
    after_kill = everything[before_kill:]
    for instance in runs:
        mine = [d for d in everything if d.json["planInstanceId"] == instance]
        # In order: nothing of a status is sent before the one before it is acknowledged.
        order = [STATUSES.index(d.json["status"]) for d in mine]
        assert order == sorted(order), (instance, statuses(mine))
        for status in STATUSES:
            acks = [d for d in mine if d.json["status"] == status and acked(d)]
            assert len(acks) == 1, (instance, status, "acknowledged", len(acks), "times")
    # Acknowledged before the crash: never sent again by the survivor.
    resent = [key(d) for d in after_kill if key(d) in pre_kill_acks]
    assert not resent, resent
    for run in (run_of(b, i) for i in runs):
        assert [h["status"] for h in run["history"]] == STATUSES, run
    assert takeover < 1.5, f"took {takeover:.2f} s: waited for the lease to expire instead of seeing A gone"


def test_holder_seen_gone_is_replaced_before_its_lease_expires(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    """A single-process holder (waitress: the pid that kill9 reaps): B sees the pid gone and takes over at once."""
    state = str(tmp_path / "state.db")
    a = launch(trees, tmp_path, "--server", "waitress", "--state", state, name="A")
    b = launch(trees, tmp_path, "--state", state, name="B")
    assert wait_until(lambda: LEADER_LINE in a.log_text(), timeout=5), a.log_text()
    assert LEADER_LINE not in b.log_text()
    headers = http_login(b.base_url, DOC_CLIENT, scope="all")
    instances = [http_execute(b.base_url, headers, callbackUrl=receiver.url) for _ in range(2)]
    # A dispatches the DEFAULT callbacks, and records their acknowledgement.
    assert wait_until(lambda: all_acked_of(b, instances, "DEFAULT"), timeout=3), ledger(b)

    a.kill9()
    killed_at = time.monotonic()
    assert wait_until(lambda: LEADER_LINE in b.log_text(), timeout=LEASE_TTL + 1), b.log_text()
    # A renews its lease when less than 2/3 of lease_ttl is left, so expiry is >= 2 s away at the kill.
    assert time.monotonic() - killed_at < LEASE_TTL / 2, "B waited for the lease to expire"
    assert wait_until(lambda: all(run_of(b, i)["status"] == "SUCCESS" for i in instances), timeout=6)
    assert wait_until(lambda: all_acked(b, instances), timeout=5), ledger(b)
    for instance in instances:
        got = receiver.for_instance(instance)
        # In order; DEFAULT (acked before the kill) never again; RUNNING may come twice (in flight at the kill).
        assert [s for s in STATUSES if s in statuses(got)] == STATUSES and statuses(got) == sorted(
            statuses(got), key=STATUSES.index
        ), statuses(got)
        assert statuses(got).count("DEFAULT") == 1 and statuses(got).count("SUCCESS") == 1, statuses(got)


@pytest.mark.slow
def test_stalled_holder_loses_the_lease_when_it_expires(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    """A holder that is alive but stalled (SIGSTOP): its pid exists, so B waits for the lease to expire;
    when A comes back it steps down instead of scheduling next to B."""
    a, b = pair(trees, tmp_path)
    headers = http_login(b.base_url, DOC_CLIENT, scope="all")
    stop_group(a, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        instances = [http_execute(b.base_url, headers, callbackUrl=receiver.url) for _ in range(2)]
        assert wait_until(lambda: LEADER_LINE in b.log_text(), timeout=LEASE_TTL + 1), b.log_text()
        takeover = time.monotonic() - stopped_at
        assert wait_until(lambda: all(run_of(b, i)["status"] == "SUCCESS" for i in instances), timeout=6)
    finally:
        stop_group(a, signal.SIGCONT)
    assert takeover < LEASE_TTL + 1
    assert wait_until(lambda: LOST_LINE in a.log_text(), timeout=3), a.log_text()
    # A serves again, without the lease: a run executed at A is B's to schedule and report.
    late = http_execute(a.base_url, headers, callbackUrl=receiver.url)
    instances.append(late)
    assert wait_until(lambda: run_of(a, late)["status"] == "SUCCESS", timeout=6), run_of(a, late)
    assert wait_until(lambda: all_acked(a, instances), timeout=5), ledger(a)
    time.sleep(0.4)
    for instance in instances:
        assert statuses(receiver.for_instance(instance)) == STATUSES, instance  # exactly once each: no split brain
    assert a.log_text().count(LEADER_LINE) == 1 and b.log_text().count(LEADER_LINE) == 1


def test_lease_ttl_setting_shortens_the_takeover_of_a_stalled_holder(trees: list[Tree], tmp_path: Path) -> None:
    a, b = pair(trees, tmp_path, "--set", "lease_ttl=1")
    stop_group(a, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        assert wait_until(lambda: LEADER_LINE in b.log_text(), timeout=LEASE_TTL + 1), b.log_text()
        takeover = time.monotonic() - stopped_at
    finally:
        stop_group(a, signal.SIGCONT)
    # The lease is renewed when less than 2/3 of lease_ttl is left: with lease_ttl=1 it expires within 1 s.
    assert takeover < 1.5, f"took {takeover:.2f} s: the 3 s default lease, not lease_ttl=1"


# -- 4. faults count across processes ------------------------------------------------------------------
def test_fault_times_are_counted_across_processes(trees: list[Tree], tmp_path: Path) -> None:
    a, b = pair(trees, tmp_path)
    headers = http_login(a.base_url, DOC_CLIENT, scope="all")

    def list_plans(tree: Tree) -> int:
        return int(requests.get(tree.base_url + LIST_PLANS, headers=headers, timeout=10).json()["code"])

    fault = admin(
        a, "POST", "/__admin/faults", json={"method": "GET", "path": "queryPlanByUserId", "code": 503, "times": 2}
    )
    assert [f["remaining"] for f in admin(b, "GET", "/__admin/faults")] == [2]
    assert list_plans(b) == 503
    assert [(f["id"], f["remaining"], f["hits"]) for f in admin(a, "GET", "/__admin/faults")] == [(fault["id"], 1, 1)]
    assert list_plans(a) == 503
    assert [list_plans(t) for t in (b, a, b, a)] == [200] * 4
    assert admin(a, "GET", "/__admin/faults") == [] and admin(b, "GET", "/__admin/faults") == []
    # The request journal is shared: either process shows the requests both served. (In the order each process
    # flushed them, every 20 ms, so not necessarily in request order: sort by `at`.)
    journal = sorted(
        (e for e in admin(a, "GET", "/__admin/requests") if e["path"] == LIST_PLANS), key=lambda e: e["at"]
    )
    assert [e["code"] for e in journal] == [503, 503, 200, 200, 200, 200], journal
    assert admin(b, "GET", "/__admin/requests") == admin(a, "GET", "/__admin/requests")

    # Under concurrent requests at both processes, still exactly `times` of them get the fault.
    admin(b, "POST", "/__admin/faults", json={"method": "GET", "path": "queryPlanByUserId", "code": 503, "times": 5})
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(list_plans, [a, b] * 12))
    assert collections.Counter(codes) == {503: 5, 200: 19}, codes
    assert admin(a, "GET", "/__admin/faults") == []


# -- 5. reset and the virtual clock --------------------------------------------------------------------
def test_advance_at_the_non_holder_and_reset_at_one_process(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver
) -> None:
    a, b = pair(trees, tmp_path, "--clock", "virtual")
    start = admin(a, "GET", "/__admin/clock")
    assert admin(b, "GET", "/__admin/clock")["nowMs"] == start["nowMs"], "one virtual clock for both"
    headers = http_login(b.base_url, DOC_CLIENT, scope="all")
    instance = http_execute(b.base_url, headers, callbackUrl=receiver.url)
    scene = requests.post(
        b.base_url + SCENE,
        headers=headers,
        timeout=10,
        data={
            "processPlanId": "acf42dd3",
            "callbackUrl": receiver.url,
            "sceneName": "多进程",
            "executeStrategy": "single",
            "dimension": "seconds",
            "intervals": "2",
        },
    ).json()
    assert scene["code"] == 200, scene
    time.sleep(0.3)
    assert run_of(a, instance)["status"] == "DEFAULT", "virtual time does not move by itself"

    # B does not hold the lease: A does the advance, and B answers only when everything due is done.
    clock = admin(b, "POST", "/__admin/clock/advance", json={"seconds": 5})
    assert clock["nowMs"] == pytest.approx(start["nowMs"] + 5000, abs=1), clock
    assert admin(a, "GET", "/__admin/clock")["nowMs"] == clock["nowMs"]
    runs = admin(a, "GET", "/__admin/runs")
    assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCESS"}, runs  # the scene fired at +2 s
    assert admin(b, "GET", "/__admin/runs") == runs
    fired = [r["planInstanceId"] for r in runs if r["sceneId"] == scene["data"]["instanceId"]]
    assert len(fired) == 1
    for done in (instance, fired[0]):
        assert statuses(receiver.for_instance(done)) == STATUSES, "callbacks due in the advance came before it returned"

    # Reset at B empties state for A as well.
    unused = authorize(a)
    admin(b, "POST", "/__admin/reset")
    assert admin(a, "GET", "/__admin/runs") == []
    assert admin(a, "GET", "/__admin/scenes") == []
    assert admin(a, "GET", "/__admin/callbacks") == []
    assert admin(a, "GET", "/__admin/clock")["nowMs"] == start["nowMs"], "the reset rewinds the virtual clock"
    gone = redeem(a, unused)
    assert gone["code"] == 403 and "unknown" in gone["message"], gone
    # Both carry on after the reset: a run at B ends on an advance at B.
    again = http_execute(b.base_url, http_login(a.base_url, DOC_CLIENT, scope="all"))
    admin(b, "POST", "/__admin/clock/advance", json={"seconds": 2})
    assert run_of(a, again)["status"] == "SUCCESS"
    assert LEADER_LINE not in b.log_text()


# -- 6. --workers 2 on one port ------------------------------------------------------------------------
@pytest.mark.slow
def test_two_workers_on_one_port_share_state(trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver) -> None:
    server = launch(trees, tmp_path, "--workers", "2", "--state", str(tmp_path / "state.db"), name="workers")

    def login_once(_: int) -> tuple[str, dict[str, Any]]:
        # requests without a Session: a fresh connection each time, so both workers accept some.
        code = authorize(server)
        return code, redeem(server, code)

    with ThreadPoolExecutor(4) as pool:
        pairs = list(pool.map(login_once, range(40)))
    assert len({code for code, _ in pairs}) == 40
    failed = [(code, reply) for code, reply in pairs if reply["code"] != 200]
    assert not failed, failed
    assert len({reply["data"]["access_token"] for _, reply in pairs}) == 40
    with ThreadPoolExecutor(4) as pool:
        replays = list(pool.map(lambda p: redeem(server, p[0]), pairs))
    assert all(r["code"] == 403 and "already been used" in r["message"] for r in replays), replays

    headers = bearer(pairs[0][1])
    instances = [http_execute(server.base_url, headers, callbackUrl=receiver.url) for _ in range(4)]
    assert wait_until(lambda: all(run_of(server, i)["status"] == "SUCCESS" for i in instances), timeout=6), admin(
        server, "GET", "/__admin/runs"
    )
    assert wait_until(lambda: all_acked(server, instances), timeout=5), ledger(server)
    time.sleep(0.3)
    for instance in instances:
        assert statuses(receiver.for_instance(instance)) == STATUSES, instance
    assert server.log_text().count(LEADER_LINE) == 1, server.log_text()

    # kill -9 of the worker holding the lease (only that one): the other takes over at once (granian reaps the
    # dead worker, so its pid is gone) and finishes the runs in flight; granian starts a new worker.
    more = [http_execute(server.base_url, headers, callbackUrl=receiver.url) for _ in range(3)]
    assert wait_until(lambda: all_acked_of(server, more, "DEFAULT"), timeout=3), ledger(server)
    pre_kill_acks = {(d["planInstanceId"], d["status"]) for d in ledger(server) if d["state"] == "acked"}
    os.kill(lease_holder_pid(tmp_path / "state.db"), signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_until(lambda: server.log_text().count(LEADER_LINE) == 2, timeout=LEASE_TTL + 1), server.log_text()
    assert time.monotonic() - killed_at < LEASE_TTL / 2, "the survivor waited for the lease to expire"
    assert wait_until(lambda: all(run_of(server, i)["status"] == "SUCCESS" for i in more), timeout=6), admin(
        server, "GET", "/__admin/runs"
    )
    assert wait_until(lambda: all_acked(server, more), timeout=5), ledger(server)
    time.sleep(0.3)
    for instance in more:
        got = statuses(receiver.for_instance(instance))
        assert set(got) == set(STATUSES) and got == sorted(got, key=STATUSES.index), (instance, got)
        for status in STATUSES:  # a RUNNING or SUCCESS attempt in flight at the kill may come twice
            assert got.count(status) == 1 or (instance, status) not in pre_kill_acks, (instance, got)
    assert "Respawning worker" in server.log_text()
    assert wait_until(lambda: redeem(server, authorize(server))["code"] == 200, timeout=3)


# -- 7. --workers without --state ----------------------------------------------------------------------
def test_workers_without_state_exits_2_naming_state() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPA_MOCK_")}
    done = subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--quiet", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "--state" in done.stderr, done.stderr
