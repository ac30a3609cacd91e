"""Issue 12 over real HTTP against `dpa-mock serve`: hostile clients and operator mistakes cannot take it down."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.server import ServerProcess, free_port
from tests.plugins.network import raw_exchange

pytestmark = pytest.mark.http

POC = {"client_id": "CfjisL9AeNc066tkxSiKig==", "client_secret": "xB5hQnmlNnc+iab3RODs6yHlcHqFHAM2e4PawddAxtI="}
LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
MODELS = "/api/dpa/process/processPlan/queryModelByPlanId"
EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3"
TOKEN = "/api/dp/auth/oauth/token"
READ_TIMEOUT = 3.0  # long enough that the requests below finish well within it even on a busy machine


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def login(base: str) -> dict[str, str]:
    s = _session()
    code = s.get(
        base + "/api/dp/auth/oauth/authorize",
        params={"response_type": "code", "scope": "default", "client_id": POC["client_id"]},
        timeout=5,
    )
    body = {"code": code.json()["data"]["code"], "grant_type": "authorization_code", **POC}
    token = s.post(base + TOKEN, json=body, timeout=5).json()["data"]["access_token"]
    return {"Authorization": f"Bearer {token}"}


def envelope_of(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default configuration, but for a short read timeout to keep the tests quick."""
    log = Path(tmp_path_factory.mktemp("hostile")) / "serve.log"
    with ServerProcess("--set", f"read_timeout={READ_TIMEOUT}", log=log) as server:
        yield server


@pytest.fixture
def auth(srv: ServerProcess) -> dict[str, str]:
    return login(srv.base_url)


def _runs(srv: ServerProcess) -> list[dict[str, Any]]:
    return _session().get(srv.base_url + "/__admin/runs", timeout=5).json()["data"]


# -- 1: a stalled client never delays the others ---------------------------------------------------------------
def test_stalled_clients_do_not_delay_others_and_are_closed_after_the_read_timeout(
    srv: ServerProcess, auth: dict[str, str]
) -> None:
    stalled = []
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", srv.port))
        if i % 2:  # mid-body: headers done, 10 of 1000 bytes sent
            s.sendall(
                f"POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: {auth['Authorization']}\r\nContent-Length: 1000\r\n\r\n0123456789".encode()
            )
        else:  # mid-headers
            s.sendall(f"GET {LIST} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        stalled.append(s)
    started = time.monotonic()
    s = _session()
    slowest = 0.0
    for _ in range(20):
        t0 = time.monotonic()
        r = s.get(srv.base_url + LIST, headers=auth, timeout=READ_TIMEOUT * 3)
        slowest = max(slowest, time.monotonic() - t0)
        assert r.status_code == 200 and r.json()["code"] == 200
        r = s.post(srv.base_url + MODELS, headers=auth, json={"processPlanId": "acf42dd3"}, timeout=READ_TIMEOUT * 3)
        assert r.json()["code"] == 200
    # Served while the stallers still hold their connections (before, the first request waited for them).
    assert time.monotonic() - started < READ_TIMEOUT - 0.5, "requests waited for the stalled clients"
    assert slowest < READ_TIMEOUT / 2
    for i, sock in enumerate(stalled):
        sock.settimeout(READ_TIMEOUT + 4)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes it: recv returns b"" instead of timing out
            answer += chunk
        sock.close()
        if i % 2:
            status, body = envelope_of(answer)
            assert status == 400 and body["code"] == 400 and "read_timeout" in body["message"]
    assert time.monotonic() - started < READ_TIMEOUT + 4
    log = srv.log_text()
    assert "body not received within read_timeout" in log
    journal = _session().get(srv.base_url + "/__admin/requests", timeout=5).json()["data"]
    refused = [e for e in journal if e["path"] == MODELS and e["status"] == 400]
    assert len(refused) >= 4 and all("read_timeout" in e["body"] for e in refused)


# -- 9: a body shorter than its Content-Length is never processed ---------------------------------------------
def test_a_body_cut_short_by_a_close_is_never_processed(srv: ServerProcess, auth: dict[str, str]) -> None:
    before = len(_runs(srv))
    body = json.dumps({"processPlanId": "acf42dd3"}).encode()
    head = (
        f"POST {EXECUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth['Authorization']}\r\nContent-Length: {len(body) + 50}\r\n\r\n"
    ).encode()
    raw_exchange(srv.port, head + body, wait=3, shut=True)
    time.sleep(0.2)
    assert len(_runs(srv)) == before
    # The same body with its true length does create a run: the count above could change.
    head = head.replace(f"Content-Length: {len(body) + 50}".encode(), f"Content-Length: {len(body)}".encode())
    _, answer = envelope_of(raw_exchange(srv.port, head + body, wait=1))
    assert answer["code"] == 200
    assert len(_runs(srv)) == before + 1


# -- 5, 6 and the other limits: 400 envelopes that name the limit ----------------------------------------------
@pytest.mark.parametrize(
    ("body", "setting"),
    [
        ("[" * 1000 + "]" * 1000, "json_max_depth"),
        ("[" * 100_000 + "]" * 100_000, "json_max_depth"),
        ('{"processPlanId": "acf42dd3", "x": ' + "[" * 40 + "]" * 40 + "}", "json_max_depth"),
        ('{"processPlanId": ' + "7" * 5000 + "}", "json_max_number_digits"),
        ('{"processPlanId": 1' + "0" * 400 + ".5}", "json_max_number_digits"),
        ('{"processPlanId": "' + "a" * 70_000 + '"}', "json_max_string_chars"),
        ('{"processPlanId": "acf42dd3", "x": [' + ",".join(["1"] * 20_000) + "]}", "json_max_values"),
        ('{"processPlanId": "' + "a" * 1_100_000 + '"}', "max_body_bytes"),
    ],
)
def test_json_limits_are_400_envelopes_naming_the_limit(
    srv: ServerProcess, auth: dict[str, str], body: str, setting: str
) -> None:
    r = _session().post(
        srv.base_url + MODELS, data=body.encode(), timeout=10, headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == 400, r.text[:300]
    assert setting in r.json()["message"]
    assert _session().get(srv.base_url + LIST, headers=auth, timeout=5).json()["code"] == 200
    journal = _session().get(srv.base_url + "/__admin/requests", params={"limit": 1}, timeout=5).json()
    assert journal["code"] == 200


def test_a_body_at_the_limits_is_accepted(srv: ServerProcess, auth: dict[str, str]) -> None:
    # The object is level 1: 31 nested arrays inside it make the 32 levels json_max_depth allows.
    body = (
        '{"processPlanId": "acf42dd3", "x": '
        + "[" * 31
        + "]" * 31
        + ', "n": '
        + "9" * 100
        + ', "s": "'
        + "a" * 65_536
        + '"}'
    )
    r = _session().post(
        srv.base_url + MODELS, data=body.encode(), timeout=10, headers={**auth, "Content-Type": "application/json"}
    )
    assert r.json()["code"] == 200, r.text[:300]


def test_chunked_bodies_are_received_whole_and_counted_against_the_limit(srv: ServerProcess) -> None:
    s = _session()
    r = s.post(
        srv.base_url + "/__admin/clock/advance",
        data=iter([b'{"seconds":', b" 0}"]),
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert r.json()["code"] == 200, r.text
    r = s.post(
        srv.base_url + MODELS, data=iter([b"x" * 65536] * 40), timeout=10, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "max_body_bytes" in r.json()["message"]


def test_a_deep_form_key_is_a_400_naming_the_limit(srv: ServerProcess, auth: dict[str, str]) -> None:
    key = "modelVarReq" + "[0]" * 1000
    r = _session().post(
        srv.base_url + "/api/dpa/process/processPlan/saveTimingParam",
        headers=auth,
        timeout=5,
        data={"processPlanId": "acf42dd3", key: "x"},
    )
    assert r.status_code == 400 and "json_max_depth" in r.json()["message"], r.text[:300]


# -- 8: secrets never leave ------------------------------------------------------------------------------------
def test_error_messages_name_the_field_never_the_secret(srv: ServerProcess) -> None:
    s = _session()
    code = s.get(
        srv.base_url + "/api/dp/auth/oauth/authorize",
        timeout=5,
        params={"response_type": "code", "scope": "default", "client_id": POC["client_id"]},
    ).json()["data"]["code"]
    for body in (
        {"code": code, "client_id": POC["client_id"], "client_secret": 7777777777, "grant_type": "authorization_code"},
        {
            "code": 987654321987,
            "client_id": POC["client_id"],
            "client_secret": POC["client_secret"],
            "grant_type": "authorization_code",
        },
        {
            "code": {"nested": "SECRETCODE1"},
            "client_id": POC["client_id"],
            "client_secret": ["SECRETLIST1"],
            "grant_type": "authorization_code",
        },
    ):
        r = s.post(srv.base_url + TOKEN, json=body, timeout=5)
        message = r.json()["message"]
        assert r.json()["code"] == 400, message
        for secret in ("7777777777", "987654321987", "SECRETCODE1", "SECRETLIST1", POC["client_secret"], code):
            assert secret not in message
        assert "client_secret" in message or "code" in message


def test_the_journal_masks_secrets_of_every_body(srv: ServerProcess) -> None:
    s = _session()
    secret = "TOPSECRET42x"
    bodies = [
        (f'{{"client_secret": "{secret}", "nested": {{"access_token": "{secret}"}}}}', "application/json"),
        (f'{{"client\\u005fsecret": "{secret}"}}', "application/json"),  # escaped key name
        (f'{{"Client_Secret": "{secret}", "CODE": "{secret}"}}', "application/json"),  # other casing
        (f'{{"client_secret": "a\\"{secret}", ', "application/json"),  # broken JSON, escaped quote
        (f'[{{"deep": [{{"refresh_token": "{secret}"}}]}}]', "application/json"),
        (f"client_secret={secret}&form[code]={secret}", "application/x-www-form-urlencoded"),
        (f"garbage client_secret = '{secret}' and more", "text/plain"),
        (f'"client_secret={secret}"', "application/json"),
    ]
    for body, media in bodies:
        s.post(srv.base_url + TOKEN, data=body.encode(), headers={"Content-Type": media}, timeout=5)
    s.get(srv.base_url + "/api/dp/auth/oauth/authorize", params={"code": secret, "client_secret": secret}, timeout=5)
    journal = s.get(srv.base_url + "/__admin/requests", params={"limit": 20}, timeout=5).json()["data"]
    assert len([e for e in journal if e["path"] in (TOKEN, "/api/dp/auth/oauth/authorize")]) >= len(bodies) + 1
    assert secret not in json.dumps(journal)
    assert secret not in srv.log_text()


# -- 2: admin time values in range -----------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [1e308, 1e15, 9e18])
def test_an_absurd_advance_is_a_400_and_breaks_nothing(
    srv: ServerProcess, auth: dict[str, str], seconds: float
) -> None:
    s = _session()
    before = s.get(srv.base_url + "/__admin/clock", timeout=5).json()["data"]["offset"]
    r = s.post(srv.base_url + "/__admin/clock/advance", json={"seconds": seconds}, timeout=5)
    assert r.status_code == 400 and r.json()["code"] == 400
    assert "9000-01-01" in r.json()["message"] and "seconds" in r.json()["message"]
    assert s.get(srv.base_url + LIST, headers=auth, timeout=5).json()["code"] == 200
    assert s.get(srv.base_url + "/__admin/clock", timeout=5).json()["data"]["offset"] == before


def test_a_fault_latency_beyond_a_minute_is_a_400(srv: ServerProcess) -> None:
    r = _session().post(srv.base_url + "/__admin/faults", json={"path": LIST, "latencyMs": 1e12}, timeout=5)
    assert r.status_code == 400 and "latencyMs" in r.json()["message"]
    assert _session().get(srv.base_url + "/__admin/faults", timeout=5).json()["data"] == []


@pytest.mark.parametrize("mode", ["real", "virtual"])
def test_a_state_file_with_an_impossible_clock_is_repaired_at_start_up(tmp_path: Path, mode: str) -> None:
    state = tmp_path / "state.db"
    with ServerProcess("--state", str(state), "--clock", mode) as first:
        assert (
            _session().post(first.base_url + "/__admin/clock/advance", json={"seconds": 60}, timeout=5).json()["code"]
            == 200
        )
    broken = {"offset": 1e308} if mode == "real" else {"start": 1e308, "now": float("inf")}
    with sqlite3.connect(state) as db:
        changed = db.execute(
            "UPDATE records SET body = ? WHERE kind = 'meta' AND key = ?", (json.dumps(broken), f"clock-{mode}")
        ).rowcount
    assert changed == 1
    with ServerProcess("--state", str(state), "--clock", mode, log=tmp_path / "serve.log") as second:
        clock = _session().get(second.base_url + "/__admin/clock", timeout=5).json()
        assert clock["code"] == 200 and abs(clock["data"]["now"] - time.time()) < 60
        assert login(second.base_url)
    assert "beyond what the clock represents" in (tmp_path / "serve.log").read_text()


# -- 10: admin through a proxy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}])
def test_admin_through_a_proxy_is_refused_without_a_token(srv: ServerProcess, header: dict[str, str]) -> None:
    r = _session().post(srv.base_url + "/__admin/reset", headers=header, timeout=5)
    assert r.status_code == 403 and "--admin-token" in r.json()["message"]
    assert _session().get(srv.base_url + "/__admin/clock", timeout=5).json()["code"] == 200


def test_admin_through_a_proxy_works_with_the_token(tmp_path: Path) -> None:
    with ServerProcess("--admin-token", "tok-123") as server:
        headers = {"X-Forwarded-For": "203.0.113.9"}
        assert _session().get(server.base_url + "/__admin/clock", headers=headers, timeout=5).status_code == 403
        r = _session().get(
            server.base_url + "/__admin/clock", headers={**headers, "X-Admin-Token": "tok-123"}, timeout=5
        )
        assert r.json()["code"] == 200


# -- 7: what the HTTP server layer passes ----------------------------------------------------------------------
def test_a_hundred_headers_and_64_kib_of_headers_are_served(srv: ServerProcess) -> None:
    many = "".join(f"X-Gateway-{i}: v\r\n" for i in range(99))  # + Host = 100 header lines
    request = f"GET /__admin/clock HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()
    status, body = envelope_of(raw_exchange(srv.port, request, wait=1))
    assert status == 200 and body["code"] == 200
    big = {f"X-Big-{i}": "v" * 8000 for i in range(8)}  # 64,000 bytes of values
    assert _session().get(srv.base_url + "/__admin/clock", headers=big, timeout=5).json()["code"] == 200


# -- 3: restarts just work; a port in use fails at once --------------------------------------------------------
def test_a_restart_on_the_same_port_works_at_once_after_a_crash_and_a_stop(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(port=port).start()
    for _ in range(20):  # the server closes these: each leaves a TIME_WAIT socket on the port
        raw_exchange(port, b"GET /__admin/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", wait=2)
    server.kill9()
    server = ServerProcess(port=port).start(timeout=10)  # was refused for about a minute
    for _ in range(20):
        raw_exchange(port, b"GET /__admin/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", wait=2)
    server.stop()
    ServerProcess(port=port).start(timeout=10).stop()


def test_a_port_really_in_use_fails_at_once_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "mock_server", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1 and time.monotonic() - started < 15
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--port" in lines[0], done.stderr


# -- 4: workers are replaced however often they die ------------------------------------------------------------
def _workers(pid: int) -> set[int]:
    """The live child processes of `pid`."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":  # granian forks its workers from the serving process
            out.add(int(entry))
    return out


def _wait_workers(pid: int, count: int, exclude: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = _workers(pid) - exclude
        if len(current) >= count:
            return current
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} workers after {timeout}s: {_workers(pid)}")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_killed_twice_in_a_row_is_replaced_and_the_server_keeps_serving(tmp_path: Path, workers: int) -> None:
    with ServerProcess(
        "--workers", str(workers), "--state", str(tmp_path / "s.db"), log=tmp_path / "serve.log"
    ) as server:
        assert server.proc is not None
        first = _wait_workers(server.proc.pid, workers, set())
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        replaced = _wait_workers(server.proc.pid, workers, {victim})
        newcomer = (replaced - first).pop()
        os.kill(newcomer, signal.SIGKILL)  # the same worker slot, dead again within a second or two
        _wait_workers(server.proc.pid, workers, {victim, newcomer})
        assert server.proc.poll() is None, server.log_text()[-2000:]
        deadline = time.monotonic() + 20  # a lone worker's replacement needs a moment to import and listen
        while True:
            try:
                _session().get(server.base_url + "/__admin/clock", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, server.log_text()[-2000:]
                time.sleep(0.1)
        for _ in range(10):
            assert _session().get(server.base_url + "/__admin/clock", timeout=5).json()["code"] == 200
        assert "crash loop" not in server.log_text()


# -- 11: --set reaches every setting and combines with every flag ----------------------------------------------
def test_set_combines_with_the_flag_of_the_same_setting_over_http(tmp_path: Path) -> None:
    with ServerProcess(
        "--set", "log_requests=false", "--set", "port=1", "--set", "clock=virtual", log=tmp_path / "serve.log"
    ) as server:  # the helper adds --port: the flag wins
        assert _session().get(server.base_url + "/__admin/clock", timeout=5).json()["data"]["mode"] == "virtual"


def test_waitress_too_closes_stalled_bodies_and_never_processes_a_short_one(tmp_path: Path) -> None:
    with ServerProcess("--server", "waitress", "--set", f"read_timeout={READ_TIMEOUT}") as server:
        auth = login(server.base_url)
        body = json.dumps({"processPlanId": "acf42dd3"}).encode()
        head = (
            f"POST {EXECUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Length: {len(body) + 50}\r\n\r\n"
        ).encode()
        raw_exchange(server.port, head + body, wait=2, shut=True)
        with socket.create_connection(("127.0.0.1", server.port)) as stalled:
            stalled.sendall(head + body)
            started = time.monotonic()
            stalled.settimeout(READ_TIMEOUT * 2 + 5)
            assert stalled.recv(100) == b""  # closed by the server (it used to wait 30 s)
            assert time.monotonic() - started < READ_TIMEOUT * 2 + 2
            assert _session().get(server.base_url + LIST, headers=auth, timeout=5).json()["code"] == 200
        runs = _session().get(server.base_url + "/__admin/runs", timeout=5).json()["data"]
        assert runs == []
