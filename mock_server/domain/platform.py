"""The platform facade the HTTP layer calls: one object owning catalogue, OAuth, runs, scenes, outbox, clock."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from mock_server.domain.callbacks import Outbox, Transport
from mock_server.domain.catalog import Catalog, Plan
from mock_server.domain.clock import Clock, to_ms
from mock_server.domain.engine import Engine
from mock_server.domain.errors import UNAVAILABLE, AuthError, DomainError, NotFound, ValidationError
from mock_server.domain.faults import Faults
from mock_server.domain.ids import IdGenerator
from mock_server.domain.journal import Journal
from mock_server.domain.oauth import OAuth, Principal
from mock_server.domain.runs import STATUSES, Run, RunEngine, resolve_inputs
from mock_server.domain.scenes import Scene, check_scene_form, fire_time, first_index_after
from mock_server.domain.persistence import (delivery_from, delivery_record, run_from, run_record, scene_from,
                                             scene_record)
from mock_server.domain.scheduler import Scheduler
from mock_server.domain.shared import SharedState, StateLock
from mock_server.domain.store import MemoryStore, Records, Store
from mock_server.settings import Settings

log = logging.getLogger("dpa_mock.engine")


class Platform(SharedState):
    def __init__(self, settings: Settings, catalog: Catalog, clock: Clock, transport: Transport,
                 store: Store | None = None) -> None:
        self.settings, self.catalog, self.clock = settings, catalog, clock
        self.store: Store = store or MemoryStore()
        self.tz = ZoneInfo(settings.timezone)
        # With a shared store (several processes, one state) the lock is also the store's transaction,
        # and only the process holding the lease schedules and dispatches; until it knows, none does.
        self.shared = getattr(self.store, "shared", False)
        self.lock = StateLock(self._begin, self.store.commit) if self.shared else StateLock()
        self.leader = not self.shared
        self.scheduler = Scheduler()
        self.scheduler.enabled = self.leader
        self.ids = IdGenerator("in")
        self.advance_requests: dict[str, float] = {}  # key -> target, asked of the lease holder
        self._advance_lock = threading.Lock()
        durable = self.store.durable
        put, forget = self.store.put, self.store.delete
        self.oauth = OAuth(catalog, clock, code_ttl=settings.code_ttl, token_ttl=settings.token_ttl,
                           secret=settings.jwt_secret, issuer=settings.issuer, lock=self.lock,
                           on_code=(lambda c, r: put("code", c, r) if r else forget("code", c)) if durable else None)
        self.outbox = Outbox(transport, clock, self.scheduler.at, self.lock, retries=settings.callback_retries,
                             backoff=settings.callback_backoff, timeout=settings.callback_timeout,
                             workers=settings.callback_workers, ledger_size=settings.ledger_size,
                             statuses=frozenset(settings.callback_statuses),
                             on_change=(lambda d: put("delivery", str(d.id), delivery_record(d))) if durable else None,
                             on_forget=(lambda i: forget("delivery", str(i))) if durable else None)
        self.runs = RunEngine(self.scheduler.at, self._status_changed,
                              start_delay=settings.run_start_delay, seed=settings.seed,
                              keep_finished=settings.runs_keep,
                              on_change=(lambda r: put("run", r.instance_id, run_record(r))) if durable else None,
                              on_forget=(lambda i: forget("run", i)) if durable else None)
        self.outbox.dispatching = self.leader
        self.scenes: dict[str, Scene] = {}
        # Catch-up limits apply only within one advance call: real time passing never coalesces.
        self._advancing = False
        self._advance_firings = 0
        self._advance_target = 0.0
        shared_journal = getattr(self.store, "journal", None) if self.shared else None
        self.journal = shared_journal(settings.journal_size) if shared_journal else Journal(settings.journal_size)
        self.faults = Faults(self.lock, on_change=(lambda f: put("fault", str(f.id), dataclasses.asdict(f)))
                             if durable else None, on_forget=(lambda i: forget("fault", str(i))) if durable else None)
        self.engine = Engine(clock, self.scheduler, self.outbox, self.lock,
                             on_error=lambda exc: log.exception("scheduled event failed", exc_info=exc),
                             heartbeat=self._serve_pending if self.shared else None,
                             beat=settings.shared_poll_interval if self.shared else 0.5,
                             gather=0.005 if self.shared else 0.0)
        self._keeper: threading.Thread | None = None
        self._stopping = threading.Event()
        if self.shared:
            with self.lock:
                pass  # the first transaction claims the lease if it is free and loads the state
        elif durable:
            self._restore(self.store.load())

    def _restore(self, records: Records) -> None:
        """Rebuild from a durable store after a restart: every accepted thing carries on where it was."""
        clock = records.get("meta", {}).get(f"clock-{self.clock.mode}")
        if clock:
            self.clock.restore(clock)
        else:
            self._save_clock()
        now = self.clock.now()
        self.oauth.restore_codes(records.get("code", {}))
        for key, record in records.get("fault", {}).items():
            self.faults.apply(int(key), record)
        for key, record in records.get("advance", {}).items():
            self.advance_requests[key] = float(record["target"])
        last_ms = 0
        for record in sorted(records.get("run", {}).values(), key=lambda r: r["created_at"]):
            run = run_from(record, self.catalog)
            if run is not None:
                self.runs.adopt(run)
                last_ms = max(last_ms, int(run.instance_id[2:]))
        self.outbox.restore([delivery_from(r) for r in records.get("delivery", {}).values()], now)
        for record in records.get("scene", {}).values():
            scene = scene_from(record)
            self.scenes[scene.instance_id] = scene
            last_ms = max(last_ms, int(scene.instance_id[2:]))
            if scene.active and self.leader:
                # Firings missed while the server was down are coalesced into one, made at once.
                due = first_index_after(scene.created_at, now, scene.dimension, scene.intervals, self.tz) - 1
                if scene.strategy == "cycle" and due > scene.k:
                    scene.coalesced += due - scene.k
                    scene.k = due
                self._arm(scene)
        self.ids.bump(last_ms)

    def _save_scene(self, scene: Scene) -> None:
        if self.store.durable:
            self.store.put("scene", scene.instance_id, scene_record(scene))

    def _save_clock(self) -> None:
        if self.store.durable:
            self.store.put("meta", f"clock-{self.clock.mode}", self.clock.snapshot())

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self.engine.start()
        if self.shared and self._keeper is None:
            self._keeper = threading.Thread(target=self._keep, name="dpa-lease", daemon=True)
            self._keeper.start()

    def close(self) -> None:
        self._stopping.set()
        if self._keeper is not None:
            self._keeper.join(timeout=5)
        self.engine.stop()
        self.outbox.shutdown()
        closer = getattr(self.journal, "close", None)
        if closer is not None:
            closer()
        self.store.close()

    def reset(self) -> None:
        # Under the engine's runner lock too, so no event popped before the reset runs after it.
        with self.engine.paused(), self.lock:
            self.scheduler.clear()
            self.oauth.reset()
            self.runs.reset()
            self.outbox.reset()
            self.scenes.clear()
            self.journal.clear()
            self.faults.clear()
            self.clock.reset()
            self.store.clear()
            self._save_clock()

    def _status_changed(self, run: Run, status: str, at: float) -> None:
        self.outbox.enqueue(run.instance_id, run.plan.id, run.callback_url, status, at)

    # -- interfaces 1-6 ---------------------------------------------------------------------------
    def plan_for(self, principal: Principal, plan_id: str) -> Plan:
        plan = self.catalog.plans.get(plan_id)
        if plan is None:
            raise NotFound(f"processPlanId {plan_id!r} does not exist")
        if not plan.visible_for(principal.user_id, principal.scope):
            raise NotFound(f"processPlanId {plan_id!r} is not visible to user {principal.user_id!r} "
                           f"with scope {principal.scope!r}")
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
            return [p.to_dict(latest.status if (latest := self.runs.latest_by_plan.get(p.id)) else p.status)
                    for p in self.catalog.plans.values() if p.visible_for(principal.user_id, principal.scope)]

    def models(self, principal: Principal, plan_id: str) -> list[dict[str, Any]]:
        plan = self.plan_for(principal, plan_id)
        return [{"modelName": wf.name, "processModelId": wf.model_id,
                 "mapParam": [{"name": p.name, "type": p.type} for p in wf.params]} for wf in plan.workflows]

    def execute(self, principal: Principal, path_plan_id: str, body: dict[str, Any]) -> list[dict[str, str]]:
        body_plan_id = body.get("processPlanId")
        if body_plan_id != path_plan_id:
            raise ValidationError(f"processPlanId: the body says {body_plan_id!r} but the path says "
                                  f"{path_plan_id!r}; they must be the same plan")
        plan = self.plan_for(principal, path_plan_id)
        inputs = resolve_inputs(plan, body.get("modelVarReq"))
        with self.lock:
            run = self._start_run(plan, principal.user_id, principal.client_id, body.get("callbackUrl"), inputs,
                                  self.clock.now())
        return [{"processPlanId": plan.id, "planInstanceId": run.instance_id}]

    def _start_run(self, plan: Plan, user_id: str, client_id: str, callback_url: str | None,
                   inputs: dict[str, dict[str, str]], at: float, scene_id: str | None = None) -> Run:
        instance_id = self.ids.next(to_ms(at))
        return self.runs.create(instance_id, plan, user_id, client_id, callback_url, inputs, at, scene_id)

    def run_for(self, principal: Principal, plan_id: str, instance_id: str) -> Run:
        self.plan_for(principal, plan_id)
        run = self.runs.runs.get(instance_id)
        if run is None:
            raise NotFound(f"planInstanceId {instance_id!r} does not exist")
        if run.plan.id != plan_id:
            raise NotFound(f"planInstanceId {instance_id!r} is an instance of plan {run.plan.id!r}, "
                           f"not of {plan_id!r}")
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
            now = self.clock.now()
            try:
                first = fire_time(now, 1, dimension, intervals, self.tz)
            except (ValueError, OverflowError):
                raise ValidationError(f"intervals: {intervals} {dimension} from now is beyond the calendar") from None
            scene = Scene(self.ids.next(to_ms(now)), plan.id, form["sceneName"], dimension, intervals, strategy,
                          form["callbackUrl"], form.get("modelVarReq"), principal.user_id, principal.client_id,
                          principal.scope, plan.workflows[0].model_id, now)
            self.scenes[scene.instance_id] = scene
            self._arm(scene, first)
            self._save_scene(scene)
        return {"instanceId": scene.instance_id, "modelId": scene.model_id, "status": "DEFAULT"}

    def _arm(self, scene: Scene, due: float | None = None) -> None:
        try:
            scene.next_fire = due if due is not None else fire_time(scene.created_at, scene.k, scene.dimension,
                                                                   scene.intervals, self.tz)
        except (ValueError, OverflowError):
            scene.active, scene.next_fire = False, None  # the next firing would be past year 9999
            return
        k = scene.k
        self.scheduler.at(scene.next_fire, lambda t: self._fire(scene, t, k), f"scene {scene.instance_id}")

    arm = _arm

    def _fire(self, scene: Scene, at: float, k: int) -> None:
        if not scene.active or self.scenes.get(scene.instance_id) is not scene or scene.k != k:
            return  # deleted, or this firing was already made (an event scheduled twice under shared state)
        if self._advancing and (scene.burst >= self.settings.scene_catchup_limit
                                or self._advance_firings >= self.settings.advance_firing_budget):
            # One advance spanned more firings than the catch-up limits allow: skip every firing
            # due up to the advance's target at once, so a year of one-second cycles costs no more.
            nxt = first_index_after(scene.created_at, self._advance_target, scene.dimension, scene.intervals, self.tz)
            skipped = 1 if scene.strategy == "single" else max(nxt - scene.k, 1)
            scene.coalesced += skipped
            if scene.strategy == "cycle":
                scene.k += skipped - 1
        else:
            scene.burst += 1
            self._advance_firings += 1
            plan = self.catalog.plans[scene.plan_id]
            inputs = resolve_inputs(plan, scene.model_var_req)
            run = self._start_run(plan, scene.user_id, scene.client_id, scene.callback_url, inputs, at,
                                  scene.instance_id)
            scene.fired += 1
            scene.last_instance_id = run.instance_id
        if scene.strategy == "single":
            scene.active, scene.next_fire = False, None
        else:
            scene.k += 1
            self._arm(scene)
        self._save_scene(scene)

    # -- time and admin ---------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValidationError(f"seconds: must be a finite number >= 0, got {seconds!r}")
        with self.lock:
            target = round(self.clock.now() + seconds, 6)
            if self.clock.mode == "real":
                self.clock.advance(seconds)
                self._save_clock()
            if not self.shared:
                key = None
            else:
                # The lease holder does the work (it alone schedules); it deletes the request when done.
                key = uuid.uuid4().hex
                self.store.put("advance", key, {"target": target})
                if self.leader:
                    self.advance_requests[key] = target
        if key is None:
            self._advance_to(target)
            return
        waited = 0.0
        pause = threading.Event()
        while True:
            if self.leader:
                self._serve_advances()
            with self.reading():
                if self.store.get("advance", key) is None:
                    return
            if waited > self.settings.advance_timeout:
                raise DomainError(f"no process finished this advance within {self.settings.advance_timeout:g} s "
                                  "(is the scheduler lease held by a stalled process?)", UNAVAILABLE)
            pause.wait(0.005)
            waited += 0.005

    def _serve_advances(self) -> None:
        """The lease holder does the advances asked of it, oldest target first."""
        with self._advance_lock:
            while self.leader and self.advance_requests:
                key, target = min(self.advance_requests.items(), key=lambda item: item[1])
                self._advance_to(target)
                with self.lock:
                    self.advance_requests.pop(key, None)
                    self.store.delete("advance", key)

    def _advance_to(self, target: float) -> None:
        with self.lock:
            for scene in self.scenes.values():
                scene.burst = 0
            self._advance_firings, self._advancing = 0, True
            self._advance_target = target
        # Virtual time walks from event to event (the engine pins it to each due time), so a retry
        # scheduled by an attempt that answers mid-advance lands at its proper time, not at the target.
        try:
            self.engine.run_until(target, wait_callbacks=True)
        finally:
            with self.lock:
                self._advancing = False
        self.clock.set_at_least(target)
        with self.lock:
            self._save_clock()

    def settle(self) -> None:
        """Do what is due now, waiting for callback attempts: used by tests and the admin API."""
        self.engine.run_until(self.clock.now(), wait_callbacks=True)

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
            return [r.to_dict() for r in self.runs.runs.values()
                    if (plan_id is None or r.plan.id == plan_id) and (status is None or r.status == status)]

    def get_run(self, instance_id: str) -> dict[str, Any]:
        with self.reading():
            run = self.runs.runs.get(instance_id)
            if run is None:
                raise NotFound(f"planInstanceId {instance_id!r} does not exist")
            return run.to_dict()

    def delete_scene(self, instance_id: str) -> dict[str, Any]:
        with self.lock:
            scene = self.scenes.pop(instance_id, None)
            if scene is None:
                raise NotFound(f"scene {instance_id!r} does not exist")
            scene.active, scene.next_fire = False, None
            self.store.delete("scene", instance_id)
            return scene.to_dict()

    def list_scenes(self) -> list[dict[str, Any]]:
        with self.reading():
            return [s.to_dict() for s in self.scenes.values()]

    def deliveries(self, instance_id: str | None = None) -> list[Any]:
        with self.reading():
            return self.outbox.deliveries(instance_id)

    def list_faults(self) -> list[Any]:
        with self.reading():
            return self.faults.list()

    def now(self) -> float:
        with self.reading():
            return self.clock.now()
