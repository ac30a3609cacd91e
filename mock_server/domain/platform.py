"""The platform facade the HTTP layer calls: interfaces 1-7 and the admin operations over its components."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from mock_server.domain.callbacks import Delivery, Outbox, Transport, delivery_record
from mock_server.domain.catalog import Catalog, Plan
from mock_server.domain.clock import Clock, check_advance
from mock_server.domain.components import AdvanceRequests, Components, RequestJournal, StoredClock, StoredJournal
from mock_server.domain.errors import (
    UNAVAILABLE,
    UNKNOWN_INSTANCE,
    UNKNOWN_PLAN,
    AuthError,
    DomainError,
    NotFound,
    ValidationError,
)
from mock_server.domain.faults import Fault, Faults
from mock_server.domain.ids import IdGenerator
from mock_server.domain.journal import Journal
from mock_server.domain.oauth import OAuth, Principal
from mock_server.domain.runs import STATUSES, Run, RunEngine, resolve_inputs, run_record
from mock_server.domain.scenes import SceneEngine, check_scene_form, scene_record
from mock_server.domain.scheduler import EventLoop, Scheduler
from mock_server.domain.shared import StoreSync
from mock_server.domain.store import MemoryStore, Store
from mock_server.settings import Settings

log = logging.getLogger("dpa_mock.engine")


class Platform:
    """Owns the catalogue, the clock and the stored components; every vendor and admin operation is a method."""

    def __init__(
        self, settings: Settings, catalog: Catalog, clock: Clock, transport: Transport, store: Store | None = None
    ) -> None:
        self.settings, self.catalog, self.clock = settings, catalog, clock
        self.store: Store = store or MemoryStore()
        self.tz = ZoneInfo(settings.timezone)
        self.scheduler = Scheduler()
        self.components = Components(catalog)
        self.sync = StoreSync(
            self.store,
            self.components,
            self.scheduler,
            on_leader=self._lead,
            poll_interval=settings.shared_poll_interval,
        )
        self.lock = self.sync.lock
        self.shared = self.sync.shared
        self.scheduler.enabled = self.sync.leader
        self.ids = IdGenerator("in")
        self._advance_lock = threading.Lock()  # one process serves one advance at a time
        self._advancing = threading.Lock()  # single process: one advance at a time, target taken inside

        # The stored kinds, in restore order: the clock first, since the others read the time.
        register = self.components.register
        self._stored_clock = register(StoredClock(clock, self.store))
        shared_journal = getattr(self.store, "journal", None) if self.shared else None
        self.journal: RequestJournal = (
            shared_journal(settings.journal_size) if shared_journal else Journal(settings.journal_size)
        )
        register(StoredJournal(self.journal))
        self.oauth = register(
            OAuth(
                catalog,
                clock,
                code_ttl=settings.code_ttl,
                token_ttl=settings.token_ttl,
                secret=settings.jwt_secret,
                issuer=settings.issuer,
                lock=self.lock,
                on_code=self._code_writer(),
                code_length=settings.code_length,
                code_alphabet=settings.code_alphabet,
                claims=settings.token_claims,
                audience=settings.token_audience,
            )
        )
        self.faults = register(Faults(self.lock, **self._writers(Faults.kind, dataclasses.asdict, lambda f: f.id)))
        self.advances = register(AdvanceRequests())
        self.runs = register(
            RunEngine(
                catalog,
                self.ids,
                self.scheduler.at,
                self._status_changed,
                start_delay=settings.run_start_delay,
                seed=settings.seed,
                keep_finished=settings.runs_keep,
                id_shape=settings.plan_instance_id_format,
                **self._writers(RunEngine.kind, run_record, lambda r: r.instance_id),
            )
        )
        self.outbox = register(
            Outbox(
                transport,
                clock,
                self.scheduler.at,
                self.lock,
                retries=settings.callback_retries,
                backoff=settings.callback_backoff,
                timeout=settings.callback_timeout,
                workers=settings.callback_workers,
                ledger_size=settings.ledger_size,
                statuses=frozenset(settings.callback_statuses),
                after_give_up=settings.callback_after_give_up,
                **self._writers(Outbox.kind, delivery_record, lambda d: d.id),
            )
        )
        self.outbox.dispatching = self.sync.leader
        self.scenes = register(
            SceneEngine(
                catalog,
                clock,
                self.scheduler,
                self.ids,
                self.tz,
                self.runs.new_run,
                catchup_limit=settings.scene_catchup_limit,
                firing_budget=settings.advance_firing_budget,
                **self._writers(SceneEngine.kind, scene_record, lambda s: s.instance_id),
            )
        )
        self.loop = EventLoop(
            clock,
            self.scheduler,
            self.outbox.inflight,
            self.lock,
            on_error=lambda exc: log.exception("scheduled event failed", exc_info=exc),
            each_round=self._serve_asked_advances if self.shared else None,
            max_wait=settings.shared_poll_interval if self.shared else 0.5,
            gather=0.005 if self.shared else 0.0,
        )
        self.sync.open()

    # -- how components write to a durable store --------------------------------------------------
    def _writers(
        self, kind: str, to_record: Callable[[Any], dict[str, Any]], key: Callable[[Any], object]
    ) -> dict[str, Any]:
        """A component's on_change/on_forget; None for the in-memory store, which then pays nothing."""
        if not self.store.durable:
            return {"on_change": None, "on_forget": None}
        put, delete = self.store.put, self.store.delete
        return {
            "on_change": lambda thing: put(kind, str(key(thing)), to_record(thing)),
            "on_forget": lambda k: delete(kind, str(k)),
        }

    def _code_writer(self) -> Callable[[str, dict[str, Any] | None], None] | None:
        if not self.store.durable:
            return None
        put, delete = self.store.put, self.store.delete
        return lambda code, record: put(OAuth.kind, code, record) if record else delete(OAuth.kind, code)

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def leader(self) -> bool:
        """Does this process schedule and send callbacks (always, unless another process holds the lease)?"""
        return self.sync.leader

    def _lead(self, leader: bool) -> None:
        self.outbox.dispatching = leader

    def reading(self) -> contextlib.AbstractContextManager[None]:
        return self.sync.reading()

    def start(self) -> None:
        self.loop.start()
        self.sync.start()

    def close(self) -> None:
        self.sync.stop()
        self.loop.stop()
        self.outbox.shutdown()
        closer = getattr(self.journal, "close", None)
        if closer is not None:
            closer()
        self.store.close()

    def reset(self) -> None:
        """Forget everything (/__admin/reset): every component, the store, and what is scheduled."""
        # Under the loop's runner lock too, so no event popped before the reset runs after it.
        with self.loop.paused(), self.lock:
            self.scheduler.clear()
            self.store.clear()
            self.components.reset()

    def _status_changed(self, run: Run, status: str, at: float) -> None:
        self.outbox.enqueue(run.instance_id, run.plan.id, run.callback_url, status, at)

    # -- interfaces 1-6 ---------------------------------------------------------------------------
    def plan_for(self, principal: Principal, plan_id: str) -> Plan:
        plan = self.catalog.plans.get(plan_id)
        if plan is None:
            raise NotFound(f"processPlanId {plan_id!r} does not exist", kind=UNKNOWN_PLAN)
        if not plan.visible_for(principal.user_id, principal.scope):
            raise NotFound(
                f"processPlanId {plan_id!r} is not visible to user {principal.user_id!r} "
                f"with scope {principal.scope!r}",
                kind=UNKNOWN_PLAN,
            )
        return plan

    def faults_pending(self) -> bool:
        if not self.shared:
            return self.faults.active()  # asked on every request; one list's truth needs no lock
        with self.reading():
            return self.faults.active()

    def take_fault(self, method: str, path: str, operation_id: str | None) -> Any:
        if not self.faults_pending():
            return None  # the usual request: no fault set, no transaction
        return self.faults.take(method, path, operation_id)

    def list_plans(self, principal: Principal) -> list[dict[str, Any]]:
        with self.reading():
            # A plan's status is that of its latest instance; the fixture's until it has run.
            return [
                p.to_dict(latest.status if (latest := self.runs.latest_by_plan.get(p.id)) else p.status)
                for p in self.catalog.plans.values()
                if p.visible_for(principal.user_id, principal.scope)
            ]

    def models(self, principal: Principal, plan_id: str) -> list[dict[str, Any]]:
        plan = self.plan_for(principal, plan_id)
        return [
            {
                "modelName": wf.name,
                "processModelId": wf.model_id,
                "mapParam": [{"name": p.name, "type": p.type} for p in wf.params],
            }
            for wf in plan.workflows
        ]

    def execute(self, principal: Principal, path_plan_id: str, body: dict[str, Any]) -> list[dict[str, str]]:
        body_plan_id = body.get("processPlanId")
        if body_plan_id != path_plan_id:
            raise ValidationError(
                f"processPlanId: the body says {body_plan_id!r} but the path says "
                f"{path_plan_id!r}; they must be the same plan"
            )
        plan = self.plan_for(principal, path_plan_id)
        inputs = resolve_inputs(plan, body.get("modelVarReq"))
        with self.lock:
            run = self.runs.new_run(
                plan, principal.user_id, principal.client_id, body.get("callbackUrl"), inputs, self.clock.now()
            )
        return [{"processPlanId": plan.id, "planInstanceId": run.instance_id}]

    def run_for(self, principal: Principal, plan_id: str, instance_id: str) -> Run:
        self.plan_for(principal, plan_id)
        run = self.runs.runs.get(instance_id)
        if run is None:
            raise NotFound(f"planInstanceId {instance_id!r} does not exist", kind=UNKNOWN_INSTANCE)
        if run.plan.id != plan_id:
            raise NotFound(
                f"planInstanceId {instance_id!r} is an instance of plan {run.plan.id!r}, not of {plan_id!r}",
                kind=UNKNOWN_INSTANCE,
            )
        if run.user_id != principal.user_id or run.client_id != principal.client_id:
            raise AuthError(f"planInstanceId {instance_id!r} was started by another user or app")
        return run

    def out_params(self, principal: Principal, plan_id: str, instance_id: str) -> list[dict[str, Any]]:
        with self.reading():
            return self.run_for(principal, plan_id, instance_id).out_params()

    # -- interface 4 ------------------------------------------------------------------------------
    def save_scene(self, principal: Principal, form: dict[str, Any]) -> dict[str, Any]:
        dimension, intervals, strategy = check_scene_form(form)
        plan = self.plan_for(principal, form["processPlanId"])
        resolve_inputs(plan, form.get("modelVarReq"))  # reject bad inputs now, not at the first firing
        with self.lock:
            scene = self.scenes.save(
                plan, form, dimension, intervals, strategy, principal.user_id, principal.client_id, principal.scope
            )
        return {"instanceId": scene.instance_id, "modelId": scene.model_id, "status": "DEFAULT"}

    # -- time and admin ---------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`, doing everything due meanwhile in time order (callbacks included)."""
        # The same range check as the admin endpoint's: an in-process caller (the pytest plugin) gets the
        # 400-shaped error too, instead of an advance that silently does nothing.
        check_advance(self.clock.now(), seconds)
        if not self.shared:
            # Advances run one after another, each from where the previous one left the clock: an advance
            # moves virtual time event by event, so a target taken while another advance runs would count from
            # the middle of it and lose that advance's remaining time.
            with self._advancing:
                with self.lock:
                    target = self._advance_target(seconds)
                self._advance_to(target)
            return
        with self.lock:
            target = self._advance_target(seconds)
            # The lease holder does the work (it alone schedules); it deletes the request when done.
            key = uuid.uuid4().hex
            self.store.put(AdvanceRequests.kind, key, {"target": target})
            # Known here at once (a process does not read back its own writes), so this process's next
            # advance counts from it; the lease holder's deletion reaches every process by catch-up.
            self.advances.apply(key, {"target": target})
        # A deadline on a monotonic clock (a wait, not an emulator time): sleeps never add up to it exactly.
        deadline = time.monotonic() + self.settings.advance_timeout
        pause = threading.Event()
        while True:
            if self.leader:
                self._serve_asked_advances()
            with self.reading():
                if self.store.get(AdvanceRequests.kind, key) is None:
                    return
            if time.monotonic() > deadline:
                raise DomainError(
                    f"no process finished this advance within {self.settings.advance_timeout:g} s "
                    "(is the scheduler lease held by a stalled process?)",
                    UNAVAILABLE,
                )
            pause.wait(0.005)

    def _advance_target(self, seconds: float) -> float:
        """Where an advance by `seconds` takes the clock (under the lock): after every advance asked before it."""
        # Advances still pending (asked of the lease holder by any process, or running) count as done: the
        # clock they move is saved only when each ends, so `now` alone would let concurrent advances overlap.
        base = max([self.clock.now(), *self.advances.pending.values()])
        check_advance(base, seconds)
        if self.clock.mode == "real":
            self.clock.advance(seconds)
            self._stored_clock.save()
        return round(base + seconds, 6)

    def _serve_asked_advances(self) -> None:
        """The lease holder does the advances asked of it, oldest target first (also each round of the loop)."""
        if not self.advances.pending:
            return  # the usual round: nothing asked
        with self._advance_lock:
            while self.leader and (oldest := self.advances.oldest()) is not None:
                key, target = oldest
                self._advance_to(target)
                with self.lock:
                    self.advances.apply(key, None)
                    self.store.delete(AdvanceRequests.kind, key)

    def _advance_to(self, target: float) -> None:
        with self.lock:
            self.scenes.begin_advance(target)
        # Virtual time walks from event to event (the loop pins it to each due time), so a retry
        # scheduled by an attempt that answers mid-advance lands at its proper time, not at the target.
        try:
            self.loop.run_until(target, wait_callbacks=True)
        finally:
            with self.lock:
                self.scenes.end_advance()
        self.clock.set_at_least(target)
        with self.lock:
            self._stored_clock.save()

    def settle(self) -> None:
        """Do what is due now, waiting for callback attempts: used by tests and the admin API."""
        self.loop.run_until(self.clock.now(), wait_callbacks=True)

    def resume(self, instance_id: str) -> Run:
        with self.lock:
            run = self.runs.runs.get(instance_id)
            if run is None:
                raise NotFound(f"planInstanceId {instance_id!r} does not exist")
            self.runs.resume(run, self.clock.now())
            return run

    def list_runs(self, plan_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        with self.reading():
            return [
                r.to_dict()
                for r in self.runs.runs.values()
                if (plan_id is None or r.plan.id == plan_id) and (status is None or r.status == status)
            ]

    def get_run(self, instance_id: str) -> dict[str, Any]:
        with self.reading():
            run = self.runs.runs.get(instance_id)
            if run is None:
                raise NotFound(f"planInstanceId {instance_id!r} does not exist")
            return run.to_dict()

    def delete_scene(self, instance_id: str) -> dict[str, Any]:
        with self.lock:
            return self.scenes.delete(instance_id).to_dict()

    def list_scenes(self) -> list[dict[str, Any]]:
        with self.reading():
            return [s.to_dict() for s in self.scenes.scenes.values()]

    def deliveries(self, instance_id: str | None = None) -> list[Delivery]:
        with self.reading():
            return self.outbox.deliveries(instance_id)

    def list_faults(self) -> list[Fault]:
        with self.reading():
            return self.faults.list()

    def now(self) -> float:
        with self.reading():
            return self.clock.now()
