"""Plain helpers (no pytest fixtures) shared by the foundation tests: apps on a chosen clock, JWTs, envelopes."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from flask import Flask
from werkzeug.test import TestResponse

from mock_server.app import create_app
from mock_server.domain.clock import Clock
from mock_server.fixtures import DEFAULT_FIXTURES
from mock_server.settings import Settings

# A second HS256 key (32+ bytes, so PyJWT does not warn) the emulator has never heard of.
FOREIGN_KEY = "some-other-service-hs256-secret-key-0123456789"
ADMIN_ADVANCE = "/__admin/clock/advance"


class AckTransport:
    """Callback transport that acknowledges everything in-process and remembers what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        with self._lock:
            self.sent.append((url, payload))
        return 200, "SUCCESS"


@contextlib.contextmanager
def built_app(clock: Clock | None = None, **overrides: Any) -> Iterator[Flask]:
    """An app with a virtual clock (or the given one) and an acking transport; its engine is stopped after."""
    settings = Settings(**{"clock": "virtual", "log_requests": False, **overrides})
    app = create_app(settings, clock=clock, transport=AckTransport())
    try:
        yield app
    finally:
        app.extensions["dpa_platform"].close()


def envelope_of(response: TestResponse) -> dict[str, Any]:
    """The JSON envelope of a test-client response, after checking its shape."""
    assert response.mimetype == "application/json", (response.status_code, response.get_data(as_text=True))
    body = json.loads(response.get_data(as_text=True))
    assert isinstance(body, dict) and set(body) == {"code", "message", "data"}, body
    assert isinstance(body["code"], int) and isinstance(body["message"], str), body
    return body


def expect_error(response: TestResponse, code: int, *fragments: str, http: int | None = None) -> str:
    """Assert an error envelope with `code` (HTTP status mirrored unless `http` is given) naming `fragments`."""
    body = envelope_of(response)
    assert body["code"] == code, body
    assert response.status_code == (code if http is None else http), (response.status_code, body)
    assert body["data"] is None, body
    for fragment in fragments:
        assert fragment in body["message"], (fragment, body["message"])
    return body["message"]


def decode(token: str, secret: str = Settings().jwt_secret, **kw: Any) -> dict[str, Any]:
    """Verify an emulator token the way an integrator would: signature, issuer and audience (exp on wall time)."""
    return jwt.decode(token, secret, algorithms=["HS256"], issuer="dpa-mock", **kw)


def sign(claims: dict[str, Any], key: str = Settings().jwt_secret) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def copy_fixtures(dest: Path) -> Path:
    """A private copy of the bundled fixtures directory to break on purpose."""
    target = dest / "fixtures"
    shutil.copytree(DEFAULT_FIXTURES, target)
    return target
