"""/__admin/ui: the dashboard page (runs, scenes, callbacks, journal, clock), served from package files."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ui", __name__)
