"""Stopping a server on SIGINT/SIGTERM within bounds: the signal recorded, work in flight given a grace, the
rest closed within a budget. Shared by `dpa-mock serve` (both servers) and `dpa-mock proxy`."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

# A stop (SIGINT, SIGTERM) is bounded: requests in flight get STOP_GRACE seconds to finish, closing the state
# and the callback senders STOP_CLOSE_BUDGET more; whatever is still running then is cut.
STOP_GRACE = 2.5
STOP_CLOSE_BUDGET = 1.0

Say = Callable[[str], None]


class StopSignals:
    """The stop signals received. A record, not only an exception: a KeyboardInterrupt raised while the main
    thread runs a finalizer or a weakref callback (importlib's module locks, a collected socket...) is printed
    as "Exception ignored" and dropped by Python, and the stop with it: the server served on (what made
    test_signal_stops_the_server_cleanly[waitress-2] flake; tests/test_stop.py reproduces it at will). So the
    handler records the signal first, and every loop that serves checks the record."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        """SIGINT and SIGTERM both stop, from now on (SIGTERM's default would kill without a word)."""
        self.received.clear()  # a server started again in the same process (a test's) starts unstopped
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def ignore(self) -> None:
        """From now on no signal interrupts (what is left to do must be done: a report, say)."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        raise KeyboardInterrupt  # out of whatever the main thread waits on; if swallowed, the loop sees the record

    @property
    def requested(self) -> bool:
        return bool(self.received)

    @property
    def impatient(self) -> bool:
        """A second signal: stop waiting for anything."""
        return len(self.received) > 1


# One per process: signal handlers are per process too.
stops = StopSignals()


def close_within(close: Callable[[], None], budget: float, say: Say, name: str = "dpa-close") -> bool:
    """Run `close`, giving up on it after `budget` seconds (True if it finished): a close stuck behind a
    request still in flight must not hold the process."""
    closer = threading.Thread(target=close, name=name, daemon=True)
    closer.start()
    closer.join(budget)
    if closer.is_alive():
        say(f"closing took more than {budget:g} s; exiting without waiting")
        return False
    return True


def serve_waitress(server: Any, say: Say, grace: float = STOP_GRACE) -> None:
    """Serve a waitress server until a stop signal (installed with `stops.install()`), then drain it.

    waitress's own run() is this loop, but a stop lost in a finalizer never ends it, and on a stop it stops
    flushing answers, then waits up to 5 s for busy threads whatever the caller's grace; drain() bounds that
    and lets finished answers out."""
    from waitress import wasyncore

    while not stops.requested:
        with contextlib.suppress(KeyboardInterrupt):
            wasyncore.loop(
                timeout=server.adj.asyncore_loop_timeout,
                map=server._map,
                use_poll=server.adj.asyncore_use_poll,
                count=1,
            )
    drain(server, say, grace)


def drain(server: Any, say: Say, grace: float = STOP_GRACE) -> None:
    """After a stop: refuse new connections, close idle ones, let requests in flight finish (their answers
    flushed) for at most `grace` seconds, then cut what is left. A second signal cuts at once."""
    from waitress import wasyncore

    wasyncore.dispatcher.close(server)  # the listener only (the server's close() would take the trigger too)
    deadline = time.monotonic() + grace
    try:
        while True:
            busy = 0
            for channel in list(server.active_channels.values()):
                if channel.requests or channel.total_outbufs_len:
                    busy += 1
                else:
                    channel.will_close = True  # idle keep-alive, or a request still arriving: closed now
            if (not busy and not server.task_dispatcher.queue) or stops.impatient:
                break
            if time.monotonic() >= deadline:
                say(f"{busy} request(s) still running {grace:g} s after the stop: cut")
                break
            wasyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
    except KeyboardInterrupt:
        pass
    # Queued tasks are cancelled; a thread still in a request is a daemon the exit does not wait for.
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=0.2)
    for channel in list(server._map.values()):
        channel.close()
