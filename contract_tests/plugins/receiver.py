"""The callback receiver (interface 7): in-process automatically, on a live target only with --callback-listen."""

from __future__ import annotations

import collections
import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from contract_tests.plugins.clock import KitClock
from contract_tests.plugins.target import AdminError
from contract_tests.support.envelope import STATUSES
from contract_tests.support.kit import KIT
from dpa_client.document import callback_status
from mock_server.testing.receiver import CallbackReceiver, Delivery

DROPPED = "(connection closed without an answer)"  # Delivery.answered_body of a dropped attempt


class _Dropped(Exception):
    """Raised out of the request handler: socketserver then closes the connection without any answer."""


def decoded_body(raw: bytes, encoding: str | None = None) -> bytes:
    """The body with its Content-Encoding (gzip, deflate) undone; as it came when unknown or undecodable.

    Without a header the gzip magic is sniffed, for the receiver's answer script (which sees no headers).
    """
    enc = (encoding or "").strip().lower()
    try:
        if enc in ("gzip", "x-gzip") or (not enc and raw[:2] == b"\x1f\x8b"):
            return gzip.decompress(raw)
        if enc == "deflate":
            try:
                return zlib.decompress(raw)
            except zlib.error:
                return zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate, as some senders mean it
    except (OSError, EOFError, zlib.error):
        pass
    return raw


def content_encoding(delivery: Delivery) -> str:
    """The delivery's Content-Encoding as sent ('' for none or identity)."""
    for name, value in delivery.headers.items():
        if name.lower() == "content-encoding" and value.strip().lower() != "identity":
            return value.strip()
    return ""


class KitReceiver(CallbackReceiver):
    """The kit's receiver: decodes gzip/deflate bodies, can close a connection without answering (`drop`), and
    can fail the first N deliveries of whichever status arrives first (`fail_first_status`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._local = threading.local()
        self._first: collections.deque[tuple[str, Any]] = collections.deque()
        self._first_status: str | None = None
        # A dropped attempt ends its handler with _Dropped: no traceback on the kit's stderr.
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]

    def drop(self, times: int | None = None) -> KitReceiver:
        """Close the connection without any answer `times` times (None: always): the attempt got no SUCCESS."""
        self._push(("drop", None), times)
        return self

    def fail_first_status(self, behaviour: tuple[str, Any], times: int) -> KitReceiver:
        """Answer `behaviour` to the first `times` deliveries of the first status to arrive (retries of one status
        may interleave with later statuses, so a plain queue would spread the failures over several)."""
        with self._lock:
            self._first.extend([behaviour] * times)
            self._first_status = None
        return self

    def _answer(self, raw: bytes = b"") -> tuple[int, str, float]:
        raw = decoded_body(raw)
        status = callback_status(raw)
        with self._lock:
            if self._first and status is not None and self._first_status in (None, status):
                self._first_status = status
                kind, arg = self._first.popleft()
            elif status is not None and self._script.by_status.get(status):
                kind, arg = self._script.by_status[status].popleft()
            else:
                kind, arg = self._script.queue.popleft() if self._script.queue else self._script.default
        self._local.drop = kind == "drop"
        if self._local.drop:
            return 0, DROPPED, 0.0
        return _BEHAVIOURS.get(kind, _BEHAVIOURS["ack"])(arg)

    def _record(self, delivery: Delivery) -> None:
        raw = decoded_body(delivery.raw, content_encoding(delivery))
        super()._record(replace(delivery, raw=raw) if raw is not delivery.raw else delivery)
        if getattr(self._local, "drop", False):
            self._local.drop = False
            raise _Dropped

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._first.clear()
            self._first_status = None


_BEHAVIOURS = {
    "status": lambda arg: (int(arg), "FAIL", 0.0),
    "body": lambda arg: (200, str(arg), 0.0),
    "sleep": lambda arg: (200, "SUCCESS", float(arg)),
    "ack": lambda arg: (200, "SUCCESS", 0.0),
}


class Callbacks:
    """The session receiver as one test sees it: drained of earlier traffic, scripted by the test."""

    def __init__(self, receiver: KitReceiver, public_url: str, clock: KitClock) -> None:
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

    def count(self, instance_id: str, status: str) -> int:
        """Deliveries of `status` for the instance so far, wherever they fell among its other statuses."""
        return sum(1 for d in self.for_instance(instance_id) if d.json.get("status") == status)

    def await_count(self, instance_id: str, status: str, n: int) -> int:
        """The deliveries of `status` once there are `n`, or when waiting for them ended.

        Retries may run on the target's own real-time timer even when the kit drives its clock (and arrive after
        later statuses), so a short real wait is granted then too; on a real clock, up to --wait-seconds.
        """
        if self.count(instance_id, status) < n:
            self.receiver.wait_for(
                lambda ds: (
                    sum(
                        1
                        for d in ds
                        if isinstance(d.json, dict)
                        and d.json.get("planInstanceId") == instance_id
                        and d.json.get("status") == status
                    )
                    >= n
                ),
                timeout=min(REAL_RETRY_GRACE, _real_wait()) if self.clock.controlled else _real_wait(),
            )
            self.wait_quiet()
        return self.count(instance_id, status)

    def no_callback(self, prefix: str = "") -> str:
        """Why no delivery counts for an instance: none arrived, or those that did have a body that is not a JSON
        object (a form, a compression the kit cannot undo…); with `prefix`, '' when nothing was unreadable."""
        bad = [d for d in self.receiver.deliveries if not isinstance(d.json, dict)]
        if not bad:
            return "" if prefix else "no callback arrived"
        d = bad[0]
        encoding = content_encoding(d)
        ctype = next((v for k, v in d.headers.items() if k.lower() == "content-type"), "(none)")
        how = f"Content-Encoding {encoding!r} not decodable" if encoding else f"Content-Type {ctype!r}"
        return (
            f"{prefix}no readable callback: {len(bad)} deliveries arrived whose body is not a JSON object "
            f"({how}, e.g. {d.raw[:60]!r})"
        )

    def statuses(self, instance_id: str) -> list[Any]:
        return [d.json.get("status") for d in self.for_instance(instance_id) if isinstance(d.json, dict)]

    def wait_for_terminal(self, instance_id: str, limit: float | None = None) -> list[Delivery]:
        """Drive time until a SUCCESS/FAIL callback for the instance arrived (or the limit passed)."""

        def probe() -> list[Any]:
            return self.statuses(instance_id)

        self.clock.poll(
            probe,
            lambda st: any(s in ("SUCCESS", "FAIL") for s in st),
            step=1.0,
            limit=limit,
            # Only legal statuses so far, in real time: a slow run is inconclusive, not a broken promise (D25).
            pending=lambda st: (
                None
                if any(s not in STATUSES for s in st)
                else f"callbacks of run {instance_id}: {', '.join(map(str, st)) or 'none yet'}, no SUCCESS/FAIL"
            ),
        )
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
SETTLE_STEPS = 36
# Real seconds granted under a driven clock for retries a target times with its own real-time timer.
REAL_RETRY_GRACE = 5.0  # six hours of target time at most: longer backoffs are not waited for


def _real_wait() -> float:
    """--wait-seconds: how long real time may be waited for callbacks."""
    return KIT.config.wait_seconds if KIT.config else 30.0


@pytest.fixture(scope="session")
def kit_receiver() -> Iterator[tuple[KitReceiver, str] | None]:
    cfg = KIT.config
    assert cfg is not None
    if not cfg.callback_listen:
        yield None
        return
    host, _, port = cfg.callback_listen.rpartition(":")
    try:
        receiver = KitReceiver(host or "127.0.0.1", int(port or 0))
        receiver.start()
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--callback-listen {cfg.callback_listen!r}: {exc}") from None
    public = receiver.url if cfg.callback_public_url in (None, "auto") else str(cfg.callback_public_url)
    KIT.callback_url = public
    try:
        yield receiver, public
    finally:
        receiver.stop()


@pytest.fixture
def kit_callbacks(kit_receiver: tuple[KitReceiver, str] | None, kit_clock: KitClock) -> Iterator[Callbacks]:
    if kit_receiver is None:
        pytest.skip("callbacks from a live target need --callback-listen HOST:PORT and --callback-public-url URL")
    callbacks = Callbacks(kit_receiver[0], kit_receiver[1], kit_clock)
    callbacks.drain()
    yield callbacks
    kit_receiver[0].clear()  # back to acknowledging everything
