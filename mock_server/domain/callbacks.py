"""Interface 7: an outbox that POSTs status changes, in order per instance, retrying until `SUCCESS`."""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from mock_server.domain.clock import Clock, to_ms
from mock_server.domain.lock import StateLock

ACK_BODY = "SUCCESS"


class Transport(Protocol):
    def post_json(self, url: str, payload: dict[str, Any], timeout: float) -> tuple[int, str]:
        """POST `payload` as JSON; return (HTTP status, body text) or raise OSError/TransportError."""


class TransportError(Exception):
    """Timeout, refused connection, bad URL: the attempt got no HTTP answer."""


def is_ack(http_status: int | None, body: str | None) -> bool:
    # Only a 2xx whose body, trimmed of whitespace, is exactly SUCCESS (case-sensitive).
    return http_status is not None and 200 <= http_status < 300 and (body or "").strip() == ACK_BODY


@dataclass(slots=True)
class Attempt:
    n: int
    at: float
    url: str
    payload: dict[str, Any]
    http_status: int | None
    body: str | None
    error: str | None
    verdict: str  # ack | retry | gave_up

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "at": to_ms(self.at),
            "url": self.url,
            "payload": self.payload,
            "httpStatus": self.http_status,
            "body": self.body,
            "error": self.error,
            "verdict": self.verdict,
        }


@dataclass(slots=True)
class Delivery:
    id: int
    instance_id: str
    plan_id: str
    status: str
    url: str
    created_at: float
    state: str = "queued"  # queued | retrying | acked | gave_up
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def payload(self) -> dict[str, str]:
        return {"planInstanceId": self.instance_id, "processPlanId": self.plan_id, "status": self.status}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "planInstanceId": self.instance_id,
            "processPlanId": self.plan_id,
            "status": self.status,
            "url": self.url,
            "state": self.state,
            "createTime": to_ms(self.created_at),
            "attempts": [a.to_dict() for a in self.attempts],
        }


def delivery_record(delivery: Delivery) -> dict[str, Any]:
    """A delivery as a store keeps it, attempts and all."""
    return {
        "id": delivery.id,
        "instance_id": delivery.instance_id,
        "plan_id": delivery.plan_id,
        "status": delivery.status,
        "url": delivery.url,
        "created_at": delivery.created_at,
        "state": delivery.state,
        "attempts": [dataclasses.asdict(a) for a in delivery.attempts],
    }


def delivery_from(record: dict[str, Any]) -> Delivery:
    fields = dict(record)
    attempts = [Attempt(**a) for a in fields.pop("attempts")]
    return Delivery(**fields, attempts=attempts)


class Outbox:
    """Queues one delivery per status change and sends each instance's queue head first, on a worker pool.

    The component of kind `delivery`: reset, restored and caught up by the platform's registry.
    """

    kind = "delivery"

    def __init__(
        self,
        transport: Transport,
        clock: Clock,
        schedule: Callable[..., Any],
        lock: StateLock,
        *,
        retries: int,
        backoff: tuple[float, ...],
        timeout: float,
        workers: int,
        ledger_size: int,
        statuses: frozenset[str],
        on_change: Callable[[Delivery], None] | None = None,
        on_forget: Callable[[int], None] | None = None,
        after_give_up: bool = True,
    ) -> None:
        self._transport, self._clock, self._schedule, self._lock = transport, clock, schedule, lock
        self._on_change, self._on_forget = on_change, on_forget  # a durable store's ears, or None
        self.retries, self._backoff, self._timeout = retries, backoff, timeout
        self.statuses = statuses
        # Setting callback_after_give_up: False stops a run's callbacks at the first status given up on;
        # the instances so stopped are remembered (a window as long as the ledger's) to drop later statuses.
        self.after_give_up = after_give_up
        self._stopped: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dpa-callback")
        self._closed = False
        self._last_id = 0
        # Only the process holding the scheduler lease sends; the others keep deliveries for display.
        self.dispatching = True
        self._queues: dict[str, collections.deque[Delivery]] = {}
        # The ledger keeps a window of finished deliveries; unfinished ones live in their queues.
        self._ledger: collections.OrderedDict[int, Delivery] = collections.OrderedDict()
        self._ledger_size = ledger_size
        self._inflight: set[Future[None]] = set()
        self._inflight_lock = threading.Lock()
        self._generation = 0

    def reset(self) -> None:
        with self._lock:
            self._generation += 1  # attempts still on the wire from before the reset are ignored
            self._queues.clear()
            self._ledger.clear()
            self._stopped.clear()

    def shutdown(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def enqueue(self, instance_id: str, plan_id: str, url: str | None, status: str, at: float) -> None:
        if not url or status not in self.statuses or instance_id in self._stopped:
            return
        self._last_id += 1  # under the platform lock, which a shared store makes a transaction
        delivery = Delivery(self._last_id, instance_id, plan_id, status, url, at)
        self._queue(delivery, at)
        self._saved(delivery)

    def _queue(self, delivery: Delivery, at: float) -> None:
        self._remember(delivery)
        if not self.dispatching:
            return
        queue = self._queues.setdefault(delivery.instance_id, collections.deque())
        queue.append(delivery)
        if len(queue) == 1:
            self._schedule(at, lambda t: self._attempt(delivery, t), f"callback {delivery.id}")

    def restore(self, records: dict[str, dict[str, Any]]) -> None:
        """Take back deliveries from a store: finished ones into the ledger, the rest queued again in order."""
        self.reset()
        at = self._clock.now()
        for delivery in sorted((delivery_from(r) for r in records.values()), key=lambda d: d.id):
            if delivery.state in ("acked", "gave_up"):
                self._remember(delivery)
                if delivery.state == "gave_up" and not self.after_give_up:
                    self._stopped[delivery.instance_id] = None
            elif delivery.instance_id in self._stopped:
                self._forget(delivery)
            else:
                self._queue(delivery, at)  # at-least-once: an attempt cut off by a crash is made again
            self._last_id = max(self._last_id, delivery.id)

    def apply(self, key: str, record: dict[str, Any] | None) -> None:
        """A delivery another process created, attempted or forgot: shown here, and sent if this one dispatches."""
        if record is None:
            self._ledger.pop(int(key), None)
            return
        delivery = delivery_from(record)
        self._last_id = max(self._last_id, delivery.id)
        known = self._ledger.get(delivery.id)
        if known is not None:
            known.state, known.attempts = delivery.state, delivery.attempts
        elif delivery.state in ("acked", "gave_up"):
            self._remember(delivery)
        elif delivery.instance_id in self._stopped and self.dispatching:
            self._forget(delivery)  # another process queued a status of a run this one stopped calling back
        else:
            self._queue(delivery, self._clock.now())

    def _saved(self, delivery: Delivery) -> None:
        if self._on_change is not None:
            self._on_change(delivery)

    def _remember(self, delivery: Delivery) -> None:
        self._ledger[delivery.id] = delivery
        while len(self._ledger) > self._ledger_size:
            oldest = next(iter(self._ledger.values()))
            if oldest.state in ("queued", "retrying"):
                break  # never drop an unfinished delivery to keep the window
            self._ledger.popitem(last=False)
            if self._on_forget is not None:
                self._on_forget(oldest.id)

    def _attempt(self, delivery: Delivery, at: float) -> None:
        if self._closed:
            return  # stopping: the delivery stays pending (a --state file sends it after the restart)
        generation = self._generation
        # Timed from here: a wait for a free worker is time the callback took too.
        future = self._pool.submit(self._send, delivery, at, generation, self._clock.stopwatch())
        with self._inflight_lock:
            self._inflight.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._inflight_lock:
            self._inflight.discard(future)

    def _send(self, delivery: Delivery, at: float, generation: int, started: float) -> None:
        status: int | None = None
        body: str | None = None
        error: str | None = None
        try:
            status, body = self._transport.post_json(delivery.url, delivery.payload, self._timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer is a failed attempt, never a crash
            error = f"{type(exc).__name__}: {exc}"[:500]
        took = max(0.0, self._clock.stopwatch() - started)
        with self._lock:
            if generation != self._generation:
                return
            n = len(delivery.attempts) + 1
            if is_ack(status, body):
                verdict = "ack"
            elif n <= self.retries:
                verdict = "retry"
            else:
                verdict = "gave_up"
            delivery.attempts.append(
                Attempt(
                    n, at, delivery.url, delivery.payload, status, None if body is None else body[:2000], error, verdict
                )
            )
            delivery.state = {"ack": "acked", "retry": "retrying", "gave_up": "gave_up"}[verdict]
            self._saved(delivery)
            # The answer came `took` after the attempt's due time: the retry and the next status count from
            # there, not from the clock, which an advance in real mode has already moved to its target (the
            # retries due inside the advanced window are then made before the advance returns, as in virtual
            # mode, where an attempt takes no time and this is the pinned clock).
            now = min(self._clock.now(), at + took)
            if verdict == "retry":
                delay = self._backoff[min(n - 1, len(self._backoff) - 1)] if self._backoff else 0.0
                self._schedule(now + delay, lambda t: self._attempt(delivery, t), f"callback {delivery.id} retry")
                return
            queue = self._queues.get(delivery.instance_id)
            if verdict == "gave_up" and not self.after_give_up:
                self._stop(delivery.instance_id, queue)
                return
            if queue and queue[0] is delivery:
                queue.popleft()
                if queue:
                    nxt = queue[0]
                    # Not before the status was entered: with attempts of several instances on the wire at
                    # once, the loop may have queued it behind this one before this answer came back.
                    due = max(now, nxt.created_at)
                    self._schedule(due, lambda t: self._attempt(nxt, t), f"callback {nxt.id}")
                else:
                    del self._queues[delivery.instance_id]

    def _stop(self, instance_id: str, queue: collections.deque[Delivery] | None) -> None:
        """No more callbacks for this instance: the statuses queued behind the one given up are dropped."""
        self._stopped[instance_id] = None
        while len(self._stopped) > self._ledger_size:
            self._stopped.popitem(last=False)
        self._queues.pop(instance_id, None)
        for dropped in list(queue or ())[1:]:
            self._forget(dropped)

    def _forget(self, delivery: Delivery) -> None:
        self._ledger.pop(delivery.id, None)
        if self._on_forget is not None:
            self._on_forget(delivery.id)

    def inflight(self) -> list[Future[None]]:
        with self._inflight_lock:
            return list(self._inflight)

    def deliveries(self, instance_id: str | None = None) -> list[Delivery]:
        with self._lock:
            items = list(self._ledger.values())
        return [d for d in items if instance_id is None or d.instance_id == instance_id]

    def pending_count(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())
