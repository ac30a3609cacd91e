"""F8 over real HTTP: a callbackUrl can never make the emulator a deputy against its own /__admin API or dashboard."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.receiver import CallbackReceiver
from mock_server.testing.server import ServerProcess
from mock_server.transport import CALLBACK_MARKER
from tests.plugins.engine import http_login

pytestmark = pytest.mark.http

EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/"
SCENE = "/api/dpa/process/processPlan/saveTimingParam"


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def execute(base: str, auth: dict[str, str], plan: str, callback: str | None = None) -> str:
    body: dict[str, Any] = {"processPlanId": plan}
    if callback is not None:
        body["callbackUrl"] = callback
    answer = _session().post(base + EXECUTE + plan, json=body, headers=auth, timeout=5).json()
    assert answer["code"] == 200, answer
    return str(answer["data"][0]["planInstanceId"])


def admin(base: str, method: str, path: str, **kwargs: Any) -> Any:
    answer = _session().request(method, base + path, timeout=10, **kwargs).json()
    assert answer["code"] == 200, answer
    return answer["data"]


def settled(base: str, instance: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The run's deliveries once none is queued or retrying any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = admin(base, "GET", "/__admin/callbacks", params={"planInstanceId": instance})
        if deliveries and all(d["state"] in ("acked", "gave_up") for d in deliveries):
            return list(deliveries)
        time.sleep(0.05)
    raise AssertionError(f"deliveries of {instance} still pending after {timeout}s: {deliveries}")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Only the DEFAULT callback (sent at once) and no backoff: each attack settles within a second.
    log = Path(tmp_path_factory.mktemp("deputy")) / "serve.log"
    with ServerProcess("--set", "callback_statuses=DEFAULT", "--set", "callback_backoff=0,0,0", log=log) as server:
        yield server


def _pending_victim(base: str, auth: dict[str, str]) -> str:
    """A run of d4a8e6f1 waiting at its approval node (PENDING), no callback of its own."""
    victim = execute(base, auth, "d4a8e6f1")
    admin(base, "POST", "/__admin/clock/advance", json={"seconds": 30})
    assert admin(base, "GET", f"/__admin/runs/{victim}")["status"] == "PENDING"
    return victim


@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.1:{port}/__admin/reset",  # the server's own address: answered in process
        "http://localhost:{port}/__admin/reset",
        "http://127.1:{port}/__admin/reset",  # loopback the shortcut does not know: a real HTTP request
        "http://2130706433:{port}/__admin/reset",  # 127.0.0.1 as one number
        "http://127.0.0.1:{port}/__admin/%72eset",  # percent-encoded path
        "http://127.1:{port}/__admin/%72eset",
        "http://127.1:{port}/__admin/reset?x=1#frag",
        "http://127.1:{port}//__admin/reset",  # the document's double slash
        "http://127.0.0.1:{port}//__admin/reset",
    ],
)
def test_a_callback_url_at_the_admin_api_wipes_nothing(srv: ServerProcess, spelling: str) -> None:
    base = srv.base_url
    auth = http_login(base)
    victim = _pending_victim(base, auth)
    attacker = execute(base, auth, "acf42dd3", spelling.format(port=srv.port))
    deliveries = settled(base, attacker)
    # The run, its neighbour and the token all survived: nothing was reset.
    assert admin(base, "GET", f"/__admin/runs/{victim}")["status"] == "PENDING"
    assert admin(base, "GET", f"/__admin/runs/{attacker}")["planInstanceId"] == attacker
    assert (
        _session().get(base + "/api/dpa/process/processPlan/queryPlanByUserId", headers=auth, timeout=5).json()["code"]
        == 200
    )
    # The delivery failed, visibly: retried, given up, every answer the admin API's refusal (or no route).
    assert [d["state"] for d in deliveries] == ["gave_up"]
    attempts = deliveries[0]["attempts"]
    assert len(attempts) == 4
    for attempt in attempts:
        assert attempt["verdict"] != "acked" and attempt["httpStatus"] in (403, 404), attempt
        if attempt["httpStatus"] == 403:
            assert "callback" in attempt["body"] and CALLBACK_MARKER in attempt["body"], attempt["body"]


def test_a_callback_cannot_resume_someone_elses_pending_run(srv: ServerProcess) -> None:
    base = srv.base_url
    auth = http_login(base)
    victim = _pending_victim(base, auth)
    for host in ("127.0.0.1", "127.1"):  # in process, and over a socket
        attacker = execute(base, auth, "acf42dd3", f"http://{host}:{srv.port}/__admin/runs/{victim}/resume")
        settled(base, attacker)
    run = admin(base, "GET", f"/__admin/runs/{victim}")
    assert run["status"] == "PENDING", run


def test_a_scene_callback_at_the_admin_api_is_refused_too(srv: ServerProcess) -> None:
    base = srv.base_url
    auth = http_login(base)
    victim = _pending_victim(base, auth)
    form = {
        "processPlanId": "acf42dd3",
        "sceneName": "deputy",
        "dimension": "minutes",
        "intervals": "1",
        "executeStrategy": "cycle",
        "callbackUrl": f"http://127.0.0.1:{srv.port}/__admin/reset",  # fired inside the advance: in process
    }
    answer = _session().post(base + SCENE, data=form, headers=auth, timeout=5).json()
    if answer["code"] != 200:
        pytest.fail(f"scene refused: {answer}")
    admin(base, "POST", "/__admin/clock/advance", json={"seconds": 61})
    fired = [r for r in admin(base, "GET", "/__admin/runs") if r.get("sceneId") == answer["data"]["instanceId"]]
    assert len(fired) == 1, fired
    (delivery,) = settled(base, fired[0]["planInstanceId"])
    assert delivery["state"] == "gave_up" and delivery["attempts"][0]["httpStatus"] == 403
    assert admin(base, "GET", f"/__admin/runs/{victim}")["status"] == "PENDING"
    assert any(s["instanceId"] == answer["data"]["instanceId"] for s in admin(base, "GET", "/__admin/scenes"))


def test_the_dashboard_refuses_the_callback_sender(srv: ServerProcess) -> None:
    r = _session().get(base_ui := srv.base_url + "/__admin/ui", headers={CALLBACK_MARKER: "1"}, timeout=5)
    assert r.status_code == 403 and r.json()["code"] == 403 and CALLBACK_MARKER in r.json()["message"]
    assert _session().get(base_ui, timeout=5).status_code == 200


def test_the_marker_only_hurts_its_forger(srv: ServerProcess) -> None:
    s = _session()
    r = s.post(srv.base_url + "/__admin/reset", headers={CALLBACK_MARKER: "anything"}, timeout=5)
    assert r.status_code == 403 and r.json()["code"] == 403
    assert "callback" in r.json()["message"]
    assert s.post(srv.base_url + "/__admin/reset", timeout=5).json()["code"] == 200


def test_ordinary_loopback_receivers_still_get_their_callbacks(srv: ServerProcess) -> None:
    base = srv.base_url
    auth = http_login(base)
    with CallbackReceiver() as receiver:
        receiver.ack()
        instance = execute(base, auth, "acf42dd3", receiver.url)
        deliveries = settled(base, instance)
        assert [d["state"] for d in deliveries] == ["acked"]
        (delivery,) = receiver.for_instance(instance)
        assert delivery.headers.get(CALLBACK_MARKER)


def test_two_workers_refuse_it_too(tmp_path: Path) -> None:
    with ServerProcess(
        "--workers",
        "2",
        "--state",
        str(tmp_path / "state.db"),
        "--set",
        "callback_statuses=DEFAULT",
        "--set",
        "callback_backoff=0,0,0",
    ) as server:
        base = server.base_url
        auth = http_login(base)
        victim = _pending_victim(base, auth)
        for host in ("127.0.0.1", "127.1", "localhost"):
            settled(base, execute(base, auth, "acf42dd3", f"http://{host}:{server.port}/__admin/reset"))
        assert admin(base, "GET", f"/__admin/runs/{victim}")["status"] == "PENDING"


def test_through_the_proxy_in_front_the_callback_is_refused_too(srv: ServerProcess, tmp_path: Path) -> None:
    """`dpa-mock proxy` relays each callback with its headers: the marker reaches the admin guard behind it."""
    base = srv.base_url
    auth = http_login(base)
    victim = _pending_victim(base, auth)
    proxy = ServerProcess(
        command=[sys.executable, "-m", "mock_server", "proxy", "--target", base], log=tmp_path / "proxy.log"
    )
    with proxy:
        for target in (base, proxy.base_url):  # the emulator's admin API, and the same through the proxy
            attacker = execute(proxy.base_url, auth, "acf42dd3", f"{target}/__admin/reset")
            (delivery,) = settled(base, attacker)
            assert delivery["state"] == "gave_up"
            assert delivery["attempts"][0]["httpStatus"] in (403, 404), delivery["attempts"][0]
    assert admin(base, "GET", f"/__admin/runs/{victim}")["status"] == "PENDING"


def test_waitress_refuses_it_too() -> None:
    with ServerProcess(
        "--server", "waitress", "--set", "callback_statuses=DEFAULT", "--set", "callback_backoff=0,0,0"
    ) as server:
        base = server.base_url
        auth = http_login(base)
        victim = _pending_victim(base, auth)
        for host in ("127.0.0.1", "127.1"):
            (delivery,) = settled(base, execute(base, auth, "acf42dd3", f"http://{host}:{server.port}/__admin/reset"))
            assert delivery["state"] == "gave_up" and delivery["attempts"][0]["httpStatus"] == 403
        assert admin(base, "GET", f"/__admin/runs/{victim}")["status"] == "PENDING"
