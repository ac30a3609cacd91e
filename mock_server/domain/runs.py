"""Interfaces 5 and 6: plan instances walking the transitions table, node by node, on emulator time."""

from __future__ import annotations

import collections
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mock_server.domain.catalog import Catalog, Node, Plan, Workflow
from mock_server.domain.clock import to_ms
from mock_server.domain.errors import IllegalTransition, ValidationError
from mock_server.domain.ids import IdGenerator

DEFAULT, RUNNING, PENDING, SUCCESS, FAIL = "DEFAULT", "RUNNING", "PENDING", "SUCCESS", "FAIL"
STATUSES = (DEFAULT, RUNNING, PENDING, SUCCESS, FAIL)
TERMINAL = frozenset({SUCCESS, FAIL})
# The only moves an instance can make; everything else raises IllegalTransition.
TRANSITIONS: dict[str, frozenset[str]] = {
    DEFAULT: frozenset({RUNNING}),
    RUNNING: frozenset({PENDING, SUCCESS, FAIL}),
    PENDING: frozenset({RUNNING}),
    SUCCESS: frozenset(),
    FAIL: frozenset(),
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


@dataclass(slots=True)
class NodeProgress:
    workflow: Workflow
    node: Node
    state: str = "waiting"  # waiting | running | pending | success | fail
    result: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "modelId": self.workflow.model_id,
            "modelName": self.workflow.name,
            "nodeName": self.node.name,
            "nodeType": self.node.type,
            "state": self.state,
            "result": self.result,
            "startedAt": None if self.started_at is None else to_ms(self.started_at),
            "finishedAt": None if self.finished_at is None else to_ms(self.finished_at),
        }


@dataclass(slots=True)
class Run:
    instance_id: str
    plan: Plan
    user_id: str
    client_id: str
    callback_url: str | None
    inputs: dict[str, dict[str, str]]  # model id -> parameter values
    created_at: float
    scene_id: str | None = None
    status: str = DEFAULT
    updated_at: float = 0.0
    history: list[tuple[str, float]] = field(default_factory=list)
    nodes: list[NodeProgress] = field(default_factory=list)
    cursor: int = 0

    def move(self, to: str, at: float) -> None:
        if to not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self.instance_id}: {self.status} -> {to} is not in the transitions table")
        self.status, self.updated_at = to, at
        self.history.append((to, at))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def variables(self, workflow: Workflow) -> dict[str, str]:
        return {
            **self.inputs.get(workflow.model_id, {}),
            "planInstanceId": self.instance_id,
            "processPlanId": self.plan.id,
        }

    def out_params(self) -> list[dict[str, Any]]:
        """Interface 6: per workflow, the output of the api/shell nodes that have finished so far."""
        out = []
        for wf in self.plan.workflows:
            done = [
                {"result": p.result or "", "nodeName": p.node.name}
                for p in self.nodes
                if p.workflow is wf and p.node.reports_output and p.state in ("success", "fail")
            ]
            out.append({"modelName": wf.name, "processModelId": wf.model_id, "mapParam": done})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "planInstanceId": self.instance_id,
            "processPlanId": self.plan.id,
            "status": self.status,
            "createTime": to_ms(self.created_at),
            "updateTime": to_ms(self.updated_at),
            "callbackUrl": self.callback_url,
            "sceneId": self.scene_id,
            "userId": self.user_id,
            "inputs": self.inputs,
            "history": [{"status": s, "at": to_ms(t)} for s, t in self.history],
            "nodes": [n.to_dict() for n in self.nodes],
        }


def run_record(run: Run) -> dict[str, Any]:
    """A run as a store keeps it (a plain dict; the plan by id)."""
    return {
        "instance_id": run.instance_id,
        "plan_id": run.plan.id,
        "user_id": run.user_id,
        "client_id": run.client_id,
        "callback_url": run.callback_url,
        "inputs": run.inputs,
        "created_at": run.created_at,
        "scene_id": run.scene_id,
        "status": run.status,
        "updated_at": run.updated_at,
        "history": run.history,
        "cursor": run.cursor,
        "nodes": [[p.state, p.result, p.started_at, p.finished_at] for p in run.nodes],
    }


def run_from(record: dict[str, Any], catalog: Catalog) -> Run | None:
    plan = catalog.plans.get(record["plan_id"])
    if plan is None or sum(len(w.nodes) for w in plan.workflows) != len(record["nodes"]):
        # The plan left the fixtures since, or its nodes changed: the run is still shown, frozen (schedule_next).
        plan = _stand_in(record)
    run = Run(
        record["instance_id"],
        plan,
        record["user_id"],
        record["client_id"],
        record["callback_url"],
        record["inputs"],
        record["created_at"],
        record["scene_id"],
        record["status"],
        record["updated_at"],
        [(s, t) for s, t in record["history"]],
        cursor=record["cursor"],
    )
    run.nodes = [NodeProgress(wf, node) for wf in plan.workflows for node in wf.nodes]
    if not update_run(run, record):
        return None  # the plan's nodes changed since
    return run


def _stand_in(record: dict[str, Any]) -> Plan:
    """A plan as far as a stored run tells (its id and how many nodes it had) when the fixtures lost it."""
    nodes = tuple(Node(f"(node {i + 1})", "unknown", 0.0) for i in range(len(record["nodes"])))
    missing = "(no longer in the fixtures)"
    return Plan(record["plan_id"], missing, DEFAULT, 0, 0, "", 0, "", (Workflow("", missing, (), nodes),))


def update_run(run: Run, record: dict[str, Any]) -> bool:
    """Bring a run in memory up to its record (written by another process); False if they no longer fit."""
    if len(run.nodes) != len(record["nodes"]):
        return False
    run.status, run.updated_at, run.cursor = record["status"], record["updated_at"], record["cursor"]
    run.history = [(s, t) for s, t in record["history"]]
    for progress, (state, result, started, finished) in zip(run.nodes, record["nodes"], strict=True):
        progress.state, progress.result, progress.started_at, progress.finished_at = state, result, started, finished
    return True


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def resolve_inputs(plan: Plan, model_var_req: list[dict[str, Any]] | None) -> dict[str, dict[str, str]]:
    """Defaults from the fixtures, overridden by modelVarReq; a required parameter left empty is a 400."""
    values = {wf.model_id: {p.name: p.default for p in wf.params if p.default is not None} for wf in plan.workflows}
    for i, item in enumerate(model_var_req or []):
        model_id = item.get("modelId")
        if model_id in (None, ""):
            # Without a modelId the values go to every workflow of the plan; each keeps what it declares.
            targets = list(plan.workflows)
        else:
            wf = plan.workflow(str(model_id))
            if wf is None:
                known = ", ".join(w.model_id for w in plan.workflows)
                raise ValidationError(
                    f"modelVarReq[{i}].modelId: {model_id!r} is not a workflow of plan "
                    f"{plan.id!r} (its workflows: {known})"
                )
            targets = [wf]
        for name, value in _pairs(item.get("mapParam"), i):
            for wf in targets:
                # Undeclared names are kept too: they still expand ${NAME} in node results.
                if wf.param(name) is not None or len(targets) == 1:
                    values[wf.model_id][name] = _scalar(value)
    for wf in plan.workflows:
        for p in wf.params:
            if p.required and values[wf.model_id].get(p.name, "") == "":
                raise ValidationError(
                    f"modelVarReq: required parameter {p.name!r} of workflow {wf.model_id!r} ({wf.name}) is missing"
                )
    return values


def _pairs(map_param: Any, i: int) -> list[tuple[str, Any]]:
    if map_param is None:
        return []
    if isinstance(map_param, dict):
        return [(str(k), v) for k, v in map_param.items()]
    if isinstance(map_param, list):
        pairs = []
        for j, entry in enumerate(map_param):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise ValidationError(f"modelVarReq[{i}].mapParam[{j}].name: each entry needs a non-empty name")
            pairs.append((entry["name"], entry.get("value")))
        return pairs
    raise ValidationError(f"modelVarReq[{i}].mapParam: expected an object or a list of {{name, value}}")


def render(template: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), template)


class RunEngine:
    """Creates instances and moves them on scheduled events; `on_status` hears every status an instance enters.

    The component of kind `run`: reset, restored and caught up by the platform's registry.
    """

    kind = "run"

    def __init__(
        self,
        catalog: Catalog,
        ids: IdGenerator,
        schedule: Callable[[float, Callable[[float], Any], str], Any],
        on_status: Callable[[Run, str, float], None],
        *,
        start_delay: float,
        seed: int,
        keep_finished: int,
        on_change: Callable[[Run], None] | None = None,
        on_forget: Callable[[str], None] | None = None,
        id_shape: str = "in-millis",
    ) -> None:
        self._catalog, self._ids, self._id_shape = catalog, ids, id_shape
        self._schedule, self._on_status = schedule, on_status
        # A durable store hears of every change; the in-memory default passes None and pays nothing.
        self._on_change, self._on_forget = on_change, on_forget
        self._start_delay, self._seed = start_delay, seed
        self.runs: dict[str, Run] = {}
        self.latest_by_plan: dict[str, Run] = {}
        # Finished runs, oldest first: beyond `keep_finished` the oldest are forgotten (bounded memory).
        self._finished: collections.deque[str] = collections.deque()
        self._keep_finished = keep_finished

    # -- the component interface ------------------------------------------------------------------
    def reset(self) -> None:
        self.runs.clear()
        self.latest_by_plan.clear()
        self._finished.clear()

    def restore(self, records: dict[str, dict[str, Any]]) -> None:
        self.reset()
        for record in sorted(records.values(), key=lambda r: r["created_at"]):
            run = run_from(record, self._catalog)
            if run is not None:
                self.adopt(run)
                self._ids.bump_past(run.instance_id)

    def apply(self, key: str, record: dict[str, Any] | None) -> None:
        """Bring one run another process changed into this process (scheduling it if this one dispatches)."""
        if record is None:
            self.runs.pop(key, None)  # pruned or reset over there
            return
        run = self.runs.get(key)
        if run is None:
            run = run_from(record, self._catalog)
            if run is None:
                return
        elif not update_run(run, record):
            return
        self._observe(run)
        self.schedule_next(run)  # a no-op unless this process holds the scheduler lease
        self._ids.bump_past(key)

    # -- runs -------------------------------------------------------------------------------------
    def new_run(
        self,
        plan: Plan,
        user_id: str,
        client_id: str,
        callback_url: str | None,
        inputs: dict[str, dict[str, str]],
        at: float,
        scene_id: str | None = None,
    ) -> Run:
        """Start an instance of `plan` at `at`, under a fresh instance id."""
        return self.create(
            self._ids.next(to_ms(at), self._id_shape), plan, user_id, client_id, callback_url, inputs, at, scene_id
        )

    def create(
        self,
        instance_id: str,
        plan: Plan,
        user_id: str,
        client_id: str,
        callback_url: str | None,
        inputs: dict[str, dict[str, str]],
        at: float,
        scene_id: str | None = None,
    ) -> Run:
        run = Run(instance_id, plan, user_id, client_id, callback_url or None, inputs, at, scene_id, updated_at=at)
        run.history.append((DEFAULT, at))
        run.nodes = [NodeProgress(wf, node) for wf in plan.workflows for node in wf.nodes]
        self.runs[instance_id] = run
        self.latest_by_plan[plan.id] = run
        self._on_status(run, DEFAULT, at)
        self.schedule_next(run)
        self._saved(run)
        return run

    def adopt(self, run: Run) -> None:
        """Take back a run restored from a store, and schedule what it was waiting for."""
        self._observe(run)
        if run.terminal:
            self._finished.append(run.instance_id)
        self.schedule_next(run)

    def schedule_next(self, run: Run) -> None:
        """Schedule the event a run waits for, from its recorded times (a restart keeps them)."""
        if self._catalog.plans.get(run.plan.id) is not run.plan:
            return  # a run of a plan that left the fixtures (a stand-in): shown as it was, never moved on
        if run.status == DEFAULT:
            self._schedule(
                run.created_at + self._start_delay, lambda t: self._start(run, t), f"start {run.instance_id}"
            )
        elif run.status == RUNNING:
            progress = run.nodes[run.cursor]
            due = (progress.started_at or run.updated_at) + progress.node.duration
            cursor, started = run.cursor, progress.started_at
            self._schedule(due, lambda t: self._finish_node(run, t, cursor, started), f"node {run.instance_id}")

    def _observe(self, run: Run) -> None:
        """Know a run (restored, or created or moved by another process), keeping the per-plan latest."""
        self.runs[run.instance_id] = run
        latest = self.latest_by_plan.get(run.plan.id)
        if latest is None or latest.created_at <= run.created_at:
            self.latest_by_plan[run.plan.id] = run

    def _saved(self, run: Run) -> None:
        if self._on_change is not None:
            self._on_change(run)

    def _move(self, run: Run, to: str, at: float) -> None:
        run.move(to, at)
        self._on_status(run, to, at)
        if run.terminal:
            self._finished.append(run.instance_id)
            while len(self._finished) > self._keep_finished:
                forgotten = self._finished.popleft()
                self.runs.pop(forgotten, None)
                if self._on_forget is not None:
                    self._on_forget(forgotten)

    def _start(self, run: Run, at: float) -> None:
        if run.status != DEFAULT or self.runs.get(run.instance_id) is not run:
            return  # started already, or forgotten: an event scheduled twice (shared state) does nothing
        self._move(run, RUNNING, at)
        self._begin_node(run, at)
        self._saved(run)

    def _begin_node(self, run: Run, at: float) -> None:
        progress = run.nodes[run.cursor]
        progress.started_at = at
        if progress.node.outcome == "pend":
            progress.state = "pending"
            self._move(run, PENDING, at)
            return
        progress.state = "running"
        self.schedule_next(run)

    def resume(self, run: Run, at: float) -> None:
        if self._catalog.plans.get(run.plan.id) is not run.plan:
            raise ValidationError(
                f"plan {run.plan.id!r} of instance {run.instance_id} is no longer in the fixtures as it was: "
                "the instance cannot go on"
            )
        if run.status != PENDING:
            raise ValidationError(
                f"plan instance {run.instance_id} is {run.status}, only a PENDING instance can be resumed"
            )
        progress = run.nodes[run.cursor]
        progress.state, progress.started_at = "running", at
        self._move(run, RUNNING, at)
        self.schedule_next(run)
        self._saved(run)

    def _succeeds(self, run: Run, node: Node) -> bool:
        if node.outcome == "fail":
            return False
        if node.outcome == "random":
            # Seeded per instance and node, so the same instance id replays the same way.
            return random.Random(f"{self._seed}:{run.instance_id}:{run.cursor}").random() < node.probability
        return True  # succeed, or a pend node after its resume

    def _finish_node(self, run: Run, at: float, cursor: int, started: float | None) -> None:
        if (
            run.status != RUNNING
            or run.cursor != cursor
            or run.nodes[cursor].started_at != started
            or self.runs.get(run.instance_id) is not run
        ):
            return  # the node this event was for has moved on (or was resumed afresh) meanwhile
        try:
            self._step(run, at)
        finally:
            self._saved(run)

    def _step(self, run: Run, at: float) -> None:
        progress = run.nodes[run.cursor]
        ok = self._succeeds(run, progress.node)
        progress.state, progress.finished_at = ("success" if ok else "fail"), at
        progress.result = render(progress.node.result, run.variables(progress.workflow))
        if not ok:
            self._move(run, FAIL, at)
            return
        run.cursor += 1
        if run.cursor == len(run.nodes):
            self._move(run, SUCCESS, at)
        else:
            self._begin_node(run, at)
