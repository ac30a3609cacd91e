"""WSGI entry point for external servers: `mock_server.wsgi:app`, configured by DPA_MOCK_* variables."""

from mock_server.app import create_app
from mock_server.settings import configure_logging, load_settings

configure_logging()
app = create_app(load_settings())
