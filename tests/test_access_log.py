"""One access-log line per request, with secret query parameters redacted."""

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask


def test_one_line_per_request_with_secrets_redacted(
    make_app: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = make_app(log_requests=True)
    client = app.test_client()
    with caplog.at_level("INFO", logger="dpa_mock.access"):
        client.get(
            "/api/dp/auth/oauth/authorize",
            query_string={
                "client_id": "JhYhK/XcFKuVlpVijwLCkw==",
                "response_type": "code",
                "scope": "default",
                "client_secret": "TOP-SECRET",
            },
        )
        client.get("/nope")
    lines = [r.getMessage() for r in caplog.records if r.name == "dpa_mock.access"]
    assert len(lines) == 2
    assert "TOP-SECRET" not in "\n".join(lines)
    assert "client_secret=***" in lines[0] and "-> 200 code=200" in lines[0]
    assert "GET /nope -> 404 code=404" in lines[1]
