"""The example integrator service: remediates orders by running a DPA plan and records its status callbacks."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from dpa_client import DpaClient, DpaError, ModelVarReq

log = logging.getLogger("integrator_service")
TERMINAL = frozenset({"SUCCESS", "FAIL"})
DEFAULTS = {
    "DPA_BASE_URL": "http://127.0.0.1:29041",
    "DPA_CLIENT_ID": "JhYhK/XcFKuVlpVijwLCkw==",  # dpa-mock's demo app poc_client
    "DPA_CLIENT_SECRET": "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU=",
    "DPA_PLAN_ID": "acf42dd3",
    "PUBLIC_URL": "http://127.0.0.1:8000",  # how the platform reaches this service for callbacks
}


@dataclass
class Order:
    order_id: str
    plan_id: str
    instance_id: str | None = None  # the latest run's planInstanceId
    scene_id: str | None = None
    status: str | None = None  # the latest run's latest status
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "processPlanId": self.plan_id,
            "planInstanceId": self.instance_id,
            "sceneId": self.scene_id,
            "status": self.status,
            "history": self.history,
        }


class Store:
    """Orders in memory; a real service keeps this in its database, with the same rules."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.last_status: dict[str, str] = {}  # planInstanceId -> last status recorded
        self.lock = threading.Lock()

    def record(self, order_id: str, instance_id: str, plan_id: str, status: str) -> bool:
        """Record one callback; False when it is a repeat that changes nothing."""
        with self.lock:
            last = self.last_status.get(instance_id)
            # The platform sends one instance's callbacks in order and repeats one only while it is not
            # acknowledged, so a repeat always equals the last status we hold. (planInstanceId, status) alone
            # is not the key: RUNNING legitimately comes twice when a PENDING run is resumed.
            if last == status or last in TERMINAL:
                return False
            order = self.orders.setdefault(order_id, Order(order_id, plan_id))
            self.last_status[instance_id] = status
            if order.instance_id != instance_id:
                order.instance_id = instance_id  # a run fired by a timing scene announces itself here
            order.status = status
            order.history.append({"planInstanceId": instance_id, "status": status, "receivedAt": time.time()})
            return True


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update({key: os.environ.get(key, value) for key, value in DEFAULTS.items()})
    app.config.update(config or {})
    store = Store()
    session = requests.Session()
    session.trust_env = False  # the platform is reached directly, never through an environment proxy
    # One client for the service: it keeps the token and logs in again once when the platform answers 403.
    platform = DpaClient(
        app.config["DPA_BASE_URL"], app.config["DPA_CLIENT_ID"], app.config["DPA_CLIENT_SECRET"], session=session
    )
    app.extensions["store"], app.extensions["platform"] = store, platform

    def callback_url(order_id: str) -> str:
        # The order id travels in the callback URL: a scheduled run's planInstanceId is unknown until its first
        # callback, and even a manual run's DEFAULT callback can arrive before execute has answered us.
        return f"{app.config['PUBLIC_URL'].rstrip('/')}/dpa/callback?orderId={order_id}"

    def inputs(body: dict[str, Any]) -> list[ModelVarReq] | None:
        params = body.get("params")
        return [ModelVarReq(dict(params))] if isinstance(params, dict) and params else None

    def platform_error(exc: Exception) -> tuple[Response, int]:
        if isinstance(exc, DpaError):
            return jsonify(error=exc.message, platformCode=exc.code), 502
        return jsonify(error=f"platform unreachable: {exc}", platformCode=None), 502

    @app.post("/orders/<order_id>/remediate")
    def remediate(order_id: str) -> Any:
        body = request.get_json(silent=True) or {}
        plan_id = str(body.get("planId") or app.config["DPA_PLAN_ID"])
        try:
            [execution] = platform.execute(plan_id, callback_url(order_id), inputs(body))
        except (DpaError, requests.RequestException) as exc:
            return platform_error(exc)
        instance_id = execution.plan_instance_id
        with store.lock:
            order = store.orders.setdefault(order_id, Order(order_id, plan_id))
            order.plan_id, order.instance_id = plan_id, instance_id
        return jsonify(orderId=order_id, processPlanId=plan_id, planInstanceId=instance_id), 202

    @app.post("/orders/<order_id>/schedule")
    def schedule(order_id: str) -> Any:
        body = request.get_json(silent=True) or {}
        plan_id = str(body.get("planId") or app.config["DPA_PLAN_ID"])
        after = body.get("afterSeconds", 60)
        if not isinstance(after, int) or isinstance(after, bool) or after <= 0:
            return jsonify(error="afterSeconds: a positive whole number of seconds"), 400
        try:
            # Interface 4 is form-encoded; the client sends it so. "single": fire once, `after` seconds from now.
            scene = platform.save_timing_param(
                plan_id, callback_url(order_id), "seconds", after, "single", f"order {order_id}", inputs(body)
            )
        except (DpaError, requests.RequestException) as exc:
            return platform_error(exc)
        scene_id = scene.instance_id
        with store.lock:
            order = store.orders.setdefault(order_id, Order(order_id, plan_id))
            order.plan_id, order.scene_id = plan_id, scene_id
        return jsonify(orderId=order_id, processPlanId=plan_id, sceneId=scene_id), 202

    @app.post("/dpa/callback")
    def dpa_callback() -> Response:
        payload = request.get_json(silent=True)
        order_id = request.args.get("orderId", "")
        if (
            isinstance(payload, dict)
            and order_id
            and isinstance(payload.get("planInstanceId"), str)
            and isinstance(payload.get("status"), str)
        ):
            new = store.record(
                order_id, payload["planInstanceId"], str(payload.get("processPlanId", "")), payload["status"]
            )
            log.info(
                "callback %s %s for order %s%s",
                payload["planInstanceId"],
                payload["status"],
                order_id,
                "" if new else " (repeat, ignored)",
            )
        else:
            # Acknowledge anyway: a malformed callback would come back identical three more times.
            log.warning("unusable callback for order %r: %r", order_id, request.get_data()[:200])
        # Always the plain body SUCCESS: anything else makes the platform retry.
        return Response("SUCCESS", mimetype="text/plain")

    @app.get("/orders/<order_id>")
    def show(order_id: str) -> Any:
        with store.lock:
            order = store.orders.get(order_id)
            if order is None:
                return jsonify(error=f"no order {order_id}"), 404
            return jsonify(order.to_dict())

    @app.get("/orders/<order_id>/output")
    def output(order_id: str) -> Any:
        with store.lock:
            order = store.orders.get(order_id)
        if order is None or order.instance_id is None:
            return jsonify(error=f"order {order_id} has no run yet"), 404
        try:
            outputs = platform.out_params(order.plan_id, order.instance_id)
        except (DpaError, requests.RequestException) as exc:
            return platform_error(exc)
        return jsonify(
            [{"modelName": m.model_name, "outputs": {p.node_name: p.result for p in m.params}} for m in outputs]
        )

    return app


if __name__ == "__main__":  # pragma: no cover - manual run: python -m integrator_service.app
    from waitress import serve

    logging.basicConfig(level=logging.INFO)
    serve(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
