"""Entry points for servers, configured by DPA_MOCK_* variables: `mock_server.wsgi:app` (any WSGI server) and
`mock_server.wsgi:gate` (granian's RSGI interface: bodies received in full, under a read timeout, first)."""

import gc

from mock_server.app import create_app
from mock_server.domain.platform import Platform
from mock_server.http.fastlane import FastLane
from mock_server.http.gate import Gate
from mock_server.settings import configure_logging, load_settings

configure_logging()
settings = load_settings()
app = create_app(settings)
platform: Platform = app.extensions["dpa_platform"]
lane = app.wsgi_app
assert isinstance(lane, FastLane)  # create_app puts the fast door in front of Flask's own wsgi_app
# faults.active, not faults_pending(): no lock for shared state, as the answer only picks a request's thread.
gate = Gate(app, settings, platform.faults.active, lane=lane, platform=platform)

# A server process builds its app once, then makes runs by the thousand: the default collector thresholds
# (700, 10, 10) scanned the whole growing heap several times a second under load (measured: three full
# collections in 3 s of executes, up to 200 ms each, which was execute's p99). Start-up objects (catalog,
# compiled schemas, modules) are frozen out of every scan, and young collections run 70 times less often;
# cycles are still collected, only in fewer, larger sweeps of the young generations.
gc.freeze()
gc.set_threshold(50_000, 10, 10)
