"""The callback receiver (interface 7): in-process automatically, on a live target only with --callback-listen."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from contract_tests.plugins.clock import KitClock
from contract_tests.plugins.target import AdminError
from contract_tests.support.kit import KIT
from mock_server.testing.receiver import CallbackReceiver, Delivery


class Callbacks:
    """The session receiver as one test sees it: drained of earlier traffic, scripted by the test."""

    def __init__(self, receiver: CallbackReceiver, public_url: str, clock: KitClock) -> None:
        self.receiver, self.url, self.clock = receiver, public_url, clock

    def drain(self) -> None:
        """Let earlier runs finish their deliveries, then forget them, so a script meets only this test's."""
        if self.clock.controlled:
            self.clock.advance(30)
        self.wait_quiet()
        self.receiver.clear()

    def wait_quiet(self, quiet: float | None = None, limit: float | None = None) -> None:
        """Wait until no delivery arrived for `quiet` seconds (deliveries are recorded just after answering).

        With a controlled clock an advance returns only after its callback attempts are answered, so a
        short pause covers the receiver's recording; in real time retries may come seconds apart.
        """
        quiet = quiet if quiet is not None else (0.05 if self.clock.controlled else 2.0)
        limit = limit if limit is not None else (5.0 if self.clock.controlled else _real_wait())
        deadline = time.monotonic() + limit
        count = -1
        while time.monotonic() < deadline:
            now = len(self.receiver.deliveries)
            if now == count:
                return
            count = now
            time.sleep(quiet)

    def for_instance(self, instance_id: str) -> list[Delivery]:
        return self.receiver.for_instance(instance_id)

    def statuses(self, instance_id: str) -> list[Any]:
        return [d.json.get("status") for d in self.for_instance(instance_id) if isinstance(d.json, dict)]

    def wait_for_terminal(self, instance_id: str, limit: float | None = None) -> list[Delivery]:
        """Drive time until a SUCCESS/FAIL callback for the instance arrived (or the limit passed)."""

        def probe() -> list[Any]:
            return self.statuses(instance_id)

        self.clock.poll(probe, lambda st: any(s in ("SUCCESS", "FAIL") for s in st), step=1.0, limit=limit)
        return self.settled(instance_id)

    def settled(self, instance_id: str) -> list[Delivery]:
        """The instance's deliveries once retries are over: push time past every backoff (until the ledger has no
        pending attempt, for targets with long backoffs), then wait for quiet."""
        if self.clock.controlled:
            self.clock.advance(60)
            for _ in range(SETTLE_STEPS):
                if not self._pending(instance_id):
                    break
                self.clock.advance(SETTLE_STEP_SECONDS)
            self._catch_up(instance_id)
        self.wait_quiet()
        return self.for_instance(instance_id)

    @property
    def expected_path(self) -> str | None:
        """The path (and query) deliveries must reach: the callbackUrl's, when the kit's own receiver is that URL
        (behind another --callback-public-url a proxy may rewrite paths)."""
        if self.url != self.receiver.url:
            return None
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _pending(self, instance_id: str) -> bool:
        """Whether dpa-mock's ledger still has a queued or retrying delivery for the instance."""
        try:
            ledger = self.clock.target.admin_call("GET", "/__admin/callbacks", params={"planInstanceId": instance_id})
        except (AdminError, requests.RequestException):
            return False
        return any(
            isinstance(d, dict) and d.get("state") in ("queued", "retrying")
            for d in (ledger if isinstance(ledger, list) else [])
        )

    def _catch_up(self, instance_id: str) -> None:
        """Wait (bounded) until the receiver recorded as many deliveries as the emulator's ledger says it sent.

        The receiver records a delivery just after answering it; on a loaded machine that can lag the
        emulator's bookkeeping by more than the quiet period.
        """
        try:
            ledger = self.clock.target.admin_call("GET", "/__admin/callbacks", params={"planInstanceId": instance_id})
            sent = sum(len(d.get("attempts") or []) for d in ledger if isinstance(d, dict))
        except (AdminError, requests.RequestException, TypeError):
            return  # the ledger is a courtesy of dpa-mock; without it, waiting for quiet has to do
        self.receiver.wait_for(
            lambda ds: (
                len([d for d in ds if isinstance(d.json, dict) and d.json.get("planInstanceId") == instance_id]) >= sent
            ),
            timeout=5,
        )


SETTLE_STEP_SECONDS = 600.0  # a target-clock step while retries are pending: backoffs of minutes are faithful
SETTLE_STEPS = 36  # six hours of target time at most: longer backoffs are not waited for


def _real_wait() -> float:
    """--wait-seconds: how long real time may be waited for callbacks."""
    return KIT.config.wait_seconds if KIT.config else 30.0


@pytest.fixture(scope="session")
def kit_receiver() -> Iterator[tuple[CallbackReceiver, str] | None]:
    cfg = KIT.config
    assert cfg is not None
    if not cfg.callback_listen:
        yield None
        return
    host, _, port = cfg.callback_listen.rpartition(":")
    try:
        receiver = CallbackReceiver(host or "127.0.0.1", int(port or 0)).start()
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--callback-listen {cfg.callback_listen!r}: {exc}") from None
    public = receiver.url if cfg.callback_public_url in (None, "auto") else str(cfg.callback_public_url)
    KIT.callback_url = public
    try:
        yield receiver, public
    finally:
        receiver.stop()


@pytest.fixture
def kit_callbacks(kit_receiver: tuple[CallbackReceiver, str] | None, kit_clock: KitClock) -> Iterator[Callbacks]:
    if kit_receiver is None:
        pytest.skip("callbacks from a live target need --callback-listen HOST:PORT and --callback-public-url URL")
    callbacks = Callbacks(kit_receiver[0], kit_receiver[1], kit_clock)
    callbacks.drain()
    yield callbacks
    kit_receiver[0].clear()  # back to acknowledging everything
