"""Entry points for servers, configured by DPA_MOCK_* variables: `mock_server.wsgi:app` (any WSGI server) and
`mock_server.wsgi:gate` (granian's RSGI interface: bodies received in full, under a read timeout, first)."""

from mock_server.app import create_app
from mock_server.http.gate import Gate
from mock_server.settings import configure_logging, load_settings

configure_logging()
settings = load_settings()
app = create_app(settings)
# Without the lock faults_pending() takes for shared state: the answer only picks the thread a request runs on.
gate = Gate(app, settings, app.extensions["dpa_platform"].faults.active, lane=app.wsgi_app)
