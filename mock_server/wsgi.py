"""Entry points for servers, configured by DPA_MOCK_* variables: `mock_server.wsgi:app` (any WSGI server) and
`mock_server.wsgi:gate` (granian's RSGI interface: bodies received in full, under a read timeout, first)."""

from mock_server.app import create_app
from mock_server.http.gate import Gate
from mock_server.settings import configure_logging, load_settings

configure_logging()
settings = load_settings()
app = create_app(settings)
platform = app.extensions["dpa_platform"]
# faults.active, not faults_pending(): no lock for shared state, as the answer only picks a request's thread.
gate = Gate(app, settings, platform.faults.active, lane=app.wsgi_app, platform=platform)
