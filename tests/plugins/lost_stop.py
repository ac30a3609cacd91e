"""A stop signal handled inside a finalizer, for the stop tests' server scripts (tests/test_stop.py, test_proxy_stop.py).

Python prints a KeyboardInterrupt raised while the main thread runs a weakref callback as "Exception ignored" and
drops it, as it may whenever a finalizer happens to run in the main thread (a collected socket, importlib's module
locks...): the servers must stop anyway.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref

HEADER = b"x-stop-in-finalizer"  # a request carrying it, on a server patched by signal_on_request(), is the cue


class _Doomed:
    pass


def signal_inside_a_finalizer() -> None:
    """SIGINT to the main thread from inside a finalizer that runs on the main thread, now."""
    doomed = _Doomed()
    main = threading.main_thread().ident
    assert main is not None
    weakref.finalize(doomed, lambda: (signal.pthread_kill(main, signal.SIGINT), time.sleep(0.5)))
    del doomed  # the finalizer runs here, in the main thread, and the signal's handler inside it


def signal_on_request() -> None:
    """Patch waitress so that a request carrying HEADER triggers the signal on the main thread as it is read (a
    count of connections would count the readiness probe's retries too, on a loaded machine)."""
    import waitress.channel

    received = waitress.channel.HTTPChannel.received

    def received_then_signalled(self: waitress.channel.HTTPChannel, data: bytes) -> bool:
        done = received(self, data)
        if HEADER in data.lower():
            signal_inside_a_finalizer()
        return bool(done)

    waitress.channel.HTTPChannel.received = received_then_signalled  # type: ignore[method-assign]  # the test's patch
