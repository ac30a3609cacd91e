"""The RSGI gate over real HTTP: its short way for the fast lane's reads answers exactly as the whole way does."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mock_server.testing.server import ServerProcess
from tests.test_hostile_http import LIST, login

pytestmark = pytest.mark.http
OUT = "/api/dpa/process//processPlan/queryPlanRunOutParam"
TOKEN = b"/api/dp/auth/oauth/token"
MODELS = b"/api/dpa/process/processPlan/queryModelByPlanId"
SCENE = b"/api/dpa/process/processPlan/saveTimingParam"
EXECUTE = b"/api/dpa/process//processPlan/opExecutePlanByApi/%s"


@pytest.fixture(scope="module", params=["inline", "threads", "state"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The default (the fast door on the event loop), and the fast door on the app's threads: with two threads,
    and with a shared store (whose transactions must not hold the event loop)."""
    where = Path(tmp_path_factory.mktemp("gate"))
    extra = {"inline": [], "threads": ["--threads", "2"], "state": ["--state", str(where / "state.db")]}
    with ServerProcess("--clock", "virtual", *extra[request.param], log=where / "serve.log") as server:
        yield server


def _exchange(port: int, request: bytes) -> tuple[bytes, bytes]:
    """(status line, body) of one request on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += s.recv(65536)
        head, _, body = raw.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
        )
        while len(body) < length:
            body += s.recv(65536)
        return head.split(b"\r\n")[0], body


def test_the_short_way_answers_as_the_whole_way(srv: ServerProcess) -> None:
    bearer = login(srv.base_url)["Authorization"].encode()
    requests_to_try = [
        b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % (LIST.encode(), bearer),
        b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % LIST.encode(),
        b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n" % LIST.encode(),
        b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nAuthorization: %s\r\n\r\n"
        % (LIST.encode(), bearer, bearer),
        b"GET %s?processPlanId=acf42dd3&planInstanceId=in1 HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
        % (OUT.encode(), bearer),
        b"GET %s?processPlanId=%%ff HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % (OUT.encode(), bearer),
        b"GET %s HTTP/1.1\r\nHost: \xe2\x98\x83.example\r\nAuthorization: %s\r\n\r\n" % (LIST.encode(), bearer),
        b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: bearer   %s  \r\n\r\n" % (LIST.encode(), bearer[7:]),
        # Writes take the short way too when ordinary: refusals and a read-only POST answer alike both ways.
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{" % TOKEN,
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 25\r\n\r\ncode=abcd&grant_type=nope" % TOKEN,
        b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
        b'Content-Length: 28\r\n\r\n{"processPlanId":"acf42dd3"}' % (MODELS, bearer),
        b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n1c\r\n{"processPlanId":"acf42dd3"}\r\n0\r\n\r\n' % (MODELS, bearer),
        b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 9\r\n\r\ncycle=bad" % (SCENE, bearer),
        b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}" % (EXECUTE % b"nope", bearer),
    ]
    short = [_exchange(srv.port, r) for r in requests_to_try]
    journal_short = requests.get(
        srv.base_url + "/__admin/requests", params={"limit": len(requests_to_try)}, timeout=5
    ).json()["data"]
    # A fault on a path nobody asks for sends every request the whole way (Flask), answering nothing itself.
    assert (
        requests.post(srv.base_url + "/__admin/faults", json={"path": "/nowhere", "code": 500}, timeout=5).json()[
            "code"
        ]
        == 200
    )
    try:
        whole = [_exchange(srv.port, r) for r in requests_to_try]
        journal_whole = requests.get(
            srv.base_url + "/__admin/requests", params={"limit": len(requests_to_try)}, timeout=5
        ).json()["data"]
    finally:
        requests.delete(srv.base_url + "/__admin/faults", timeout=5)
    assert short == whole
    assert [short_entry["status"] for short_entry in journal_short] == [e["status"] for e in journal_whole]
    assert [(e["path"], e["query"], e["code"]) for e in journal_short] == [
        (e["path"], e["query"], e["code"]) for e in journal_whole
    ]
    assert short[0][0].startswith(b"HTTP/1.1 200") and short[1][0].startswith(b"HTTP/1.1 403")
