"""The target: a live base URL, or the emulator started in this process on an ephemeral loopback port."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from contract_tests.plugins.safety import GuardedSession, policy
from contract_tests.support.kit import KIT


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class InProcessEmulator:
    """`create_app(Settings(clock="virtual"))` behind a threaded werkzeug server: real HTTP, same process."""

    def __init__(self) -> None:
        from mock_server.app import create_app
        from mock_server.settings import Settings

        self.app = create_app(Settings(clock="virtual", log_requests=False))
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="kit-emulator", daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["dpa_platform"].close()


class AdminError(Exception):
    """The /__admin API did not answer as expected."""


class Target:
    """Where the kit sends requests, with the guarded session and (when present and allowed) /__admin."""

    def __init__(self) -> None:
        cfg = KIT.config
        assert cfg is not None
        self.emulator = InProcessEmulator() if cfg.in_process else None
        self.base_url = self.emulator.base_url if self.emulator else str(cfg.base_url)
        self.session = GuardedSession(policy())
        self.session.verify = cfg.verify
        if self.emulator is not None:
            self.session.trust_env = False  # loopback: never through a proxy
        self._admin: bool | None = None
        self._lock = threading.Lock()

    @property
    def in_process(self) -> bool:
        return self.emulator is not None

    @property
    def admin(self) -> bool:
        """True when the target answers GET /__admin/clock with an envelope (it is dpa-mock) and --no-admin is off."""
        with self._lock:
            if self._admin is None:
                self._admin = bool(KIT.config and KIT.config.use_admin) and self._detect_admin()
            return self._admin

    def _detect_admin(self) -> bool:
        try:
            response = self.session.get(self.base_url + "/__admin/clock", timeout=5)
            body = response.json()
        except (requests.RequestException, ValueError):
            return False
        # Lenient on purpose: a target with a broken envelope must still get its clock driven.
        return response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("data"), dict)

    def admin_call(
        self, method: str, path: str, json: Any = None, timeout: float = 120, params: dict[str, Any] | None = None
    ) -> Any:
        """Call /__admin/...; return `data`. Only HTTP 200 with a JSON `data` is accepted."""
        if not self.admin:
            raise AdminError("the /__admin API is not available on this target")
        response = self.session.request(method, self.base_url + path, json=json, params=params, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or "data" not in body:
            raise AdminError(f"{method} {path} -> HTTP {response.status_code}: {str(body)[:200]}")
        return body["data"]

    def reset(self) -> None:
        """Back to fixtures: only ever on the in-process emulator (the policy blocks it elsewhere)."""
        if self.in_process:
            self.admin_call("POST", "/__admin/reset")

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.close()


_TARGET: Target | None = None
_TARGET_LOCK = threading.Lock()


def target() -> Target:
    """The session's target, created on first use (test modules may need its URL at import)."""
    global _TARGET
    with _TARGET_LOCK:
        if _TARGET is None:
            _TARGET = Target()
        return _TARGET


def pytest_unconfigure(config: pytest.Config) -> None:
    global _TARGET
    if _TARGET is not None:
        _TARGET.close()
        _TARGET = None


@pytest.fixture(scope="session")
def kit_target() -> Target:
    return target()  # closed in pytest_unconfigure


@pytest.fixture(scope="module")
def kit_reset_after(kit_target: Target) -> Iterator[None]:
    """After a fuzzing module: fuzzing leaves scenes and runs behind; only the in-process emulator is reset."""
    yield
    kit_target.reset()
