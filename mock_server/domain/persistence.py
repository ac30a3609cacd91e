"""Records (plain dicts) of runs, scenes and deliveries for a durable store, and back again."""

from __future__ import annotations

import dataclasses
from typing import Any

from mock_server.domain.callbacks import Attempt, Delivery
from mock_server.domain.catalog import Catalog
from mock_server.domain.runs import NodeProgress, Run
from mock_server.domain.scenes import Scene


def run_record(run: Run) -> dict[str, Any]:
    return {
        "instance_id": run.instance_id, "plan_id": run.plan.id, "user_id": run.user_id, "client_id": run.client_id,
        "callback_url": run.callback_url, "inputs": run.inputs, "created_at": run.created_at,
        "scene_id": run.scene_id, "status": run.status, "updated_at": run.updated_at,
        "history": run.history, "cursor": run.cursor,
        "nodes": [[p.state, p.result, p.started_at, p.finished_at] for p in run.nodes],
    }


def run_from(record: dict[str, Any], catalog: Catalog) -> Run | None:
    plan = catalog.plans.get(record["plan_id"])
    if plan is None:
        return None  # the plan left the fixtures since: its runs cannot be shown or continued
    run = Run(record["instance_id"], plan, record["user_id"], record["client_id"], record["callback_url"],
              record["inputs"], record["created_at"], record["scene_id"], record["status"], record["updated_at"],
              [(s, t) for s, t in record["history"]], cursor=record["cursor"])
    run.nodes = [NodeProgress(wf, node) for wf in plan.workflows for node in wf.nodes]
    if len(run.nodes) != len(record["nodes"]):
        return None  # the plan's nodes changed since
    for progress, (state, result, started, finished) in zip(run.nodes, record["nodes"]):
        progress.state, progress.result, progress.started_at, progress.finished_at = state, result, started, finished
    return run


def update_run(run: Run, record: dict[str, Any]) -> bool:
    """Bring a run in memory up to its record (written by another process); False if they no longer fit."""
    if len(run.nodes) != len(record["nodes"]):
        return False
    run.status, run.updated_at, run.cursor = record["status"], record["updated_at"], record["cursor"]
    run.history = [(s, t) for s, t in record["history"]]
    for progress, (state, result, started, finished) in zip(run.nodes, record["nodes"]):
        progress.state, progress.result, progress.started_at, progress.finished_at = state, result, started, finished
    return True


def update_scene(scene: Scene, record: dict[str, Any]) -> None:
    for name, value in record.items():
        setattr(scene, name, value)


def scene_record(scene: Scene) -> dict[str, Any]:
    return dataclasses.asdict(scene)


def scene_from(record: dict[str, Any]) -> Scene:
    return Scene(**record)


def delivery_record(delivery: Delivery) -> dict[str, Any]:
    return {"id": delivery.id, "instance_id": delivery.instance_id, "plan_id": delivery.plan_id,
            "status": delivery.status, "url": delivery.url, "created_at": delivery.created_at,
            "state": delivery.state, "attempts": [dataclasses.asdict(a) for a in delivery.attempts]}


def delivery_from(record: dict[str, Any]) -> Delivery:
    attempts = [Attempt(**a) for a in record.pop("attempts")]
    return Delivery(**record, attempts=attempts)
