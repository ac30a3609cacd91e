"""/__admin/ui: the dashboard page (runs, scenes, callbacks, journal, clock), served from package files."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, Response, request

from mock_server.domain.errors import NotFound
from mock_server.http.admin import guard

bp = Blueprint("ui", __name__)
STATIC = Path(__file__).resolve().parent.parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything the page needs comes from this origin; the browser refuses anything else.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSET_URL = re.compile(r'(/__admin/ui/static/[\w.-]+)"')


@bp.before_request
def _guard() -> None:
    token = request.args.get("token")
    if token and "X-Admin-Token" not in request.headers:
        # A browser cannot add a header when it navigates or loads a script, so the page and its
        # assets also take the admin token as ?token=; the page's API calls send the header.
        request.environ["HTTP_X_ADMIN_TOKEN"] = token
    guard()


def _file(name: str, text: str | None = None) -> Response:
    path = STATIC / name
    body = text if text is not None else path.read_bytes()
    response = Response(body, content_type=TYPES[path.suffix])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/__admin/ui")
def page() -> Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    token = request.args.get("token")
    if token:
        html = _ASSET_URL.sub(lambda m: f'{m.group(1)}?token={quote(token, safe="")}"', html)
    response = _file("index.html", html)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/__admin/ui/static/<name>")
def asset(name: str) -> Response:
    # Only the shipped files by their plain name: no subdirectories, no dot-files, no traversal.
    if not re.fullmatch(r"[\w-]+\.[a-z]+", name) or Path(name).suffix not in TYPES or not (STATIC / name).is_file():
        raise NotFound(f"no dashboard asset {name!r}")
    return _file(name)
