"""`Api`: the kit's raw requests to the seven operations, plus what tests need (plans, a run, valid requests)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests

from contract_tests.plugins.auth import KitAuth
from contract_tests.plugins.clock import KitClock
from contract_tests.plugins.safety import policy
from contract_tests.plugins.target import Target
from contract_tests.support.envelope import expect_success
from contract_tests.support.kit import KIT
from dpa_client import PATHS

# A callback URL nobody listens on (discard port): used where a request needs one but the test reads none.
DUMMY_CALLBACK = "http://127.0.0.1:9/kit-unused-callback"


@dataclass(frozen=True)
class Op:
    id: str
    interface: int
    method: str
    path: str
    secured: bool
    write: str | None = None  # execute | scene

    def url_path(self, plan_id: str | None = None) -> str:
        return self.path.format(processPlanId=quote(plan_id or "", safe=""))


OPS: dict[str, Op] = {
    "authorize": Op("authorize", 1, "GET", PATHS["authorize"], secured=False),
    "getToken": Op("getToken", 1, "POST", PATHS["getToken"], secured=False),
    "listPlans": Op("listPlans", 2, "GET", PATHS["listPlans"], secured=True),
    "queryModelByPlanId": Op("queryModelByPlanId", 3, "POST", PATHS["queryModelByPlanId"], secured=True),
    "saveTimingParam": Op("saveTimingParam", 4, "POST", PATHS["saveTimingParam"], secured=True, write="scene"),
    "executePlan": Op("executePlan", 5, "POST", PATHS["executePlan"], secured=True, write="execute"),
    "queryPlanRunOutParam": Op("queryPlanRunOutParam", 6, "GET", PATHS["queryPlanRunOutParam"], secured=True),
}
PROTECTED = [op for op in OPS.values() if op.secured]


def op_params(ops: list[Op] | None = None) -> list[Any]:
    """pytest.param per operation, id = operationId, marked with its interface number."""
    return [pytest.param(op, id=op.id, marks=pytest.mark.interface(op.interface)) for op in (ops or OPS.values())]


@dataclass
class Req:
    """One request, ready to send: method, path and requests keyword arguments."""

    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class Api:
    def __init__(self, target: Target, auth: KitAuth) -> None:
        self.target, self.auth = target, auth
        self._plans: list[dict[str, Any]] | None = None
        self._instance: tuple[str, str] | None = None

    # -- sending ---------------------------------------------------------------------------------------
    def send(self, method: str, path: str, *, token: str | bool | None = True, **kwargs: Any) -> requests.Response:
        """token=True: the kit's token; a string: that Authorization value verbatim; None/False: no header."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token is True:
            headers.update(self.auth.headers())
        elif isinstance(token, str):
            headers["Authorization"] = token
        kwargs.setdefault("timeout", 30)
        return self.target.session.request(method, self.target.base_url + path, headers=headers, **kwargs)

    def send_req(self, req: Req, token: str | bool | None = True) -> requests.Response:
        return self.send(req.method, req.path, token=token, **req.kwargs)

    # -- the operations ----------------------------------------------------------------------------------
    def list_plans(self, **kw: Any) -> requests.Response:
        return self.send("GET", PATHS["listPlans"], **kw)

    def models(self, plan_id: Any, **kw: Any) -> requests.Response:
        return self.send("POST", PATHS["queryModelByPlanId"], json={"processPlanId": plan_id}, **kw)

    def execute(self, plan_id: str, body: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
        body = {"processPlanId": plan_id} if body is None else body
        return self.send("POST", OPS["executePlan"].url_path(plan_id), json=body, **kw)

    def out_params(self, plan_id: str, instance_id: str, **kw: Any) -> requests.Response:
        return self.send(
            "GET", PATHS["queryPlanRunOutParam"], params={"processPlanId": plan_id, "planInstanceId": instance_id}, **kw
        )

    def save_scene(self, form: dict[str, Any], **kw: Any) -> requests.Response:
        return self.send("POST", PATHS["saveTimingParam"], data=form, **kw)

    # -- what tests build on ------------------------------------------------------------------------------
    def plans(self) -> list[dict[str, Any]]:
        """The user's plans (asserting a success envelope once per session)."""
        if self._plans is None:
            data = expect_success(self.list_plans(), "listPlans")
            assert isinstance(data, list), f"listPlans: data is {type(data).__name__}, not a list"
            self._plans = [p for p in data if isinstance(p, dict)]
        return self._plans

    def plan_ids(self) -> list[str]:
        return [p["processPlanId"] for p in self.plans() if isinstance(p.get("processPlanId"), str)]

    def writable_plans(self) -> list[str]:
        """Plans the kit may execute: the --plan-id plans, or (in-process) every plan the user sees."""
        configured = policy().plan_ids
        return list(configured) if configured is not None else self.plan_ids()

    def first_writable_plan(self) -> str:
        reason = policy().can_execute()
        if reason:
            pytest.skip(reason)
        plans = self.writable_plans()
        if not plans:
            pytest.skip("no plan to execute")
        # The document's example plan first: on the emulator it succeeds quickly and has outputs.
        return "acf42dd3" if "acf42dd3" in plans else plans[0]

    def inputs_for(self, plan_id: str, tag: str = "kit") -> list[dict[str, Any]]:
        """modelVarReq giving every input interface 3 lists a value (`{tag}-{name}`), so plans with required
        inputs can run (and two runs can be told apart by their inputs)."""
        data = expect_success(self.models(plan_id), f"queryModelByPlanId {plan_id}")
        reqs = []
        for model in data if isinstance(data, list) else []:
            names = [p.get("name") for p in model.get("mapParam") or [] if isinstance(p, dict)]
            if names:
                reqs.append(
                    {"modelId": model.get("processModelId"), "mapParam": {str(n): f"{tag}-{n}".lower() for n in names}}
                )
        return reqs

    def start(self, plan_id: str, callback_url: str | None = None, inputs: bool = True, tag: str = "kit") -> str:
        """Execute a plan (skipping if the options forbid it); return the planInstanceId."""
        reason = policy().can_execute(plan_id)
        if reason:
            pytest.skip(reason)
        body: dict[str, Any] = {"processPlanId": plan_id}
        if callback_url:
            body["callbackUrl"] = callback_url
        if inputs:
            var_req = self.inputs_for(plan_id, tag)
            if var_req:
                body["modelVarReq"] = var_req
        data = expect_success(self.execute(plan_id, body), f"executePlan {plan_id}")
        assert isinstance(data, list) and data and isinstance(data[0], dict), (
            f"executePlan {plan_id}: data is not a non-empty list of executions: {data!r}"
        )
        instance = data[0].get("planInstanceId")
        assert isinstance(instance, str) and instance, f"executePlan {plan_id}: no planInstanceId in {data[0]!r}"
        return instance

    def sample_instance(self) -> tuple[str, str]:
        """(plan, instance) of one finished run the kit started this session (see `await_finished`); skips
        when executions are not allowed."""
        if self._instance is None:
            plan = self.first_writable_plan()
            instance = self.start(plan)
            self.await_finished(plan, instance)
            self._instance = (plan, instance)
        return self._instance

    def out_params_code(self, plan_id: str, instance_id: str) -> Any:
        """The envelope code of queryPlanRunOutParam (None when the answer is no envelope)."""
        try:
            body = self.out_params(plan_id, instance_id).json()
        except ValueError:
            return None
        return body.get("code") if isinstance(body, dict) else None

    def await_finished(self, plan_id: str, instance_id: str) -> None:
        """Wait until the run finished, for checks that a request the document promises to accept is accepted:
        interface 6 never says an unfinished run can be queried, and a target may refuse it with code 999
        (observed as `out-params.unfinished-run`). Under /__admin time is driven until SUCCESS/FAIL; in real
        time out-params is polled until it is no longer 999 (inconclusive, skipped, after --wait-seconds)."""
        clock = KitClock(self.target)
        if clock.controlled:
            clock.finish(instance_id)
            return

        def probe() -> Any:
            code = self.out_params_code(plan_id, instance_id)
            if code == 999:
                KIT.observe("out-params.unfinished-run", "999")
            return code

        clock.poll(
            probe,
            lambda code: code != 999,
            step=1.0,
            pending=lambda code: f"queryPlanRunOutParam of run {instance_id} still refused with code 999",
        )

    def valid_request(self, op: Op) -> Req:
        """A request the document says must succeed (skips when the options forbid sending it)."""
        if op.id == "authorize":
            cfg = self.auth.cfg
            return Req(
                "GET", op.path, {"params": {"client_id": cfg.client_id, "response_type": "code", "scope": cfg.scope}}
            )
        if op.id == "getToken":
            cfg = self.auth.cfg
            body = {
                "code": self.auth.code(),
                "client_id": cfg.client_id,
                "client_secret": cfg.client_secret,
                "grant_type": "authorization_code",
            }
            if cfg.user_id is not None:
                body["user_id"] = cfg.user_id
            return Req("POST", op.path, {"json": body})
        if op.id == "listPlans":
            return Req("GET", op.path)
        if op.id == "queryModelByPlanId":
            plans = self.plan_ids()
            if not plans:
                pytest.skip("the user sees no plan")
            return Req("POST", op.path, {"json": {"processPlanId": plans[0]}})
        if op.id == "saveTimingParam":
            plan = self.first_scene_plan()
            return Req("POST", op.path, {"data": self.scene_form(plan)})
        if op.id == "executePlan":
            plan = self.first_writable_plan()
            body: dict[str, Any] = {"processPlanId": plan}
            var_req = self.inputs_for(plan)
            if var_req:
                body["modelVarReq"] = var_req
            return Req("POST", op.url_path(plan), {"json": body})
        if op.id == "queryPlanRunOutParam":
            plan, instance = self.sample_instance()
            return Req("GET", op.path, {"params": {"processPlanId": plan, "planInstanceId": instance}})
        raise AssertionError(op.id)

    def first_scene_plan(self) -> str:
        plan = self.first_writable_plan()
        reason = policy().can_save_scene(plan, "single")
        if reason:
            pytest.skip(reason)
        return plan

    def scene_form(self, plan: str, **changes: Any) -> dict[str, Any]:
        """A valid single-scene form (fires after 1 hour); `changes` override or (value None) drop fields.

        Its callbackUrl is a dead address, not the receiver: a scene firing during a later test must not
        eat that test's scripted receiver answers.
        """
        form: dict[str, Any] = {
            "processPlanId": plan,
            "callbackUrl": DUMMY_CALLBACK,
            "dimension": "hours",
            "intervals": "1",
            "executeStrategy": "single",
            "sceneName": "kit-contract-check",
        }
        var_req = self.inputs_for(plan)
        if var_req:
            form["modelVarReq"] = json.dumps(var_req, ensure_ascii=False)
        form.update(changes)
        return {k: v for k, v in form.items() if v is not None}
