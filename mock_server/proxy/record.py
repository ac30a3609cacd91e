"""`--record DIR`: emulator fixtures from what the deployment answered — plans, workflows and inputs, run outputs.

One file, `DIR/recorded-plans.yaml`, rewritten after every answer that adds to it and merged with what it
already holds (a re-recording updates plans in place, never duplicates them). Apps, secrets, codes and
tokens are never written: the user puts an apps file beside the recording (the bundled one works).
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

import yaml

from dpa_client.client import jwt_claims

FILE_NAME = "recorded-plans.yaml"
MAX_RUNS = 50_000  # runs remembered (plan, last status) to tie callbacks and outputs to plans
NODE_DURATION = 0.5  # seconds per recorded node in the replay; the deployment's timing is not observable
_PLAN_FIELDS = ("title", "status", "version", "createTime", "createUser", "updateTime", "updateUser")
_HEADER = """\
# Recorded by `dpa-mock proxy --record` from a deployment's answers (interfaces 2, 3 and 6).
# Plans only: put an apps file beside it (the bundled fixtures/apps.yaml works as-is), then
#   dpa-mock check-fixtures DIR && dpa-mock serve --fixtures DIR
# Each plan is visible to the users whose traffic was recorded (visibleTo; absent = everyone).
# Workflows never queried through interface 3 are placeholders (stepNums of them); a workflow whose
# api/shell outputs were never seen (interface 6) has one placeholder `script` node. Recorded node
# results are literal text, except the run's own instance id, which is written ${planInstanceId}.
# Re-recording into this directory merges: plans are updated in place, users added.
"""


class RecordingError(Exception):
    """The recording directory holds a file the recorder cannot merge with."""


def token_subject(authorization: str) -> str | None:
    """The `sub` claim of a bearer JWT, read without verifying it (the deployment verified it)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    sub = (jwt_claims(token.strip()) or {}).get("sub")
    return str(sub) if isinstance(sub, (str, int)) and str(sub) else None


class Recorder:
    """Accumulates plans, workflows and outputs; writes the fixture file after each change."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / FILE_NAME
        self._lock = threading.Lock()
        self._plans: dict[str, dict[str, Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        # planInstanceId -> {"plan": id, "status": s}; bounded, the oldest runs forgotten first (a run's callbacks
        # and outputs come within minutes of its start, a long session executes without end).
        self._runs: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._written = ""
        self._load()

    # -- what the proxy tells it ------------------------------------------------------------------
    def plans_listed(self, data: list[dict[str, Any]], user: str | None) -> None:
        with self._lock:
            for item in data:
                plan = self._plan(item["processPlanId"], user)
                for key in _PLAN_FIELDS:
                    if key in item:
                        plan[key] = item[key]
                meta = self._meta[plan["processPlanId"]]
                if not meta["workflows"]:
                    meta["steps"] = max(1, int(item.get("stepNums") or 1))
            self._write()

    def models(self, plan_id: str, data: list[dict[str, Any]], user: str | None) -> None:
        with self._lock:
            plan = self._plan(plan_id, user)
            meta = self._meta[plan_id]
            known = {w["processModelId"]: w for w in plan.get("workflows", [])}
            workflows = []
            for model in data:
                old = known.get(model["processModelId"], {})
                workflows.append(
                    {
                        "processModelId": model["processModelId"],
                        "modelName": model["modelName"],
                        "mapParam": [{"name": p["name"], "type": p["type"]} for p in model["mapParam"]],
                        "nodes": old.get("nodes") or _placeholder_nodes(),
                    }
                )
            if workflows:
                plan["workflows"] = workflows
                meta["workflows"] = True
            self._write()

    def executed(self, plan_id: str, instance_id: str) -> None:
        with self._lock:
            self._run(instance_id)["plan"] = plan_id

    def status(self, instance_id: str, status: str) -> None:
        with self._lock:
            run = self._run(instance_id)
            run["status"] = status
            plan_id = run.get("plan")
            meta = self._meta.get(plan_id or "")
            if meta and meta.get("outputsFrom") == instance_id:
                self._apply_outputs(plan_id or "")
                self._write()

    def outputs(self, plan_id: str, instance_id: str, data: list[dict[str, Any]], user: str | None) -> None:
        with self._lock:
            self._run(instance_id)["plan"] = plan_id
            plan = self._plan(plan_id, user)
            meta = self._meta[plan_id]
            size = sum(len(w["mapParam"]) for w in data)
            # Outputs only grow while a run goes on: keep the fullest answer seen, the latest among equals.
            if meta.get("outputsFrom") not in (None, instance_id) and size < meta.get("outputsSize", 0):
                return
            meta.update(
                outputsFrom=instance_id,
                outputsSize=size,
                outputs=[
                    {
                        "processModelId": w["processModelId"],
                        "modelName": w["modelName"],
                        "nodes": [{"nodeName": p["nodeName"], "result": p["result"]} for p in w["mapParam"]],
                    }
                    for w in data
                ],
            )
            if not meta["workflows"] and data:
                plan["workflows"] = [
                    {
                        "processModelId": w["processModelId"],
                        "modelName": w["modelName"],
                        "mapParam": [],
                        "nodes": _placeholder_nodes(),
                    }
                    for w in data
                ]
            self._apply_outputs(plan_id)
            self._write()

    # -- state ------------------------------------------------------------------------------------
    def _run(self, instance_id: str) -> dict[str, Any]:
        run = self._runs.setdefault(instance_id, {})
        self._runs.move_to_end(instance_id)
        while len(self._runs) > MAX_RUNS:
            self._runs.popitem(last=False)
        return run

    def _plan(self, plan_id: str, user: str | None) -> dict[str, Any]:
        plan = self._plans.get(plan_id)
        if plan is None:
            plan = self._plans[plan_id] = {"processPlanId": plan_id, "title": plan_id}
            self._meta[plan_id] = {"workflows": False, "steps": 1, "users": set(), "everyone": False}
        meta = self._meta[plan_id]
        if user is None:
            meta["everyone"] = True
        else:
            meta["users"].add(user)
        return plan

    def _apply_outputs(self, plan_id: str) -> None:
        meta = self._meta[plan_id]
        instance = meta.get("outputsFrom")
        failed = self._runs.get(instance or "", {}).get("status") == "FAIL" or meta.get("failed", False)
        meta["failed"] = failed
        by_model = {o["processModelId"]: o for o in meta.get("outputs", [])}
        workflows = self._plans[plan_id].get("workflows", [])
        last = max(
            (i for i, w in enumerate(workflows) if by_model.get(w["processModelId"], {}).get("nodes")), default=None
        )
        for i, workflow in enumerate(workflows):
            seen = by_model.get(workflow["processModelId"], {}).get("nodes")
            if not seen:
                continue
            nodes = [
                {
                    "nodeName": n["nodeName"],
                    "nodeType": "api",
                    "duration": NODE_DURATION,
                    "result": n["result"].replace(instance, "${planInstanceId}") if instance else n["result"],
                }
                for n in seen
            ]
            if failed and i == last:
                nodes[-1]["outcome"] = "fail"  # a failed run's last reported node is the one that failed (D26)
            workflow["nodes"] = nodes

    def _document(self) -> dict[str, Any]:
        plans = []
        for plan_id, plan in self._plans.items():
            meta = self._meta[plan_id]
            out = dict(plan)
            if not meta["workflows"] and not plan.get("workflows"):
                out["workflows"] = [
                    {
                        "processModelId": f"{plan_id}~step{i + 1}",
                        "modelName": f"(step {i + 1}, not recorded)",
                        "mapParam": [],
                        "nodes": _placeholder_nodes(),
                    }
                    for i in range(meta["steps"])
                ]
            if meta["everyone"]:
                out.pop("visibleTo", None)
            else:
                out["visibleTo"] = sorted(meta["users"])
            plans.append(out)
        recording = {
            pid: {
                "workflowsRecorded": m["workflows"],
                "steps": m["steps"],
                "everyone": m["everyone"],
                "outputsFrom": m.get("outputsFrom"),
                "outputsSize": m.get("outputsSize", 0),
                "failed": m.get("failed", False),
                "outputs": m.get("outputs", []),
            }
            for pid, m in self._meta.items()
        }
        # `_`-keys are ignored by the fixture loader: the recorder's own bookkeeping, for merging later.
        return {"plans": plans, "_recording": recording}

    def _write(self) -> None:
        text = _HEADER + yaml.safe_dump(self._document(), allow_unicode=True, sort_keys=False, width=120)
        if text == self._written:
            return  # the same answer again (a service polling its plan list): nothing to write
        self._written = text
        tmp = self.path.with_name(f".{FILE_NAME}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            self._read(yaml.safe_load(self.path.read_text(encoding="utf-8")) or {})
        except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordingError(
                f"{self.path}: cannot merge with this recording ({type(exc).__name__}: {exc}); "
                "move it away or record into another directory"
            ) from None

    def _read(self, doc: dict[str, Any]) -> None:
        recording = doc.get("_recording") or {}
        for plan in doc.get("plans") or []:
            plan_id = plan["processPlanId"]
            meta = recording.get(plan_id, {})
            self._meta[plan_id] = {
                "workflows": bool(meta.get("workflowsRecorded", True)),
                "steps": int(meta.get("steps", 1)),
                "everyone": bool(meta.get("everyone")),
                "users": set(map(str, plan.get("visibleTo") or [])),
                "outputsFrom": meta.get("outputsFrom"),
                "outputsSize": meta.get("outputsSize", 0),
                "failed": bool(meta.get("failed")),
                "outputs": meta.get("outputs") or [],
            }
            if not self._meta[plan_id]["workflows"]:
                plan.pop("workflows", None)
            plan.pop("visibleTo", None)
            self._plans[plan_id] = plan


def _placeholder_nodes() -> list[dict[str, Any]]:
    return [{"nodeName": "(no api/shell output recorded)", "nodeType": "script", "duration": NODE_DURATION}]
