"""Serve the example service on a real loopback port, wired to the `dpa_platform` fixture of dpa-mock's plugin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from integrator_service.app import create_app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        return None


@dataclass
class Service:
    """The running service: its base URL, the Flask app, and a requests session to call it."""

    url: str
    app: Flask
    http: requests.Session

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=10, **kwargs)

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def service(dpa_platform: Any) -> Iterator[Service]:
    """The service under test, talking to the emulator and reachable by it for callbacks."""
    app = create_app(
        {
            "DPA_BASE_URL": dpa_platform.base_url,
            "DPA_CLIENT_ID": dpa_platform.client_id,
            "DPA_CLIENT_SECRET": dpa_platform.client_secret,
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    app.config["PUBLIC_URL"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    http = requests.Session()
    http.trust_env = False
    yield Service(app.config["PUBLIC_URL"], app, http)
    http.close()
    server.shutdown()
    server.server_close()
