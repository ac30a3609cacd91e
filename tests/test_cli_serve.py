"""`dpa-mock serve` as a real process: the document's walkthrough over HTTP, Ctrl-C, a busy port, --help."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from mock_server.cli import main
from mock_server.testing.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
DOC_HOST = "https://jkstack.dev.jingkunsystem.com:29041"
# The document's curl URL (its line break removed), on the document's host; only the host is swapped.
DOC_AUTHORIZE = (
    f"{DOC_HOST}/api/dp/auth/oauth/authorize?response_type=code&client_id=CfjisL9AeNc066tkxSiKig==&scope=default"
)


def _ok(response: requests.Response, message: str = "success") -> object:
    body = response.json()
    assert response.status_code == 200 and body["code"] == 200 and body["message"] == message, body
    assert response.headers["Content-Type"].startswith("application/json")
    return body["data"]


@pytest.mark.http
def test_documents_walkthrough_over_real_http(tmp_path: Path) -> None:
    with ServerProcess("--clock", "virtual", log=tmp_path / "serve.log") as srv:
        s = requests.Session()
        s.trust_env = False
        code = _ok(
            s.get(DOC_AUTHORIZE.replace(DOC_HOST, srv.base_url), headers={"content-type": "multipart/form-data"}),
            message="",
        )["code"]  # type: ignore[index]
        assert len(code) == 48
        # The document's token example, its code swapped for the fresh one.
        token_body = json.dumps(
            {
                "code": code,
                "client_id": "CfjisL9AeNc066tkxSiKig==",
                "client_secret": "xB5hQnmlNnc+iab3RODs6yHlcHqFHAM2e4PawddAxtI=",
                "grant_type": "authorization_code",
            }
        )
        token = _ok(
            s.post(
                srv.base_url + "/api/dp/auth/oauth/token", data=token_body, headers={"Content-Type": "application/json"}
            ),
            message="",
        )
        assert token["token_type"] == "Bearer"  # type: ignore[index]
        auth = {"Authorization": f"Bearer {token['access_token']}"}  # type: ignore[index]
        plans = _ok(s.get(srv.base_url + "/api/dpa/process/processPlan/queryPlanByUserId", headers=auth))
        assert plans[0] == {
            "processPlanId": "acf42dd3",
            "title": "测试预案",
            "status": "DEFAULT",  # type: ignore[index]
            "stepNums": 1,
            "version": 0,
            "createTime": 1626944836628,
            "createUser": "U100000",
            "updateTime": 1626944836628,
            "updateUser": "",
        }
        models = _ok(
            s.post(
                srv.base_url + "/api/dpa/process/processPlan/queryModelByPlanId",
                headers=auth,
                json={"processPlanId": "acf42dd3"},
            )
        )
        assert models == [
            {
                "modelName": "工作流名称",
                "processModelId": "md1606743910508",
                "mapParam": [{"name": "DPA_MODEL_WORKDIR", "type": "running"}],
            }
        ]
        started = _ok(
            s.post(
                srv.base_url + "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3",
                headers=auth,
                json={"processPlanId": "acf42dd3"},
            )
        )
        instance = started[0]["planInstanceId"]  # type: ignore[index]
        assert started == [{"processPlanId": "acf42dd3", "planInstanceId": instance}]
        assert instance.startswith("in") and instance[2:].isdigit() and len(instance) == 15
        clock = _ok(s.post(srv.base_url + "/__admin/clock/advance", json={"seconds": 5}))
        assert clock["mode"] == "virtual" and clock["offset"] >= 5  # type: ignore[index]
        outputs = _ok(
            s.get(
                srv.base_url + "/api/dpa/process//processPlan/queryPlanRunOutParam",
                headers=auth,
                params={"processPlanId": "acf42dd3", "planInstanceId": instance},
            )
        )
        assert outputs == [
            {
                "modelName": "工作流名称",
                "processModelId": "md1606743910508",
                "mapParam": [
                    {"result": "mkdir -p /opt/dpa/work && echo ok", "nodeName": "准备工作目录"},
                    {"result": '{"status":"UP","workdir":"/opt/dpa/work"}', "nodeName": "调用健康检查"},
                ],
            }
        ]
        listed = _ok(s.get(srv.base_url + "/api/dpa/process/processPlan/queryPlanByUserId", headers=auth))
        assert listed[0]["status"] == "SUCCESS"  # type: ignore[index]
        # The `//` arrived verbatim: no redirect, no collapsing on the way.
        journal = _ok(s.get(srv.base_url + "/__admin/requests"))
        assert any(r["path"] == "/api/dpa/process//processPlan/opExecutePlanByApi/acf42dd3" for r in journal), journal  # type: ignore[union-attr]


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.http
@pytest.mark.parametrize(
    "server,sig",
    [
        ("granian", signal.SIGINT),
        ("waitress", signal.SIGINT),
        ("granian", signal.SIGTERM),
        ("waitress", signal.SIGTERM),
    ],
)
def test_signal_stops_the_server_cleanly(tmp_path: Path, server: str, sig: signal.Signals) -> None:
    log = tmp_path / "serve.log"
    srv = ServerProcess("--server", server, log=log).start()
    try:
        assert srv.proc is not None
        assert requests.get(srv.base_url + "/__admin/clock", timeout=5).json()["code"] == 200
        srv.proc.send_signal(sig)
        started = time.monotonic()
        returncode = srv.proc.wait(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        srv.stop()
    assert returncode == 0
    assert "dpa-mock stopped" in log.read_text(encoding="utf-8", errors="replace")
    assert _refused(srv.port)  # no worker left behind holding the port


@pytest.mark.http
@pytest.mark.parametrize("server", ["granian", "waitress"])
def test_port_in_use_is_a_clear_error(server: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mock_server", "serve", "--port", str(port), "--quiet", "--server", server],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    assert result.returncode != 0, result
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr and "in use" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_default_host_and_port() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "127.0.0.1" in text and "29041" in text
    for option in ("--host", "--port", "--fixtures", "--config", "--clock", "--admin-token", "--http-status"):
        assert option in text, option


def test_top_level_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "serve" in result.output and "check-fixtures" in result.output


def test_bad_option_value_is_a_usage_error_without_starting() -> None:
    result = CliRunner().invoke(main, ["serve", "--clock", "sundial", "--port", str(free_port())])
    assert result.exit_code == 2 and "sundial" in result.output


# A value for every setting, unlike its default, as --set would write it; and the setting it becomes.
_FIXTURES_DIR = str(ROOT / "fixtures")
_SET_VALUES: dict[str, tuple[str, object]] = {
    "bool": ("false", False),
    "port": ("12345", 12345),
    "host": ("127.0.0.2", "127.0.0.2"),
    "fixtures": (_FIXTURES_DIR, _FIXTURES_DIR),
    "clock": ("virtual", "virtual"),
    "timezone": ("UTC", "UTC"),
    "http_status": ("always200", "always200"),
    "callback_backoff": ("1,2.5", (1.0, 2.5)),
    "callback_statuses": ("SUCCESS,FAIL", ("SUCCESS", "FAIL")),
    "admin_token": ("tok", "tok"),
    "jwt_secret": ("another-secret-of-at-least-32-bytes!", "another-secret-of-at-least-32-bytes!"),
    "issuer": ("someone", "someone"),
    # The profile settings (docs/profiles.md): values their checks accept.
    "http_status_by_code": ("997:503,999:200", {997: 503, 999: 200}),
    "unknown_plan_code": ("999", 999),
    "unknown_instance_code": ("998", 998),
    "unknown_path_code": ("400", 400),
    "unknown_path_http_status": ("200", 200),
    "wrong_method_code": ("405", 405),
    "wrong_method_http_status": ("0", 0),
    "validation_code": ("999", 999),
    "bad_token_code": ("400", 400),
    "code_reuse_code": ("400", 400),
    "error_data": ("absent", "absent"),
    "success_message": ("操作成功", "操作成功"),
    "oauth_success_message": ("ok", "ok"),
    "execute_body_plan_id": ("path-only", "path-only"),
    "code_length": ("32", 32),
    "code_alphabet": ("A-Z0-9_-", "A-Z0-9_-"),
    "token_type": ("bearer", "bearer"),
    "token_claims": ("aud,exp,sub", ("aud", "exp", "sub")),
    "token_audience": ("dpa-platform", "dpa-platform"),
    "plan_instance_id_format": ("uuid", "uuid"),
}


def _set_value(name: str, tmp_path: Path) -> tuple[str, object]:
    from mock_server.settings import Settings

    default = getattr(Settings(), name)
    if name == "state":
        return str(tmp_path / "s.db"), str(tmp_path / "s.db")
    if isinstance(default, bool):
        return _SET_VALUES["bool"] if default else ("true", True)
    if name in _SET_VALUES:
        return _SET_VALUES[name]
    if isinstance(default, int):
        return str(default + 2), default + 2
    if isinstance(default, float):
        return str(default * 2 + 0.5), default * 2 + 0.5
    raise AssertionError(f"no sample value for setting {name}")


def _served_settings(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> object:
    """The Settings `dpa-mock serve ARGS` would serve with (the server itself is not started)."""
    from mock_server import cli

    captured: list[object] = []
    monkeypatch.setattr(cli, "_serve_granian", captured.append)
    monkeypatch.setattr(cli.stops, "install", lambda: None)  # this process's own signal handlers stay
    monkeypatch.setattr(cli, "_port_problem", lambda host, port: None)
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 0 and len(captured) == 1, (args, result.output, result.exception)
    return captured[0]


def test_set_reaches_every_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dataclasses import fields

    from mock_server.settings import Settings

    names = [f.name for f in fields(Settings) if f.name != "extra"]
    for name in names:
        text, value = _set_value(name, tmp_path)
        extra = {
            "workers": ["--set", f"state={tmp_path / 'w.db'}"],
            "token_audience": ["--set", "token_claims=aud,client_id,sub,exp"],
        }.get(name, [])
        settings = _served_settings(monkeypatch, ["--set", f"{name}={text}", *extra])
        assert getattr(settings, name) == value, name


@pytest.mark.parametrize(
    ("flag", "flag_value", "name", "expected"),
    [
        ("--host", "127.0.0.3", "host", "127.0.0.3"),
        ("--port", "23456", "port", 23456),
        ("--fixtures", _FIXTURES_DIR, "fixtures", _FIXTURES_DIR),
        ("--clock", "virtual", "clock", "virtual"),
        ("--threads", "3", "threads", 3),
        ("--workers", "1", "workers", 1),
        ("--admin-token", "flag", "admin_token", "flag"),
        ("--http-status", "always200", "http_status", "always200"),
        ("--seed", "7", "seed", 7),
        ("--quiet", None, "log_requests", False),
        ("--state", "FLAGSTATE", "state", "FLAGSTATE"),
    ],
)
def test_set_combines_with_every_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flag: str, flag_value: str | None, name: str, expected: object
) -> None:
    """The flag and --set of the same setting (the flag wins: it is the more specific), and of another one."""
    if flag_value == "FLAGSTATE":
        flag_value = expected = str(tmp_path / "flag.db")
    text, _ = _set_value(name, tmp_path)
    if name == "log_requests":
        text = "true"
    flag_args = [flag] if flag_value is None else [flag, flag_value]
    settings = _served_settings(monkeypatch, [*flag_args, "--set", f"{name}={text}", "--set", "journal_size=77"])
    assert getattr(settings, name) == expected
    assert settings.journal_size == 77
    settings = _served_settings(monkeypatch, ["--set", f"{name}={text}", *flag_args])
    assert getattr(settings, name) == expected


@pytest.mark.http
@pytest.mark.parametrize("server", ["granian", "waitress"])
def test_port_0_serves_on_a_free_port_and_names_it(tmp_path: Path, server: str) -> None:
    # Before: "serving on http://127.0.0.1:0" while the server listened on a port it named nowhere.
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--server", server, "--quiet"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        announced = ""
        while time.monotonic() < deadline and not announced:
            line = next((x for x in log.read_text(errors="replace").splitlines() if "serving on" in x), "")
            announced = line.split("serving on ", 1)[1].split()[0] if line else ""
            time.sleep(0.05)
        assert announced.startswith("http://127.0.0.1:") and not announced.endswith(":0"), log.read_text()
        answer = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = requests.get(announced + "/__admin/clock", timeout=2).json()
            except requests.ConnectionError:
                time.sleep(0.05)
        assert answer is not None and answer["code"] == 200, log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_proxy_refuses_a_port_out_of_range(port: str) -> None:
    # Before: --port 70000 served on 4464 (70000 modulo 65536) without a word.
    result = CliRunner().invoke(main, ["proxy", "--target", "http://127.0.0.1:9", "--port", port])
    assert result.exit_code == 2, result.output
    assert "--port" in result.output and "65535" in result.output, result.output
