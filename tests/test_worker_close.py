"""granian's workers (the RSGI gate) over real HTTP: with `--state FILE` a stop (SIGINT, SIGTERM) closes each
worker's platform, so every request answered before it is in the journal after a restart and every accepted run
and scene is kept; and a fault's latency holding the app's thread never holds an admin read up."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.cli import STOP_CLOSE_BUDGET, STOP_GRACE
from mock_server.testing.receiver import CallbackReceiver
from tests.plugins.durable import Tree, admin
from tests.plugins.emulator import EXECUTE, LIST_PLANS, SCENE
from tests.plugins.engine import http_login

pytestmark = pytest.mark.http

# What a stop may take (as tests/test_stop.py): the grace, the closing budget, slack for a loaded machine.
BOUND = STOP_GRACE + STOP_CLOSE_BUDGET + 1.0
TRAFFIC = 0.6  # seconds of traffic before the stop: a few hundred requests, well inside journal_size


class Traffic:
    """Client threads, each on its keep-alive connection, sending marked plan listings, executions and scene
    saves until the server stops answering; what was answered is what the server owes to its state file."""

    def __init__(self, base_url: str, headers: dict[str, str], callback_url: str, threads: int = 2) -> None:
        self.base_url, self.headers, self.callback_url = base_url, headers, callback_url
        self.errors: list[BaseException] = []  # anything but the server going away
        self.marks: list[str] = []  # listings answered, by their `mark` query parameter
        self.runs: list[str] = []  # executions accepted, by planInstanceId
        self.scenes: list[str] = []  # scenes accepted, by their instance id
        self._count = itertools.count()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(threads)]

    def start(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.01))
        assert not any(t.is_alive() for t in self._threads), "a client still waits on a stopped server"
        assert not self.errors, self.errors

    def _send(self) -> None:
        with requests.Session() as session:
            while True:
                n = next(self._count)
                try:
                    if n % 7 == 3:
                        self._execute(session)
                    elif n % 31 == 5:
                        self._scene(session, n)
                    else:
                        self._list(session, n)
                except requests.RequestException:
                    return  # the server stopped (refused, reset, or cut mid-answer: nothing was answered)
                except Exception as exc:  # noqa: BLE001 - a wrong answer: join() reports it
                    self.errors.append(exc)
                    return

    def _list(self, session: requests.Session, n: int) -> None:
        reply = session.get(self.base_url + LIST_PLANS, params={"mark": f"m{n}"}, headers=self.headers, timeout=10)
        assert reply.json()["code"] == 200, reply.text
        with self._lock:
            self.marks.append(f"m{n}")

    def _execute(self, session: requests.Session) -> None:
        reply = session.post(
            self.base_url + EXECUTE.format("acf42dd3"),
            headers=self.headers,
            json={"processPlanId": "acf42dd3", "callbackUrl": self.callback_url},
            timeout=10,
        ).json()
        assert reply["code"] == 200, reply
        with self._lock:
            self.runs.append(str(reply["data"][0]["planInstanceId"]))

    def _scene(self, session: requests.Session, n: int) -> None:
        form = {
            "processPlanId": "acf42dd3",
            "callbackUrl": self.callback_url,
            "sceneName": f"s{n}",
            "executeStrategy": "cycle",
            "dimension": "hours",
            "intervals": "5",
        }
        reply = session.post(self.base_url + SCENE, headers=self.headers, data=form, timeout=10).json()
        assert reply["code"] == 200, reply
        with self._lock:
            self.scenes.append(_scene_id(reply["data"]))


def _scene_id(data: Any) -> str:
    return str(data["instanceId"] if isinstance(data, dict) else data)


def _stop(tree: Tree, sig: signal.Signals, group: bool) -> tuple[int, float]:
    """`sig` to the whole process group (Ctrl-C in a terminal) or to the supervisor only (a process manager)."""
    assert tree.proc is not None
    started = time.monotonic()
    if group:
        os.killpg(tree.proc.pid, sig)
    else:
        tree.proc.send_signal(sig)
    try:
        returncode = tree.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        returncode = -999
    return returncode, time.monotonic() - started


@pytest.mark.parametrize(
    ("workers", "sig", "group"),
    [
        (1, signal.SIGINT, True),
        (1, signal.SIGTERM, False),
        (2, signal.SIGINT, True),
        (2, signal.SIGTERM, False),
    ],
    ids=["1-worker-sigint-group", "1-worker-sigterm", "2-workers-sigint-group", "2-workers-sigterm"],
)
def test_everything_answered_before_a_stop_is_there_after_a_restart(
    trees: list[Tree], tmp_path: Path, receiver: CallbackReceiver, workers: int, sig: signal.Signals, group: bool
) -> None:
    state = str(tmp_path / "state.db")
    log = tmp_path / "first.log"
    first = Tree("--server", "granian", "--workers", str(workers), "--state", state, log=log)
    trees.append(first)
    first.start()
    traffic = Traffic(first.base_url, http_login(first.base_url), receiver.url).start()
    time.sleep(TRAFFIC)
    returncode, took = _stop(first, sig, group)
    traffic.join(10)
    text = log.read_text(errors="replace")
    assert returncode == 0 and took < BOUND, (returncode, took, text[-3000:])
    assert "dpa-mock stopped" in text and "Traceback" not in text, text[-3000:]
    assert len(traffic.marks) > 20 and traffic.runs and traffic.scenes, (traffic.marks, traffic.runs, traffic.scenes)

    second = Tree("--server", "granian", "--state", state, log=tmp_path / "second.log")
    trees.append(second)
    second.start()
    journal = admin(second, "GET", "/__admin/requests?limit=10000")
    journalled = {e["query"].get("mark") for e in journal if e["path"] == LIST_PLANS}
    lost = [m for m in traffic.marks if m not in journalled]
    assert not lost, f"{len(lost)} of {len(traffic.marks)} answered requests are missing from the journal: {lost}"
    executions = [e for e in journal if e["path"] == EXECUTE.format("acf42dd3") and e["code"] == 200]
    assert len(executions) >= len(traffic.runs)
    runs = {r["planInstanceId"] for r in admin(second, "GET", "/__admin/runs")}
    assert set(traffic.runs) <= runs, sorted(set(traffic.runs) - runs)
    scenes = {_scene_id(s) for s in admin(second, "GET", "/__admin/scenes")}
    assert set(traffic.scenes) <= scenes, sorted(set(traffic.scenes) - scenes)


def test_an_admin_read_never_waits_behind_a_faults_latency(trees: list[Tree], tmp_path: Path) -> None:
    # One app thread (the default), held by a request sleeping a fault's latency: an admin read sent to that
    # thread because a fault was still set waited for it (what made tests/test_stop.py's polling time out).
    srv = Tree("--server", "granian", log=tmp_path / "serve.log")
    trees.append(srv)
    srv.start()
    fault = {"path": LIST_PLANS, "latencyMs": 30_000, "times": 2}
    assert requests.post(srv.base_url + "/__admin/faults", json=fault, timeout=5).json()["code"] == 200

    def held() -> None:
        with contextlib.suppress(requests.RequestException):  # cut when the server stops
            requests.get(srv.base_url + LIST_PLANS, timeout=60)

    threading.Thread(target=held, daemon=True).start()
    time.sleep(0.5)  # the listing took one use of the fault and sleeps; the other use keeps it set
    started = time.monotonic()
    faults = requests.get(srv.base_url + "/__admin/faults", timeout=5).json()["data"]
    assert time.monotonic() - started < 1 and faults[0]["remaining"] == 1, faults
