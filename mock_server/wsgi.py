"""Entry points for servers, configured by DPA_MOCK_* variables: `mock_server.wsgi:app` (any WSGI server) and
`mock_server.wsgi:gate` (granian's RSGI interface: bodies received in full, under a read timeout, first)."""

from mock_server.app import create_app
from mock_server.http.gate import Gate
from mock_server.settings import configure_logging, load_settings

configure_logging()
settings = load_settings()
app = create_app(settings)
gate = Gate(app, settings)
