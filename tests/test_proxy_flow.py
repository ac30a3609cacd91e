"""The proxy in front of `dpa-mock serve`: the document's whole flow, callbacks included, passes unchanged and clean."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from mock_server import jsonbytes
from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess, free_port
from tests.plugins.emulator import DOC_CLIENT, EXECUTE, LIST_PLANS, MODELS, OUT_PARAMS, SCENE
from tests.plugins.engine import http_admin, http_advance, http_login
from tests.plugins.proxy import admin, proxy_for, proxy_process, serve

pytestmark = pytest.mark.http


@pytest.fixture
def proxied(live: ServerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    with proxy_for(live, tmp_path) as proxy:
        yield proxy


def _same_answer(proxy: ServerProcess, live: ServerProcess, method: str, path: str, **kwargs: Any) -> requests.Response:
    """The same read through the proxy and directly: the proxy's answer must be byte for byte the target's."""
    via = requests.request(method, proxy.base_url + path, timeout=10, **kwargs)
    direct = requests.request(method, live.base_url + path, timeout=10, **kwargs)
    assert via.status_code == direct.status_code
    assert via.content == direct.content
    assert via.headers["Content-Type"] == direct.headers["Content-Type"]
    return via


def _execute(base: str, headers: dict[str, str], plan_id: str, **body: Any) -> str:
    reply = requests.post(
        base + EXECUTE.format(plan_id), headers=headers, timeout=10, json={"processPlanId": plan_id, **body}
    ).json()
    assert reply["code"] == 200, reply
    return str(reply["data"][0]["planInstanceId"])


def test_the_documents_flow_passes_unchanged_with_no_findings(
    live: ServerProcess, proxied: ServerProcess, receiver: CallbackReceiver, tmp_path: Path
) -> None:
    base = proxied.base_url
    headers = http_login(base, DOC_CLIENT)  # 1.1 and 1.2 through the proxy
    plans = _same_answer(proxied, live, "GET", LIST_PLANS, headers=headers).json()
    assert {p["processPlanId"] for p in plans["data"]} >= {"acf42dd3", "d4a8e6f1"}
    _same_answer(proxied, live, "POST", MODELS, headers=headers, json={"processPlanId": "acf42dd3"})
    model_var_req = [{"modelId": "md1606743910508", "mapParam": {"DPA_MODEL_WORKDIR": "/srv/work"}}]
    done = _execute(base, headers, "acf42dd3", callbackUrl=receiver.url, modelVarReq=model_var_req)
    paused = _execute(base, headers, "d4a8e6f1", callbackUrl=receiver.url)
    scene = requests.post(
        base + SCENE,
        headers=headers,
        timeout=10,
        data={
            "processPlanId": "acf42dd3",
            "callbackUrl": receiver.url,
            "dimension": "seconds",
            "intervals": "5",
            "executeStrategy": "single",
            "sceneName": "巡检",
            "modelVarReq": json.dumps(model_var_req),
        },
    ).json()
    assert scene["code"] == 200, scene
    http_advance(live.base_url, 30)
    http_admin(live.base_url, "POST", f"/__admin/runs/{paused}/resume")
    http_advance(live.base_url, 30)
    runs = {r["planInstanceId"]: r for r in http_admin(live.base_url, "GET", "/__admin/runs")}
    assert len(runs) == 3 and {r["status"] for r in runs.values()} == {"SUCCESS"}
    assert receiver.wait_for(lambda d: len(d) >= 11, timeout=10)  # 3 + 5 (PENDING, then RUNNING again) + 3

    # Every callback reached the receiver's own URL with exactly the bytes the target sent the proxy.
    for instance in runs:
        ledger = http_admin(live.base_url, "GET", "/__admin/callbacks", params={"planInstanceId": instance})
        delivered = receiver.for_instance(instance)
        assert [d.raw for d in delivered] == [jsonbytes.dumps(a["payload"]) for e in ledger for a in e["attempts"]]
        assert all(d.path == "/callback" for d in delivered)
        assert all(e["url"].startswith(base + "/__proxy/callback/") and e["state"] == "acked" for e in ledger)
    assert [d.json["status"] for d in receiver.for_instance(paused)] == [
        "DEFAULT",
        "RUNNING",
        "PENDING",
        "RUNNING",
        "SUCCESS",
    ]
    _same_answer(
        proxied, live, "GET", OUT_PARAMS, headers=headers, params={"processPlanId": "acf42dd3", "planInstanceId": done}
    )

    assert admin(proxied, "findings") == []
    exchanges = admin(proxied, "exchanges")
    callbacks = [e for e in exchanges if e["kind"] == "callback"]
    assert len(callbacks) == len(receiver.deliveries)
    assert {e["verdict"] for e in exchanges} == {"ok"}
    assert {e["interface"] for e in exchanges if e["kind"] == "api"} >= {"1.1", "1.2", "2", "3", "4", "5", "6"}
    page = requests.get(base + "/__admin/ui", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "opExecutePlanByApi" in page.text and "queryPlanRunOutParam" in page.text

    proxied.stop()  # SIGTERM: the report is written on the way out
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert "0 violations, 0 leniencies, 0 observations" in report
    assert data["summary"]["callbacks"] == len(receiver.deliveries) and data["findings"] == []
    assert data["callbackSequences"][done] == ["DEFAULT", "RUNNING", "SUCCESS"]
    token = headers["Authorization"].split()[1]
    for text in (report, json.dumps(data), (tmp_path / "proxy.log").read_text()):
        assert DOC_CLIENT["client_secret"] not in text and token not in text
        assert DOC_CLIENT["client_secret"].split("+")[0] not in text


# -- byte-exact forwarding, checked against an echo server ------------------------------------------------
class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        seen = {"target": self.path, "headers": [[k, v] for k, v in self.headers.items()], "body": raw.hex()}
        body = json.dumps(seen).encode() + b"\n\xff raw tail"
        self.send_response(299, "Odd Reason")
        self.send_header("Content-Type", "application/x-odd")
        self.send_header("X-Reply", "kept")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def echo() -> Iterator[str]:
    yield from serve(_Echo)


def test_requests_and_answers_are_forwarded_byte_for_byte(echo: str, tmp_path: Path) -> None:
    target = "/api/dpa/process//processPlan/opExecutePlanByApi/x%2fy?a=%2f&b=+&c=%E4%B8%AD"
    body = b'{"processPlanId": "x/y",  "odd":"\\u00e9"}\xff\x00'
    with proxy_process(echo, "--quiet", log=tmp_path / "proxy.log") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in [
            ("Content-Type", "application/json"),
            ("X-Custom", "v1"),
            ("Authorization", "Bearer abc.def"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "not forwarded"),
            ("Content-Length", str(len(body))),
        ]:
            conn.putheader(name, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        raw = answer.read()
        conn.close()
    assert (answer.status, answer.reason) == (299, "Odd Reason")
    assert answer.getheader("X-Reply") == "kept" and answer.getheader("Content-Type") == "application/x-odd"
    assert raw.endswith(b"\n\xff raw tail")
    seen = json.loads(raw.split(b"\n")[0])
    assert seen["target"] == target
    assert bytes.fromhex(seen["body"]) == body
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-custom"] == "v1" and headers["authorization"] == "Bearer abc.def"
    assert headers["content-type"] == "application/json" and headers["host"] == echo.split("//")[1]
    assert "x-hop" not in headers and "connection" not in headers  # hop-by-hop, and what Connection names
    assert "user-agent" not in headers and "accept-encoding" not in headers  # nothing added on the way


def test_callback_url_is_rewritten_and_nothing_else(echo: str) -> None:
    body = b'{ "processPlanId":"p1",\n "callbackUrl" : "http:\\/\\/me.example\\/cb?x=1", "modelVarReq": [] }'
    form = "processPlanId=p1&callbackUrl=" + quote("http://me.example/cb?x=1", safe="") + "&sceneName=%E5%B7%A1"
    with proxy_process(echo, "--quiet") as proxy:
        seen = json.loads(
            requests.post(
                proxy.base_url + EXECUTE.format("p1"),
                data=body,
                timeout=10,
                headers={"Content-Type": "application/json"},
            ).content.split(b"\n")[0]
        )
        sent = bytes.fromhex(seen["body"])
        relay = json.loads(sent)["callbackUrl"]
        assert relay.startswith(proxy.base_url + "/__proxy/callback/")
        assert sent == body.replace(b'"http:\\/\\/me.example\\/cb?x=1"', json.dumps(relay).encode())
        seen = json.loads(
            requests.post(
                proxy.base_url + SCENE,
                data=form,
                timeout=10,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).content.split(b"\n")[0]
        )
        sent_form = bytes.fromhex(seen["body"]).decode()
        assert sent_form.startswith(
            "processPlanId=p1&callbackUrl=" + quote(proxy.base_url + "/__proxy/callback/", safe="")
        )
        assert sent_form.endswith("&sceneName=%E5%B7%A1")


def test_the_proxy_answers_while_a_callback_relay_waits(
    live: ServerProcess, proxied: ServerProcess, receiver: CallbackReceiver
) -> None:
    receiver.timeout(1.5, times=1)  # the first callback (DEFAULT) is answered only after 1.5 s
    headers = http_login(proxied.base_url)
    _execute(proxied.base_url, headers, "acf42dd3", callbackUrl=receiver.url)
    assert receiver.wait_for(lambda d: len(d) >= 1, timeout=10)
    # The relay of that callback is still waiting for the receiver; the proxy serves other calls meanwhile.
    reply = requests.get(proxied.base_url + LIST_PLANS, headers=headers, timeout=10)
    assert reply.json()["code"] == 200
    assert [e for e in admin(proxied, "exchanges") if e["kind"] == "callback"] == []  # not answered yet


def test_an_oversized_body_is_refused_and_not_forwarded(echo: str) -> None:
    with proxy_process(echo, "--quiet") as proxy:
        reply = requests.post(
            proxy.base_url + "/api/dp/auth/oauth/token",
            data=b"x" * (16 * 1024 * 1024 + 1),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        exchanges = admin(proxy, "exchanges")
    assert reply.status_code == 413 and reply.json()["code"] == 400
    assert [e for e in exchanges if e["kind"] == "api"] == []  # nothing was sent on


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--target", "ftp://staging"], 2, "'ftp://staging' is not an http(s) URL"),
        (["--target", "http://h", "--callback-public-url", "qa-runner:29042"], 2, "is not an http(s) URL"),
        (
            ["--target", "http://h", "--ca-bundle", __file__, "--insecure"],
            2,
            "--ca-bundle and --insecure exclude each other",
        ),
        # found at start, not after a session whose report would be lost
        (["--target", "http://h", "--report", f"{__file__}/r.md"], 2, f"--report {__file__}/r.md: cannot write into"),
        (["--target", "http://h", "--report", str(Path(__file__).parent)], 2, "is a directory"),
        (["--target", "http://h", "--record", f"{__file__}/rec"], 2, "Not a directory"),
        (["--target", "http://h", "--threads", "4"], 2, "4 is not in the range x>=8"),
        (["--target", "http://h", "--max-exchanges", "0"], 2, "0 is not in the range x>=1"),
    ],
)
def test_bad_options_are_refused_with_a_message(args: list[str], code: int, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mock_server", "proxy", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == code and message in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mock_server", "proxy", "--target", "http://h", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"dpa-mock proxy: cannot serve on 127.0.0.1:{port}: Address already in use"


def test_a_proxy_never_targets_itself() -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "mock_server", "proxy", "--target", f"http://localhost:{port}", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "is this proxy itself" in result.stderr


def test_a_target_that_does_not_answer_gets_a_502_envelope(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with proxy_process(dead, "--quiet") as proxy:  # its readiness probe is answered by the proxy itself: 502
        reply = requests.get(proxy.base_url + LIST_PLANS, headers={"Authorization": "Bearer x"}, timeout=10)
        found = admin(proxy, "findings")
    assert reply.status_code == 502 and reply.json()["code"] == 503 and "unreachable" in reply.json()["message"]
    assert ("observation", "server", "unreachable") in {(f["verdict"], f["side"], f["check"]) for f in found}


def test_head_keeps_the_length_the_target_announced(live: ServerProcess, proxied: ServerProcess) -> None:
    via = requests.head(proxied.base_url + LIST_PLANS, timeout=10)
    direct = requests.head(live.base_url + LIST_PLANS, timeout=10)
    assert via.status_code == direct.status_code
    assert via.headers["Content-Length"] == direct.headers["Content-Length"] != "0"
    # the client's HEAD is an observation; the answer has no body, so nothing on the server's side (an empty
    # body was a violation, 'not an envelope', on every HEAD)
    assert [(f["verdict"], f["side"], f["check"]) for f in admin(proxied, "findings")] == [
        ("observation", "client", "method")
    ]
