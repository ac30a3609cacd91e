"""F15 and F13 over real HTTP against `dpa-mock serve`: a header that is present but unreadable, and Content-Length
values the HTTP server refuses before the emulator sees the request."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from mock_server.testing.server import ServerProcess
from tests.plugins.network import raw_exchange

pytestmark = pytest.mark.http

LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
MODELS = "/api/dpa/process/processPlan/queryModelByPlanId"
CLOSE = b"\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module", params=["granian", "waitress"])
def srv(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess("--server", request.param) as server:
        yield server


@pytest.mark.parametrize(
    "value", [b"Bearer \xe4\xb8\xad", b"\xfc.\xfc.\xfc", b"Bearer \xfc.\xfc.\xfc", b"Bearer abc\x80"]
)
def test_a_non_ascii_authorization_header_is_malformed_not_missing(srv: ServerProcess, value: bytes) -> None:
    raw = raw_exchange(srv.port, b"GET " + LIST.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + CLOSE)
    body = raw.partition(b"\r\n\r\n")[2]
    answer = json.loads(body)
    assert answer["code"] == 403, answer
    assert "missing" not in answer["message"] and "malformed Authorization header" in answer["message"], answer
    assert "Bearer" in answer["message"]


def test_requests_latin1_header_is_malformed_too(srv: ServerProcess) -> None:
    s = requests.Session()
    s.trust_env = False
    answer = s.get(srv.base_url + LIST, headers={"Authorization": "ü.ü.ü"}, timeout=5).json()
    assert answer["code"] == 403 and "malformed Authorization header" in answer["message"], answer


def test_an_absent_or_empty_header_is_still_missing(srv: ServerProcess) -> None:
    for header in (b"", b"Authorization: \r\n"):
        raw = raw_exchange(srv.port, b"GET " + LIST.encode() + b" HTTP/1.1\r\nHost: x\r\n" + header + CLOSE[2:])
        answer = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert answer["code"] == 403 and answer["message"].startswith("missing Authorization header"), answer


# -- F13: Content-Length values granian refuses before the app (README: what the HTTP server refuses) ----------
@pytest.fixture(scope="module")
def granian() -> Iterator[ServerProcess]:
    with ServerProcess() as server:
        yield server


@pytest.mark.parametrize(
    ("content_length", "status"),
    [
        (b"Content-Length: -1", 400),
        (b"Content-Length: abc", 400),
        (b"Content-Length: +2", 400),
        (b"Content-Length: 0x2", 400),
        (b"Content-Length: 2, 2", 400),
        (b"Content-Length: 2\r\nContent-Length: 3", 400),
        (b"Content-Length: 99999999999999999999", 400),  # beyond 2**64 - 1
        (b"Content-Length: 18446744073709551615", 431),  # exactly 2**64 - 1
    ],
)
def test_content_lengths_granian_refuses_get_the_documented_empty_answer(
    granian: ServerProcess, content_length: bytes, status: int
) -> None:
    request = (
        b"POST "
        + MODELS.encode()
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + content_length
        + CLOSE
        + b"{}"
    )
    raw = raw_exchange(granian.port, request)  # returns only once the server closed the connection
    head, _, body = raw.partition(b"\r\n\r\n")
    assert int(head.split(b" ")[1]) == status and body == b"", raw[:300]
    assert b"connection: close" in head.lower()
    # The server goes on serving.
    assert requests.get(granian.base_url + "/__admin/clock", timeout=5).json()["code"] == 200


@pytest.mark.parametrize("length", [b"2, 2", b"1048577", b"1000000000000000000"])
def test_what_reaches_the_emulator_gets_an_envelope(granian: ServerProcess, length: bytes) -> None:
    request = (
        b"POST " + MODELS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n{}"
    )
    raw = raw_exchange(granian.port, request)
    head, _, body = raw.partition(b"\r\n\r\n")
    if length == b"2, 2":  # a list, even of equal values: granian's refusal
        assert int(head.split(b" ")[1]) == 400 and body == b""
        return
    answer = json.loads(body)
    assert answer["code"] == 400 and "max_body_bytes" in answer["message"], answer
