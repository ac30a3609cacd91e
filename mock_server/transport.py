"""The outbound HTTP transport the callback outbox is given: requests, one session per worker thread."""

from __future__ import annotations

import threading
from typing import Any

import requests

from mock_server.domain.callbacks import TransportError


class RequestsTransport:
    def __init__(self) -> None:
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # callbacks go where the caller said, never through a proxy
        return session

    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        try:
            response = self._session().post(url, json=payload, timeout=timeout, allow_redirects=False,
                                            headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            raise TransportError(str(exc)) from exc
        return response.status_code, response.text
