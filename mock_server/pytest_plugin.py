"""pytest plugin (entry point pytest11) giving integrators `dpa_platform` and `callback_receiver` fixtures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # heavy imports wait until a test asks for a fixture, so other projects pay nothing
    from mock_server.testing.receiver import CallbackReceiver

DEMO_CLIENT_ID = "JhYhK/XcFKuVlpVijwLCkw=="  # poc_client in the bundled fixtures/apps.yaml
AUTHORIZE = "/api/dp/auth/oauth/authorize"
TOKEN = "/api/dp/auth/oauth/token"
_SERVERS = pytest.StashKey["_ServerPool"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "dpa_fixtures",
        "dpa-mock: directory of YAML fixtures for the dpa_platform fixture, relative "
        "to the ini file (default: the fixtures bundled with dpa-mock)",
        default="",
    )
    parser.addini(
        "dpa_profile",
        "dpa-mock: profile for the dpa_platform fixture: a bundled one (document, gateway) "
        "or a file relative to the ini file (default: document); see docs/profiles.md",
        default="",
    )
    parser.getgroup("dpa-mock").addoption(
        "--dpa-profile",
        dest="dpa_profile",
        metavar="NAME|FILE",
        default=None,
        help="run dpa_platform with this profile (a bundled name such as gateway, or a profile file, e.g. one "
        "`dpa-mock verify --write-profile` wrote); overrides the dpa_profile ini option",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dpa_fixtures(path): run this test's dpa_platform with the YAML fixtures "
        "in `path` (relative to the test file's directory)",
    )
    config.addinivalue_line(
        "markers",
        "dpa_profile(name_or_path): run this test's dpa_platform with this profile "
        "(a bundled name, or a file relative to the test file's directory)",
    )
    config.stash[_SERVERS] = _ServerPool()


def pytest_unconfigure(config: pytest.Config) -> None:
    pool = config.stash.get(_SERVERS, None)
    if pool is not None:
        pool.close()


class _Served:
    """One emulator app on a real threaded WSGI server in a daemon thread."""

    def __init__(self, fixtures: str | None, profile: str | None = None) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        from mock_server.app import create_app
        from mock_server.settings import load_settings

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any) -> None:  # the admin journal keeps the record; no stderr noise
                return None

        # Not the environment's DPA_MOCK_* (a test suite's emulator is the test's, not the shell's); the clock
        # is virtual whatever the profile says, as the fixture's advance() needs.
        settings = load_settings(env={}, profile=profile, clock="virtual", log_requests=False, fixtures=fixtures)
        self.settings = settings
        self.app = create_app(settings)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.credentials = _demo_credentials(self.app.extensions["dpa_platform"])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="dpa-mock-plugin", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["dpa_platform"].close()


def _demo_credentials(platform: Any) -> dict[str, str]:
    """poc_client when the fixtures define it, else their first app that has not expired (else their first)."""
    apps = list(platform.catalog.apps.values())
    now = platform.clock.now()  # expiry is judged on the emulator's clock, as OAuth judges it
    app = platform.catalog.apps.get(DEMO_CLIENT_ID) or next((a for a in apps if a.valid_until > now), apps[0])
    return {"client_id": app.client_id, "client_secret": app.client_secret}


class _ServerPool:
    """Emulators kept per fixtures directory and profile for the life of this (xdist worker) process."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str | None, str | None], _Served] = {}
        self._lock = threading.Lock()

    def get(self, fixtures: str | None, profile: str | None = None) -> _Served:
        with self._lock:
            key = (fixtures, profile)
            if key not in self._servers:
                self._servers[key] = _Served(fixtures, profile)
            return self._servers[key]

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for served in servers:
            served.close()


def _fixtures_dir(request: pytest.FixtureRequest) -> str | None:
    """The marker's directory (relative to the test file), else the ini option's (relative to the ini file)."""
    marker = request.node.get_closest_marker("dpa_fixtures")
    if marker is not None:
        if not marker.args:
            pytest.fail(
                "@pytest.mark.dpa_fixtures needs a directory: @pytest.mark.dpa_fixtures('my_fixtures')", pytrace=False
            )
        path = Path(str(marker.args[0]))
        base = Path(str(request.node.path)).parent
    else:
        configured = str(request.config.getini("dpa_fixtures") or "").strip()
        if not configured:
            return None
        path = Path(configured)
        base = request.config.inipath.parent if request.config.inipath else request.config.rootpath
    return str((path if path.is_absolute() else base / path).resolve())


def _profile(request: pytest.FixtureRequest) -> str | None:
    """The marker's profile (a file relative to the test file), else --dpa-profile (relative to the invocation
    directory), else the ini option's (relative to the ini file); a bundled profile's name stays a name."""
    from mock_server.settings import bundled_profiles

    marker = request.node.get_closest_marker("dpa_profile")
    if marker is not None:
        if not marker.args:
            pytest.fail("@pytest.mark.dpa_profile needs a profile: @pytest.mark.dpa_profile('gateway')", pytrace=False)
        given, base = str(marker.args[0]), Path(str(request.node.path)).parent
    elif request.config.getoption("dpa_profile", None):
        given, base = str(request.config.getoption("dpa_profile")), request.config.invocation_params.dir
    else:
        given = str(request.config.getini("dpa_profile") or "").strip()
        if not given:
            return None
        base = request.config.inipath.parent if request.config.inipath else request.config.rootpath
    if given in bundled_profiles():
        return given
    path = Path(given)
    return str((path if path.is_absolute() else base / path).resolve())


class DpaPlatform:
    """A running emulator for one test: its URL, demo credentials and the /__admin API as methods."""

    def __init__(
        self, base_url: str, fixtures: str | None, credentials: dict[str, str], profile: str | None = None
    ) -> None:
        import requests

        self.base_url = base_url
        self.fixtures = fixtures
        self.profile = profile
        self.credentials = dict(credentials)
        self.client_id, self.client_secret = credentials["client_id"], credentials["client_secret"]
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never through a proxy from the environment

    def __repr__(self) -> str:
        return (
            f"<DpaPlatform {self.base_url} fixtures={self.fixtures or 'bundled'} profile={self.profile or 'document'}>"
        )

    # -- the vendor API's OAuth dance, for tests that only need a token ----------------------------
    def token(
        self,
        scope: str = "default",
        user_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> str:
        """Authorize + token (interfaces 1 and 2) for the demo app, or the given one; returns the access token."""
        client_id = client_id or self.client_id
        code = self._envelope(
            "GET", AUTHORIZE, params={"client_id": client_id, "response_type": "code", "scope": scope}
        )["code"]
        body = {
            "code": code,
            "client_id": client_id,
            "client_secret": client_secret or self.client_secret,
            "grant_type": "authorization_code",
        }
        if user_id is not None:
            body["user_id"] = user_id
        return str(self._envelope("POST", TOKEN, json=body)["access_token"])

    def headers(self, **kwargs: Any) -> dict[str, str]:
        """`{"Authorization": "Bearer …"}` for a fresh token; same arguments as token()."""
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}

    # -- /__admin ----------------------------------------------------------------------------------
    def reset(self) -> None:
        self._envelope("POST", "/__admin/reset")

    def clock(self) -> dict[str, Any]:
        return self._object("GET", "/__admin/clock")

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the virtual clock; returns once everything due by then (callback attempts too) has happened."""
        return self._object("POST", "/__admin/clock/advance", json={"seconds": seconds})

    def runs(self, plan_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("processPlanId", plan_id), ("status", status)) if v is not None}
        return self._list("GET", "/__admin/runs", params=params)

    def run(self, instance_id: str) -> dict[str, Any]:
        return self._object("GET", f"/__admin/runs/{instance_id}")

    def resume(self, instance_id: str) -> dict[str, Any]:
        """Resume a run waiting in PENDING; returns the run."""
        return self._object("POST", f"/__admin/runs/{instance_id}/resume")

    def scenes(self) -> list[dict[str, Any]]:
        return self._list("GET", "/__admin/scenes")

    def delete_scene(self, instance_id: str) -> dict[str, Any]:
        return self._object("DELETE", f"/__admin/scenes/{instance_id}")

    def callbacks(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """The callback ledger: one delivery per status change, each with its attempts and verdicts."""
        params = {"planInstanceId": instance_id} if instance_id else {}
        return self._list("GET", "/__admin/callbacks", params=params)

    def journal(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Requests the emulator received, oldest first (secrets shown as ***)."""
        return self._list("GET", "/__admin/requests", params={"limit": limit} if limit else {})

    def fault(
        self,
        method: str | None = None,
        path: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
        latency_ms: float | None = None,
        times: int | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """Make matching vendor-API requests answer `code`/`http_status` or be slow; `path` is a regex."""
        spec = {
            "method": method,
            "path": path,
            "code": code,
            "httpStatus": http_status,
            "latencyMs": latency_ms,
            "times": times,
            "message": message,
        }
        return self._object("POST", "/__admin/faults", json={k: v for k, v in spec.items() if v is not None})

    def faults(self) -> list[dict[str, Any]]:
        return self._list("GET", "/__admin/faults")

    def clear_faults(self) -> None:
        self._envelope("DELETE", "/__admin/faults")

    def wait_for_callback(self, instance_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait (wall time) until the `status` callback of `instance_id` is acknowledged; returns the delivery.

        Fails the test, listing every delivery the ledger holds for the instance, if that callback
        gave up or was not acknowledged within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.callbacks(instance_id)
            match = next((d for d in deliveries if d["status"] == status and d["state"] in ("acked", "gave_up")), None)
            if match is not None and match["state"] == "acked":
                return match
            if match is not None or time.monotonic() >= deadline:
                pytest.fail(
                    self._callback_report(instance_id, status, timeout, deliveries, gave_up=bool(match)), pytrace=False
                )
            time.sleep(0.02)

    def _callback_report(
        self, instance_id: str, status: str, timeout: float, deliveries: list[dict[str, Any]], gave_up: bool
    ) -> str:
        why = "was given up" if gave_up else f"was not acknowledged within {timeout:g}s"
        lines = [f"dpa_platform: the {status} callback of {instance_id} {why}."]
        try:
            run = self.run(instance_id)
            trail = " -> ".join(h["status"] for h in run["history"])
            lines.append(f"The run is {run['status']} ({trail}); callbackUrl: {run['callbackUrl'] or 'none'}.")
        except AssertionError:
            lines.append(f"The emulator has no run {instance_id}.")
        if not deliveries:
            lines.append("No callback was recorded for it.")
        else:
            lines.append(f"Callbacks recorded for it ({len(deliveries)}):")
            for d in deliveries:
                lines.append(f"  - {d['status']}: {d['state']} after {len(d['attempts'])} attempt(s)")
                for a in d["attempts"]:
                    answer = a["error"] or f"HTTP {a['httpStatus']} {a['body']!r}"
                    lines.append(f"      #{a['n']} -> {answer}: {a['verdict']}")
        clock = self.clock()
        if clock["mode"] == "virtual" and not gave_up:
            lines.append("The clock is virtual: time passes only through dpa_platform.advance(seconds=...).")
        return "\n".join(lines)

    def _envelope(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.base_url + path, timeout=30, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("code") != 200:
            raise AssertionError(
                f"dpa-mock {method} {path} answered HTTP {response.status_code}: {response.text[:500]}"
            )
        return body.get("data")

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = self._envelope(method, path, **kwargs)
        if not isinstance(data, dict):
            raise AssertionError(f"dpa-mock {method} {path}: expected an object in data, got {data!r:.200}")
        return data

    def _list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        data = self._envelope(method, path, **kwargs)
        if not isinstance(data, list):
            raise AssertionError(f"dpa-mock {method} {path}: expected a list in data, got {data!r:.200}")
        return data

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def dpa_platform(request: pytest.FixtureRequest) -> Iterator[DpaPlatform]:
    """An in-process dpa-mock (virtual clock) on 127.0.0.1, reset before the test; see docs/integrators.md."""
    from mock_server.fixtures import FixtureError
    from mock_server.settings import SettingsError

    fixtures = _fixtures_dir(request)
    profile = _profile(request)
    try:
        served = request.config.stash[_SERVERS].get(fixtures, profile)
    except FixtureError as exc:
        pytest.fail(f"dpa_platform: cannot load the fixtures: {exc}", pytrace=False)
    except SettingsError as exc:
        pytest.fail(f"dpa_platform: cannot use the profile {profile!r}: {exc}", pytrace=False)
    handle = DpaPlatform(served.base_url, fixtures, served.credentials, profile)
    handle.reset()
    yield handle
    handle.close()


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    """A loopback HTTP receiver for status callbacks: script answers (ack/fail/timeout/body), read deliveries."""
    from mock_server.testing.receiver import CallbackReceiver

    with CallbackReceiver() as receiver:
        yield receiver
