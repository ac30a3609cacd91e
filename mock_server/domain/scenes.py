"""Interface 4: timing scenes — `single` fires once, `cycle` every intervals × dimension, on calendar time."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from mock_server.domain.clock import to_ms
from mock_server.domain.errors import ValidationError

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
            "instanceId": self.instance_id, "processPlanId": self.plan_id, "sceneName": self.scene_name,
            "dimension": self.dimension, "intervals": self.intervals, "executeStrategy": self.strategy,
            "callbackUrl": self.callback_url, "modelId": self.model_id, "userId": self.user_id,
            "createTime": to_ms(self.created_at),
            "nextFireTime": None if self.next_fire is None else to_ms(self.next_fire),
            "firedCount": self.fired, "coalescedCount": self.coalesced, "active": self.active,
            "lastInstanceId": self.last_instance_id,
        }
