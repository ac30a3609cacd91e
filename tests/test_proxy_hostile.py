"""The proxy against hostile clients, slow or broken targets and receivers, and careless operators, over real HTTP."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import pytest
import requests

from mock_server.proxy.forward import Destination, ForwardError, send
from mock_server.testing.server import ServerProcess
from tests.plugins.emulator import EXECUTE, LIST_PLANS, OUT_PARAMS, SCENE
from tests.plugins.proxy import admin, findings, proxy_process, serve

pytestmark = pytest.mark.http
BEARER = {"Authorization": "Bearer t0ken-for-tests"}
SLOW = 3.0  # seconds a slow target or receiver takes: long against a fast answer, short for the suite
HANG = 8.0  # longer than the grace the proxy gives exchanges in flight when it stops (5 s)


class _Fake(BaseHTTPRequestHandler):
    """A target and a callback receiver in one: the path says how to behave."""

    protocol_version = "HTTP/1.1"
    bodies: ClassVar[list[bytes]] = []  # what reached it, in order
    seen_headers: ClassVar[list[dict[str, str]]] = []  # and with which headers

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        body = self._body()
        type(self).bodies.append(body)
        type(self).seen_headers.append(dict(self.headers))
        if "/slow" in self.path:
            time.sleep(SLOW)
        if "/hang" in self.path:
            time.sleep(HANG)
        if "/garbage" in self.path:
            self.wfile.write(b"HELLO, THIS IS NOT HTTP\r\n\r\n")
            return
        if "/trickle" in self.path:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.5)
            return
        if "opExecutePlanByApi" in self.path:
            answer = {"code": 200, "message": "success", "data": [{"processPlanId": "p1", "planInstanceId": "i1"}]}
            self._send(200, json.dumps(answer).encode())
        elif "queryPlanRunOutParam" in self.path:
            outputs = [{"modelName": "m", "processModelId": "w1", "mapParam": [{"nodeName": "n", "result": "r"}]}]
            self._send(200, json.dumps({"code": 200, "message": "success", "data": outputs}).encode())
        elif "/cb" in self.path:
            self._send(200, b"SUCCESS", "text/plain")
        else:
            self._send(200, b'{"code":200,"message":"success","data":[]}')


@pytest.fixture
def fake() -> Iterator[str]:
    _Fake.bodies, _Fake.seen_headers = [], []
    yield from serve(_Fake)


@pytest.fixture
def other_receiver() -> Iterator[str]:
    yield from serve(_Fake)


def _relay_url(proxy: ServerProcess, callback_url: str) -> str:
    """Execute through the proxy; the fake target saw the relay address the proxy put in place of callback_url."""
    reply = requests.post(
        proxy.base_url + EXECUTE.format("p1"),
        headers=BEARER,
        timeout=10,
        json={"processPlanId": "p1", "callbackUrl": callback_url},
    )
    assert reply.json()["code"] == 200
    return str(json.loads(_Fake.bodies[-1])["callbackUrl"])


def _timed(method: str, url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=30, **kwargs)
    return response, time.monotonic() - started


def _callback(url: str, status: str = "DEFAULT") -> tuple[requests.Response, float]:
    return _timed(
        "POST", url, json={"planInstanceId": f"i-{status}-{time.monotonic()}", "processPlanId": "p1", "status": status}
    )


def test_stalled_clients_do_not_lock_others_out(fake: str) -> None:
    # waitress' default connection limit (100) let 100 half-sent requests lock everyone out until they timed out
    with proxy_process(fake, "--quiet") as proxy:
        stalled = []
        try:
            for _ in range(150):
                sock = socket.create_connection(("127.0.0.1", proxy.port))
                sock.sendall(b"POST /api/dp/auth/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
                stalled.append(sock)
            reply, took = _timed("GET", proxy.base_url + LIST_PLANS, headers=BEARER)
            assert reply.json()["code"] == 200 and took < 2
        finally:
            for sock in stalled:
                sock.close()


def test_a_slow_receiver_holds_only_its_share_of_threads(fake: str, other_receiver: str) -> None:
    # --threads 16: 8 may wait on the target, 6 on receivers, 4 of them on one receiver
    with proxy_process(fake, "--quiet", "--threads", "16") as proxy:
        slow, fast = _relay_url(proxy, fake + "/slow/cb"), _relay_url(proxy, other_receiver + "/cb")
        with ThreadPoolExecutor(10) as pool:
            waiting = [pool.submit(_callback, slow) for _ in range(10)]
            time.sleep(0.5)  # the slow receiver now holds what it may
            fast_reply, fast_took = _callback(fast)
            plans, plans_took = _timed("GET", proxy.base_url + LIST_PLANS, headers=BEARER)
            view, view_took = _timed("GET", proxy.base_url + "/__admin/summary")
            results = [f.result() for f in waiting]
        assert fast_reply.text == "SUCCESS" and fast_took < 1  # another receiver is still served at once
        assert plans.json()["code"] == 200 and plans_took < 1 and view.status_code == 200 and view_took < 1
        relayed = [r for r, _ in results if r.status_code == 200]
        refused = [(r, took) for r, took in results if r.status_code == 503]
        assert len(relayed) == 4 and len(refused) == 6
        assert all(took < 1 and "busy" in r.text and r.headers["Retry-After"] == "1" for r, took in refused)
        assert len(findings(proxy, check="proxy-busy", side="client")) == 6
        page = requests.get(proxy.base_url + "/__admin/ui", timeout=10).text
        assert "<div class='error'>dpa-mock proxy: busy: too many callbacks are already waiting for" in page
        assert "http-equiv='refresh'" not in page and "details[open]" in page  # an open curl line stays open


def test_a_slow_target_never_starves_callbacks_or_the_views(fake: str) -> None:
    # An advance through the proxy that waits for callbacks through the same proxy deadlocked when the target's
    # calls held every thread: now they hold half, and calls beyond that are refused at once.
    with proxy_process(fake, "--quiet", "--threads", "8") as proxy:
        relay = _relay_url(proxy, fake + "/cb")
        with ThreadPoolExecutor(6) as pool:
            waiting = [
                pool.submit(_timed, "GET", proxy.base_url + "/slow" + LIST_PLANS, headers=BEARER) for _ in range(6)
            ]
            time.sleep(0.5)
            callback, callback_took = _callback(relay)
            view, view_took = _timed("GET", proxy.base_url + "/__admin/ui")
            results = [f.result() for f in waiting]
        assert callback.text == "SUCCESS" and callback_took < 1
        assert view.status_code == 200 and view_took < 1
        refused = [(r, took) for r, took in results if r.status_code == 503]
        assert len(refused) == 2 and len([r for r, _ in results if r.status_code == 200]) == 4
        for reply, took in refused:
            assert took < 1 and reply.json() == {"code": 503, "data": None, "message": reply.json()["message"]}
            assert reply.json()["message"].startswith("dpa-mock proxy: busy: 4 requests are already waiting")


def test_a_target_answering_garbage_or_trickling_gets_a_clear_502(fake: str) -> None:
    with proxy_process(fake, "--quiet", "--timeout", "2") as proxy:
        garbage = requests.get(proxy.base_url + "/garbage" + LIST_PLANS, headers=BEARER, timeout=10)
        trickle, took = _timed("GET", proxy.base_url + "/trickle" + LIST_PLANS, headers=BEARER)
        assert garbage.status_code == 502 and garbage.json()["code"] == 503
        assert garbage.json()["message"].startswith("dpa-mock proxy: target's answer is not HTTP")
        # the timeout bounds the whole answer, not each byte of it
        assert trickle.status_code == 502 and took < 4 and "no answer within 2 s" in trickle.json()["message"]
        server = findings(proxy, side="server")
        assert [(f["verdict"], f["check"]) for f in server] == [
            ("violation", "envelope"),
            ("observation", "unreachable"),
        ]


def test_an_answer_over_the_limit_is_abandoned(fake: str) -> None:
    with pytest.raises(ForwardError, match="larger than 10 bytes") as caught:
        send(Destination.parse(fake), "GET", "/", [], b"", 5, None, max_answer=10)
    assert caught.value.kind == "too-large"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "not an absolute URL"),
        ("file:///etc/passwd", "a file: URL"),
        ("http://127.0.0.1:{port}/cb", "points at this proxy itself"),
        ("http://localhost:{port}/__proxy/callback/" + "A" * 20, "points at this proxy itself"),
        ("http://receiver.example/" + "x" * 5000, "characters long"),
    ],
)
def test_a_callback_url_the_proxy_cannot_relay_is_left_as_sent(fake: str, url: str, says: str) -> None:
    with proxy_process(fake, "--quiet") as proxy:
        url = url.format(port=proxy.port)
        body = json.dumps({"processPlanId": "p1", "callbackUrl": url}).encode()
        reply = requests.post(
            proxy.base_url + EXECUTE.format("p1"),
            headers={**BEARER, "Content-Type": "application/json"},
            data=body,
            timeout=10,
        )
        assert reply.json()["code"] == 200
        assert _Fake.bodies[-1] == body  # not rewritten: the target decides what it makes of it
        found = findings(proxy, check="callback-url")
        assert len(found) == 1 and found[0]["verdict"] == "observation" and found[0]["side"] == "client"
        assert says in found[0]["message"]
        form = urlencode(
            {
                "processPlanId": "p1",
                "callbackUrl": url,
                "dimension": "hours",
                "intervals": "1",
                "executeStrategy": "single",
                "sceneName": "x",
            }
        ).encode()
        requests.post(
            proxy.base_url + SCENE,
            headers={**BEARER, "Content-Type": "application/x-www-form-urlencoded"},
            data=form,
            timeout=10,
        )
        assert _Fake.bodies[-1] == form and len(findings(proxy, check="callback-url")) == 2


def test_the_proxys_own_paths_are_never_forwarded(fake: str) -> None:
    with proxy_process(fake, "--quiet") as proxy:
        before = len(_Fake.bodies)  # the readiness probe went through
        for path in ("/__proxy/callback/short", "/__proxy/other", "/__proxy/callback/" + "A" * 20 + "/extra"):
            reply = requests.post(proxy.base_url + path, json={}, timeout=10)
            assert reply.status_code == 404 and reply.text == "dpa-mock proxy: unknown callback relay"
        # a path that merely ends like a relay address is a vendor call
        requests.post(proxy.base_url + "/api/x/__proxy/callback/" + "A" * 20, json={}, timeout=10)
        assert _Fake.bodies[before:] == [b"{}"]


def test_exchanges_and_findings_are_bounded_and_the_report_says_so(fake: str, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    proxy = proxy_process(fake, "--quiet", "--max-exchanges", "3", "--report", str(report)).start()
    try:
        for _ in range(5):
            requests.get(proxy.base_url + LIST_PLANS, timeout=10)  # no token: a client violation each
        # the readiness probe was exchange 1
        assert [e["id"] for e in admin(proxy, "exchanges")] == [4, 5, 6]
        summary = admin(proxy, "summary")
        assert (summary["exchanges"], summary["keptExchanges"], summary["violations"]) == (6, 3, 5)
        # a finding outliving its exchange keeps no curl line (it holds a body); the kept ones do
        curls = {f["exchange"]: f["curl"] for f in findings(proxy, check="auth")}
        assert [bool(curls[i]) for i in range(2, 7)] == [False, False, True, True, True]
        # a poller asks only for what it has not seen, or for the newest
        assert [e["id"] for e in admin(proxy, "exchanges?since=4")] == [5, 6]
        assert [e["id"] for e in admin(proxy, "exchanges?last=1")] == [6]
        assert [f["exchange"] for f in admin(proxy, "findings?last=2")] == [6, 6]
        assert admin(proxy, "findings?since=10&last=5") == []
        bad = requests.get(proxy.base_url + "/__admin/exchanges?since=-1", timeout=10)
        assert bad.status_code == 400 and "since and last must be whole numbers" in bad.json()["message"]
    finally:
        proxy.stop()
    text = report.read_text()
    assert "- kept: the last 3 exchanges and 10 findings" in text  # a violation and a leniency each
    assert "| #2 `GET /api/dpa/process/processPlan/queryPlanByUserId` and 4 more (#3, #4, #5, #6) |" in text
    assert "- #4 (auth):" in text  # the group's reproduction comes from an exchange still kept
    assert json.loads(report.with_suffix(".json").read_text())["summary"]["keptExchanges"] == 3


def test_a_report_that_cannot_be_written_at_exit_is_saved_elsewhere(fake: str, tmp_path: Path) -> None:
    # (one that cannot be written at start is refused then: test_proxy_flow's bad options)
    folder = tmp_path / "reports"
    log = tmp_path / "proxy.log"
    proxy = proxy_process(fake, "--quiet", "--report", str(folder / "r.md"), log=log).start()
    try:
        requests.get(proxy.base_url + LIST_PLANS, headers=BEARER, timeout=10)
        folder.rmdir()
        folder.write_text("the directory was replaced by a file during the session")
    finally:
        proxy.stop()
    said = log.read_text()
    assert "Traceback" not in said and f"cannot write {folder / 'r.md'}" in said
    fallback = Path(said.split("report written to ")[1].split(" and ")[0])
    assert fallback.exists() and "1 vendor calls" in fallback.read_text()
    fallback.unlink()
    fallback.with_suffix(".json").unlink()


def test_stopping_with_an_exchange_in_flight_still_writes_the_report(fake: str, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    log = tmp_path / "proxy.log"
    proxy = proxy_process(fake, "--report", str(report), log=log).start()
    requests.get(proxy.base_url + LIST_PLANS, headers=BEARER, timeout=10)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.get, proxy.base_url + "/hang" + LIST_PLANS, headers=BEARER, timeout=30)
        time.sleep(0.5)
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < HANG  # the report does not wait for the target
        pending.exception()
    text = report.read_text()
    assert "- exchanges: 1 vendor calls" in text
    assert "- 1 exchange(s) were still waiting for an answer when the proxy stopped (not in this report)" in text
    assert "not in the report" in log.read_text()


def test_a_recording_that_cannot_be_written_never_costs_the_platform_its_callback(fake: str, tmp_path: Path) -> None:
    with proxy_process(fake, "--quiet", "--record", str(tmp_path)) as proxy:
        relay = _relay_url(proxy, fake + "/cb")  # run i1 of plan p1
        requests.get(
            proxy.base_url + OUT_PARAMS,
            params={"processPlanId": "p1", "planInstanceId": "i1"},
            headers=BEARER,
            timeout=10,
        )
        recording = tmp_path / "recorded-plans.yaml"
        assert "nodeName: n" in recording.read_text()
        recording.unlink()
        recording.mkdir()  # the recording can no longer be replaced
        # a FAIL of the run whose outputs were recorded rewrites the recording: it fails, the callback does not
        reply = requests.post(relay, json={"planInstanceId": "i1", "processPlanId": "p1", "status": "FAIL"}, timeout=10)
        assert (reply.status_code, reply.text) == (200, "SUCCESS")


def test_a_callback_body_over_the_limit_is_refused_not_relayed_empty(fake: str) -> None:
    with proxy_process(fake, "--quiet") as proxy:
        relay = _relay_url(proxy, fake + "/cb")
        before = len(_Fake.bodies)
        reply = requests.post(
            relay, data=b"x" * (16 * 1024 * 1024 + 1), timeout=30, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 413 and "body over 16777216 bytes; not forwarded" in reply.json()["message"]
        assert len(_Fake.bodies) == before  # the receiver got nothing (it used to get an empty POST)


def _this_hosts_address() -> str:
    """An address of this host that is not loopback (the one its default route leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent (UDP): it only picks the route
        except OSError:
            return ""
        address = str(probe.getsockname()[0])
    return "" if address.startswith("127.") or address == "0.0.0.0" else address


def test_a_remote_client_cannot_reach_the_targets_admin_api_as_loopback(live: ServerProcess) -> None:
    # dpa-mock serve trusts loopback with its admin API; everything from the proxy is loopback to it
    address = _this_hosts_address()
    if not address:
        pytest.skip("this host has no address but loopback: no remote client to play")
    with proxy_process(live.base_url, "--quiet", "--host", "0.0.0.0") as proxy:
        remote = requests.post(f"http://{address}:{proxy.port}/__admin/clock/advance", json={"seconds": 1}, timeout=10)
        local = requests.post(f"{proxy.base_url}/__admin/clock/advance", json={"seconds": 1}, timeout=10)
    assert remote.status_code == 403 and "--admin-token" in remote.json()["message"]
    assert local.json()["code"] == 200  # a test suite on this host still drives the clock through the proxy


def test_only_the_targets_own_paths_get_a_forwarded_header(fake: str) -> None:
    address = _this_hosts_address()
    if not address:
        pytest.skip("this host has no address but loopback: no remote client to play")
    with proxy_process(fake, "--quiet", "--host", "0.0.0.0") as proxy:
        requests.get(f"http://{address}:{proxy.port}/__admin/runs", timeout=10)
        requests.get(f"http://{address}:{proxy.port}" + LIST_PLANS, headers=BEARER, timeout=10)
        requests.get(
            f"http://{address}:{proxy.port}/__admin/runs", headers={"X-Forwarded-For": "198.51.100.7"}, timeout=10
        )
    admin_call, vendor_call, already = _Fake.seen_headers[-3:]
    assert admin_call["Forwarded"] == f"for={address}"
    assert "Forwarded" not in vendor_call  # vendor calls stay verbatim
    assert "Forwarded" not in already and already["X-Forwarded-For"] == "198.51.100.7"


def test_a_second_stop_signal_skips_the_grace_but_never_the_report(fake: str, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    log = tmp_path / "proxy.log"
    proxy = proxy_process(fake, "--report", str(report), log=log).start()
    assert proxy.proc is not None
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.get, proxy.base_url + "/hang" + LIST_PLANS, headers=BEARER, timeout=30)
        time.sleep(0.5)
        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proxy.proc.send_signal(signal.SIGTERM)  # impatient: stop waiting for the exchange in flight
        proxy.proc.wait(timeout=HANG)
        assert time.monotonic() - started < 4  # not the 5 s grace
        pending.exception()
    proxy.stop()
    assert "Traceback" not in log.read_text()
    assert "- 1 exchange(s) were still waiting for an answer" in report.read_text()


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'"callbackUrl"', b"null", b'{"callbackUrl": 7}', b'{"callbackUrl": ["x"]}']
)
def test_a_scene_or_execution_body_of_any_json_shape_is_forwarded_and_judged(fake: str, body: bytes) -> None:
    with proxy_process(fake, "--quiet") as proxy:
        for path in (SCENE, EXECUTE.format("p1")):
            reply = requests.post(
                proxy.base_url + path, data=body, timeout=10, headers={**BEARER, "Content-Type": "application/json"}
            )
            assert reply.status_code == 200 and _Fake.bodies[-1] == body  # forwarded as sent, no proxy error
        assert [f for f in findings(proxy) if f["check"] == "unjudged"] == []


def test_relay_addresses_under_a_public_url_with_a_path_arrive_stripped_or_not(fake: str) -> None:
    # behind a reverse proxy publishing it at https://qa.example/dpa-proxy, which may or may not strip the path
    proxy = proxy_process(fake, "--quiet")
    proxy.args += ["--callback-public-url", f"http://127.0.0.1:{proxy.port}/dpa-proxy"]
    with proxy:
        relay = _relay_url(proxy, fake + "/cb")
        assert relay.startswith(f"http://127.0.0.1:{proxy.port}/dpa-proxy/__proxy/callback/")
        stripped = relay.replace("/dpa-proxy", "", 1)
        for url in (relay, stripped):
            assert _callback(url)[0].text == "SUCCESS"
        assert requests.post(proxy.base_url + "/dpa-proxy/__proxy/other", timeout=10).status_code == 404
        before = len(_Fake.bodies)
        requests.post(proxy.base_url + "/dpa-proxy/other", json={}, timeout=10)
        assert _Fake.bodies[before:] == [b"{}"]  # not the proxy's: forwarded


@pytest.fixture
def tls_fake(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The fake target over HTTPS with a self-signed certificate for 127.0.0.1, and that certificate."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_a_target_whose_certificate_is_not_trusted_is_named_and_trusted_when_told(tls_fake: tuple[str, Path]) -> None:
    target, cert = tls_fake
    with proxy_process(target, "--quiet") as proxy:
        untrusted = requests.get(proxy.base_url + LIST_PLANS, headers=BEARER, timeout=10)
    assert untrusted.status_code == 502 and untrusted.json()["message"] == (
        "dpa-mock proxy: target not trusted (give --ca-bundle FILE, or --insecure): its TLS certificate is not "
        "trusted (self-signed certificate)"
    )
    for trust in (["--ca-bundle", str(cert)], ["--insecure"]):
        with proxy_process(target, "--quiet", *trust) as proxy:
            assert requests.get(proxy.base_url + LIST_PLANS, headers=BEARER, timeout=10).json()["code"] == 200
