"""/__admin/ui over the Flask test client: content types, no external references, the admin guard, asset paths."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

STATIC = Path(__file__).resolve().parents[1] / "mock_server" / "static"
ADMIN_SPEC = Path(__file__).resolve().parents[1] / "openapi" / "admin.yaml"
# XML namespace names are identifiers, not addresses the browser fetches.
NAMESPACES = {"http://www.w3.org/2000/svg"}


def assets_of(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_page_is_html_with_a_strict_policy(client: Any) -> None:
    response = client.get("/__admin/ui")
    assert response.status_code == 200
    assert response.mimetype == "text/html" and response.mimetype_params["charset"] == "utf-8"
    html = response.get_data(as_text=True)
    assert "<title>dpa-mock 控制台</title>" in html
    for title in ("预案执行", "定时场景", "回调记录", "请求日志", "模拟时钟", "推进时钟"):
        assert title in html
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert client.get("/__admin/ui/").status_code == 200


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_assets_have_their_content_types(client: Any, name: str, mimetype: str) -> None:
    response = client.get(f"/__admin/ui/static/{name}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_data() == (STATIC / name).read_bytes()


def test_every_asset_the_page_references_is_served(client: Any) -> None:
    refs = assets_of(client.get("/__admin/ui").get_data(as_text=True))
    assert len(refs) == 3
    for ref in refs:
        assert ref.startswith("/__admin/ui/static/"), ref
        assert client.get(ref).status_code == 200, ref
    shipped = {p.name for p in STATIC.iterdir() if p.name != "index.html"}
    assert shipped == {ref.rsplit("/", 1)[1] for ref in refs}  # nothing shipped that the page does not use


def test_no_external_urls_anywhere() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        external = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)) - NAMESPACES
        assert not external, f"{path.name} references {sorted(external)}"
        assert not re.search(r"@import|url\(", text), f"{path.name} loads something through CSS"


def test_the_script_only_calls_admin_operations_that_exist() -> None:
    script = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    calls = re.findall(r'api\("(GET|POST|DELETE)", "(/__admin/[^"?]*)', script)
    assert len(calls) >= 6
    spec = yaml.safe_load(ADMIN_SPEC.read_text(encoding="utf-8"))["paths"]
    for method, path in calls:
        assert method.lower() in spec.get(path, {}), f"{method} {path} is not in openapi/admin.yaml"


@pytest.mark.parametrize(
    "path",
    [
        "/__admin/ui/static/../app.py",
        "/__admin/ui/static/nope.js",
        "/__admin/ui/static/.hidden.js",
        "/__admin/ui/static/index.txt",
    ],
)
def test_unknown_or_sneaky_asset_paths_are_404_envelopes(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["code"] == 404


def test_only_loopback_clients_without_a_token(client: Any) -> None:
    for path in ("/__admin/ui", "/__admin/ui/static/dashboard.js"):
        refused = client.get(path, environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert refused.status_code == 403
        assert refused.get_json()["code"] == 403
        assert "loopback" in refused.get_json()["message"]
        # The same guard as the admin API itself.
        assert client.get("/__admin/runs", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 403


def test_with_an_admin_token_the_header_or_the_query_token_is_needed(make_app: Callable[..., Flask]) -> None:
    client = make_app(admin_token="s3cret").test_client()
    assert client.get("/__admin/ui").status_code == 403
    assert client.get("/__admin/ui", headers={"X-Admin-Token": "wrong"}).status_code == 403
    assert client.get("/__admin/ui?token=wrong").status_code == 403
    assert client.get("/__admin/ui", headers={"X-Admin-Token": "s3cret"}).status_code == 200
    assert client.get("/__admin/ui/static/dashboard.css?token=s3cret").status_code == 200
    # Reached through ?token=, the page loads its assets with the token too (a browser sends no header).
    page = client.get("/__admin/ui?token=s3%2Bcret").get_data(as_text=True)
    assert client.get("/__admin/ui?token=s3cret").status_code == 200
    assert all(ref.endswith("?token=s3%2Bcret") for ref in assets_of(page))
    # A remote browser with the token is let in, as the admin API lets in a remote client with it.
    remote = client.get("/__admin/ui?token=s3cret", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 200


def test_the_journal_never_shows_the_page_token(make_app: Callable[..., Flask]) -> None:
    app = make_app(admin_token="s3cret")
    client = app.test_client()
    client.get("/__admin/ui?token=s3cret")
    # A vendor request carrying the same query parameter is journaled with its value redacted.
    client.get("/api/dpa/process/processPlan/queryPlanByUserId?token=s3cret")
    response = client.get("/__admin/requests", headers={"X-Admin-Token": "s3cret"})
    entries = response.get_json()["data"]
    assert "s3cret" not in response.get_data(as_text=True)
    # Admin reads (the page itself, the dashboard's polling) are not journaled at all.
    assert not [e for e in entries if e["path"].startswith("/__admin")]
    vendor = [e for e in entries if e["path"] == "/api/dpa/process/processPlan/queryPlanByUserId"]
    assert vendor and vendor[0]["query"] == {"token": "***"}
