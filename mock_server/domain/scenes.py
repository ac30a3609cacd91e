"""Interface 4: timing scenes — `single` fires once, `cycle` every intervals × dimension, on calendar time."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from mock_server.domain.catalog import Catalog, Plan
from mock_server.domain.clock import Clock, to_ms
from mock_server.domain.errors import NotFound, ValidationError
from mock_server.domain.ids import IdGenerator
from mock_server.domain.runs import Run, resolve_inputs
from mock_server.domain.scheduler import Scheduler

DIMENSIONS = ("seconds", "minutes", "hours", "day", "weeks", "month")
STRATEGIES = ("single", "cycle")
_FIXED = {"seconds": 1, "minutes": 60, "hours": 3600}


def check_scene_form(form: dict[str, Any]) -> tuple[str, int, str]:
    """A saveTimingParam form's required fields and their values: (dimension, intervals, executeStrategy)."""
    for name in ("processPlanId", "callbackUrl", "dimension", "intervals", "executeStrategy", "sceneName"):
        if str(form.get(name) or "").strip() == "":
            raise ValidationError(f"{name}: is required")
    dimension, strategy = form["dimension"], form["executeStrategy"]
    if dimension not in DIMENSIONS:
        raise ValidationError(f"dimension: {dimension!r} is not one of {', '.join(DIMENSIONS)}")
    if strategy not in STRATEGIES:
        raise ValidationError(f"executeStrategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    try:
        intervals = int(str(form["intervals"]).strip())
    except ValueError:
        raise ValidationError(f"intervals: {form['intervals']!r} is not a whole number") from None
    if intervals <= 0:
        raise ValidationError(f"intervals: must be a positive whole number, got {intervals}")
    return dimension, intervals, strategy


def fire_time(anchor: float, k: int, dimension: str, intervals: int, tz: ZoneInfo) -> float:
    """The k-th firing (k >= 1) after `anchor`, counted from the anchor so month ends never drift."""
    if dimension in _FIXED:
        return anchor + k * intervals * _FIXED[dimension]
    local = dt.datetime.fromtimestamp(anchor, tz)
    if dimension in ("day", "weeks"):
        days = k * intervals * (7 if dimension == "weeks" else 1)
        # Wall-clock arithmetic in the scene's time zone: "every day" keeps the local time of day.
        return (local + dt.timedelta(days=days)).timestamp()
    if dimension == "month":
        months = local.month - 1 + k * intervals
        year, month = local.year + months // 12, months % 12 + 1
        # Jan 31 + 1 month is the last day of February (28th, or 29th in a leap year).
        day = min(local.day, calendar.monthrange(year, month)[1])
        return local.replace(year=year, month=month, day=day).timestamp()
    raise ValueError(f"unknown dimension {dimension!r}")


def first_index_after(anchor: float, t: float, dimension: str, intervals: int, tz: ZoneInfo) -> int:
    """The smallest k >= 1 whose fire_time is after `t`."""
    if dimension in _FIXED:
        period = intervals * _FIXED[dimension]
        k = max(int((t - anchor) // period) + 1, 1)
    else:
        # Calendar periods vary in length: estimate with the shortest, then step (a few iterations).
        shortest = {"day": 82800, "weeks": 7 * 82800, "month": 28 * 86400}[dimension] * intervals
        k = max(int((t - anchor) // (shortest * 1.2)), 1)
    while k > 1 and fire_time(anchor, k - 1, dimension, intervals, tz) > t:
        k -= 1
    while fire_time(anchor, k, dimension, intervals, tz) <= t:
        k += 1
    return k


@dataclass
class Scene:
    instance_id: str
    plan_id: str
    scene_name: str
    dimension: str
    intervals: int
    strategy: str
    callback_url: str
    model_var_req: list[dict[str, Any]] | None
    user_id: str
    client_id: str
    scope: str
    model_id: str
    created_at: float
    next_fire: float | None = None
    k: int = 1
    fired: int = 0
    coalesced: int = 0
    burst: int = 0  # firings during the current /__admin/clock/advance call
    active: bool = True
    last_instance_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "instanceId": self.instance_id,
            "processPlanId": self.plan_id,
            "sceneName": self.scene_name,
            "dimension": self.dimension,
            "intervals": self.intervals,
            "executeStrategy": self.strategy,
            "callbackUrl": self.callback_url,
            "modelId": self.model_id,
            "userId": self.user_id,
            "createTime": to_ms(self.created_at),
            "nextFireTime": None if self.next_fire is None else to_ms(self.next_fire),
            "firedCount": self.fired,
            "coalescedCount": self.coalesced,
            "active": self.active,
            "lastInstanceId": self.last_instance_id,
        }


def scene_record(scene: Scene) -> dict[str, Any]:
    return dataclasses.asdict(scene)


def scene_from(record: dict[str, Any]) -> Scene:
    return Scene(**record)


StartRun = Callable[[Plan, str, str, str | None, dict[str, dict[str, str]], float, str | None], Run]


class SceneEngine:
    """Saves scenes and fires them on the scheduler, each firing starting a run; the component of kind `scene`.

    Within one clock advance the catch-up limits apply: past `catchup_limit` firings of one scene, or
    `firing_budget` of all, the firings still due up to the advance's target are coalesced into a count.
    Real time passing never coalesces.
    """

    kind = "scene"

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        scheduler: Scheduler,
        ids: IdGenerator,
        tz: ZoneInfo,
        start_run: StartRun,
        *,
        catchup_limit: int,
        firing_budget: int,
        on_change: Callable[[Scene], None] | None = None,
        on_forget: Callable[[str], None] | None = None,
    ) -> None:
        self._catalog, self._clock, self._scheduler, self._ids, self._tz = catalog, clock, scheduler, ids, tz
        self._start_run = start_run
        self._catchup_limit, self._firing_budget = catchup_limit, firing_budget
        self._on_change, self._on_forget = on_change, on_forget  # a durable store's ears, or None
        self.scenes: dict[str, Scene] = {}
        self._advancing = False
        self._advance_firings = 0
        self._advance_target = 0.0

    # -- the component interface ------------------------------------------------------------------
    def reset(self) -> None:
        self.scenes.clear()

    def restore(self, records: dict[str, dict[str, Any]]) -> None:
        self.scenes.clear()
        now = self._clock.now()
        for record in records.values():
            scene = scene_from(dict(record))
            self.scenes[scene.instance_id] = scene
            self._ids.bump_past(scene.instance_id)
            if scene.active and self._scheduler.enabled:  # only the lease holder catches up and schedules
                # Firings missed while the server was down are coalesced into one, made at once.
                due = first_index_after(scene.created_at, now, scene.dimension, scene.intervals, self._tz) - 1
                if scene.strategy == "cycle" and due > scene.k:
                    scene.coalesced += due - scene.k
                    scene.k = due
                self._arm(scene)

    def apply(self, key: str, record: dict[str, Any] | None) -> None:
        """A scene another process saved, fired or deleted."""
        scene = self.scenes.get(key)
        if record is None:
            if scene is not None:
                scene.active, scene.next_fire = False, None
                del self.scenes[key]
            return
        if scene is not None:
            for name, value in record.items():
                setattr(scene, name, value)
            return
        scene = scene_from(dict(record))
        self.scenes[key] = scene
        self._ids.bump_past(key)
        if scene.active and scene.next_fire is not None:
            self._arm(scene, scene.next_fire)

    # -- scenes -----------------------------------------------------------------------------------
    def save(
        self,
        plan: Plan,
        form: dict[str, Any],
        dimension: str,
        intervals: int,
        strategy: str,
        user_id: str,
        client_id: str,
        scope: str,
    ) -> Scene:
        """A new scene from a checked saveTimingParam form, armed for its first firing (under the state lock)."""
        now = self._clock.now()
        try:
            first = fire_time(now, 1, dimension, intervals, self._tz)
        except (ValueError, OverflowError):
            raise ValidationError(f"intervals: {intervals} {dimension} from now is beyond the calendar") from None
        scene = Scene(
            self._ids.next(to_ms(now)),
            plan.id,
            form["sceneName"],
            dimension,
            intervals,
            strategy,
            form["callbackUrl"],
            form.get("modelVarReq"),
            user_id,
            client_id,
            scope,
            plan.workflows[0].model_id,
            now,
        )
        self.scenes[scene.instance_id] = scene
        self._arm(scene, first)
        self._saved(scene)
        return scene

    def delete(self, instance_id: str) -> Scene:
        scene = self.scenes.pop(instance_id, None)
        if scene is None:
            raise NotFound(f"scene {instance_id!r} does not exist")
        scene.active, scene.next_fire = False, None
        if self._on_forget is not None:
            self._on_forget(instance_id)
        return scene

    def begin_advance(self, target: float) -> None:
        """A clock advance to `target` starts: the catch-up limits count from zero."""
        for scene in self.scenes.values():
            scene.burst = 0
        self._advance_firings, self._advancing, self._advance_target = 0, True, target

    def end_advance(self) -> None:
        self._advancing = False

    def _saved(self, scene: Scene) -> None:
        if self._on_change is not None:
            self._on_change(scene)

    def _arm(self, scene: Scene, due: float | None = None) -> None:
        try:
            scene.next_fire = (
                due
                if due is not None
                else fire_time(scene.created_at, scene.k, scene.dimension, scene.intervals, self._tz)
            )
        except (ValueError, OverflowError):
            scene.active, scene.next_fire = False, None  # the next firing would be past year 9999
            return
        k = scene.k
        self._scheduler.at(scene.next_fire, lambda t: self._fire(scene, t, k), f"scene {scene.instance_id}")

    def _fire(self, scene: Scene, at: float, k: int) -> None:
        if not scene.active or self.scenes.get(scene.instance_id) is not scene or scene.k != k:
            return  # deleted, or this firing was already made (an event scheduled twice under shared state)
        if self._advancing and (scene.burst >= self._catchup_limit or self._advance_firings >= self._firing_budget):
            # One advance spanned more firings than the catch-up limits allow: skip every firing
            # due up to the advance's target at once, so a year of one-second cycles costs no more.
            nxt = first_index_after(scene.created_at, self._advance_target, scene.dimension, scene.intervals, self._tz)
            skipped = 1 if scene.strategy == "single" else max(nxt - scene.k, 1)
            scene.coalesced += skipped
            if scene.strategy == "cycle":
                scene.k += skipped - 1
        else:
            scene.burst += 1
            self._advance_firings += 1
            plan = self._catalog.plans[scene.plan_id]
            inputs = resolve_inputs(plan, scene.model_var_req)
            run = self._start_run(
                plan, scene.user_id, scene.client_id, scene.callback_url, inputs, at, scene.instance_id
            )
            scene.fired += 1
            scene.last_instance_id = run.instance_id
        if scene.strategy == "single":
            scene.active, scene.next_fire = False, None
        else:
            scene.k += 1
            self._arm(scene)
        self._saved(scene)
