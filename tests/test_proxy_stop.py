"""`dpa-mock proxy` stops as `dpa-mock serve` does, over real HTTP: a stop signal is never lost, exchanges in
flight get a bounded grace with their answers sent, a second signal cuts at once, and the report is written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.proxy.cli import GRACE
from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import LIST_PLANS
from tests.plugins.network import in_background
from tests.plugins.proxy import ROOT, proxy_process, serve

pytestmark = pytest.mark.http
BEARER = {"Authorization": "Bearer t0ken-for-tests"}
SLOW = 1.5  # an exchange the target answers within the grace
HANG = GRACE + 4  # one it does not
BOUND = GRACE + 2.0  # what a stop with an exchange in flight may take, slack for a loaded machine included


class _Target(BaseHTTPRequestHandler):
    """A target answering every call with an empty success, after SLOW or HANG seconds if the path says so."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if "/slow" in self.path:
            time.sleep(SLOW)
        if "/hang" in self.path:
            time.sleep(HANG)
        body = b'{"code":200,"message":"success","data":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def target() -> Iterator[str]:
    yield from serve(_Target)


def _wait(proxy: ServerProcess, timeout: float = 20) -> int:
    assert proxy.proc is not None
    try:
        return proxy.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return -999  # still serving: the stop was lost


def _report(report: Path) -> dict[str, Any]:
    assert report.exists(), "no report was written"
    return dict(json.loads(report.with_suffix(".json").read_text(encoding="utf-8")))


def _stop_with_an_exchange_in_flight(
    target: str, tmp_path: Path, path: str, *signals: signal.Signals
) -> tuple[int, float, Any, str, dict[str, Any]]:
    """A proxy with a report, `signals` sent to it 0.3 s apart while the target holds a call to `path`: its exit
    code, how long the stop took, what the call got, the proxy's log and its JSON report."""
    report, log = tmp_path / "report.md", tmp_path / "proxy.log"
    proxy = proxy_process(target, "--report", str(report), log=log).start()
    try:
        client, outcome = in_background(
            lambda: requests.get(proxy.base_url + path + LIST_PLANS, headers=BEARER, timeout=30)
        )
        time.sleep(0.5)  # the call is at the target
        assert proxy.proc is not None
        started = time.monotonic()
        for n, sig in enumerate(signals):
            time.sleep(0.3 if n else 0)
            proxy.proc.send_signal(sig)
        returncode, took = _wait(proxy), time.monotonic() - started
        client.join(10)
    finally:
        proxy.stop()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "dpa-mock proxy stopped" in text, text[-3000:]
    assert outcome, "the call never ended"
    return returncode, took, outcome[0], text, _report(report)


def test_an_exchange_that_ends_within_the_grace_is_answered_and_reported(target: str, tmp_path: Path) -> None:
    returncode, took, answer, text, data = _stop_with_an_exchange_in_flight(target, tmp_path, "/slow", signal.SIGTERM)
    assert returncode == 0 and took < BOUND, (returncode, took, text[-3000:])
    assert isinstance(answer, requests.Response), answer  # answered, not cut
    assert answer.status_code == 200 and answer.json()["code"] == 200
    assert data["inFlight"] == 0
    assert [e for e in data["exchanges"] if "/slow" in json.dumps(e)], data["exchanges"]


def test_an_exchange_still_waiting_at_the_end_of_the_grace_is_cut_and_counted(target: str, tmp_path: Path) -> None:
    returncode, took, answer, text, data = _stop_with_an_exchange_in_flight(target, tmp_path, "/hang", signal.SIGINT)
    assert returncode == 0 and GRACE - 0.5 < took < BOUND, (returncode, took, text[-3000:])
    assert f"1 request(s) still running {GRACE:g} s after the stop: cut" in text
    assert isinstance(answer, requests.ConnectionError), answer  # cut, not answered late
    assert data["inFlight"] == 1


def test_a_second_signal_cuts_the_grace_at_once_and_the_report_is_still_written(target: str, tmp_path: Path) -> None:
    returncode, took, answer, text, data = _stop_with_an_exchange_in_flight(
        target, tmp_path, "/hang", signal.SIGINT, signal.SIGTERM
    )
    assert returncode == 0 and took < 1.5, (returncode, took, text[-3000:])  # not the grace
    assert isinstance(answer, requests.ConnectionError), answer
    assert data["inFlight"] == 1


# `dpa-mock proxy` with a stop signal handled while the main thread runs a weakref callback (tests/plugins/lost_stop.py).
LOST_STOP = """
import os

import mock_server.proxy.app
from mock_server import cli
from tests.plugins.lost_stop import signal_inside_a_finalizer, signal_on_request

if os.environ["DPA_TEST_STOP_IN_FINALIZER"] == "serving":  # as the proxy's loop reads a request carrying the cue
    signal_on_request()
else:  # while the proxy is being built
    init = mock_server.proxy.app.ProxyApp.__init__

    def signalled_then_built(self, *args, **kwargs):
        signal_inside_a_finalizer()
        init(self, *args, **kwargs)

    mock_server.proxy.app.ProxyApp.__init__ = signalled_then_built
cli.main()
"""


def _lost_stop_proxy(tmp_path: Path, target: str, when: str) -> ServerProcess:
    script = tmp_path / "lost_stop.py"
    script.write_text(LOST_STOP, encoding="utf-8")
    return ServerProcess(
        "--report",
        str(tmp_path / "report.md"),
        log=tmp_path / "proxy.log",
        command=[sys.executable, str(script), "proxy", "--target", target],
        env={"DPA_TEST_STOP_IN_FINALIZER": when, "PYTHONPATH": str(ROOT)},  # the script imports tests.plugins
        cwd=ROOT,
    )


def _stopped_though_the_interrupt_was_dropped(proxy: ServerProcess, tmp_path: Path) -> None:
    returncode = _wait(proxy)
    text = proxy.log_text()
    assert "Exception ignored" in text and "KeyboardInterrupt" in text, text[-3000:]  # the case arose
    assert returncode == 0, (returncode, text[-3000:])
    assert "dpa-mock proxy stopped" in text and "report written to" in text, text[-3000:]
    assert _report(tmp_path / "report.md")["inFlight"] == 0


def test_a_stop_whose_interrupt_a_finalizer_dropped_still_stops_a_serving_proxy(target: str, tmp_path: Path) -> None:
    proxy = _lost_stop_proxy(tmp_path, target, "serving").start()
    try:
        asking = {**BEARER, "X-Stop-In-Finalizer": "1"}
        answer = requests.get(proxy.base_url + LIST_PLANS, headers=asking, timeout=5)
        assert answer.json()["code"] == 200  # received before the stop: forwarded and answered in the grace
        _stopped_though_the_interrupt_was_dropped(proxy, tmp_path)
    finally:
        proxy.kill9()


def test_a_stop_whose_interrupt_a_finalizer_dropped_still_stops_a_starting_proxy(target: str, tmp_path: Path) -> None:
    proxy = _lost_stop_proxy(tmp_path, target, "starting")
    proxy.launch()  # no wait for it to serve: the signal is to land in its start-up
    try:
        _stopped_though_the_interrupt_was_dropped(proxy, tmp_path)
    finally:
        proxy.kill9()


def test_sigterm_while_starting_stops_with_a_word_not_a_silent_kill(target: str, tmp_path: Path) -> None:
    script = tmp_path / "term_while_starting.py"
    script.write_text(
        "import os, signal\n"
        "import mock_server.proxy.app\n"
        "from mock_server import cli\n"
        "init = mock_server.proxy.app.ProxyApp.__init__\n"
        "def terminated_while_built(self, *args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    init(self, *args, **kwargs)\n"
        "mock_server.proxy.app.ProxyApp.__init__ = terminated_while_built\n"
        "cli.main()\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script), "proxy", "--target", target, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert done.stderr.rstrip().endswith("dpa-mock proxy stopped") and "Traceback" not in done.stderr, done.stderr
