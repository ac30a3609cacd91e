"""Schemathesis glue: `//` kept in URLs, the modelVarReq form serializer, request steering, the kit token provider."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode

import schemathesis
from schemathesis import schemas as st_schemas
from schemathesis.transport.prepare import prepare_path

from contract_tests.plugins.auth import auth
from contract_tests.plugins.safety import WriteBlocked, policy
from contract_tests.plugins.target import target
from contract_tests.schema_checks import PROMISED, REPLACED, checks_for, envelope, scene_would_be_created
from contract_tests.support.kit import KIT
from contract_tests.support.spec import SPEC

__all__ = ["REPLACED", "SEEDING", "checks_for", "envelope", "load_schema", "record", "scene_would_be_created"]


# -- 1. `//` paths: schemathesis joins URLs with urljoin, which drops the empty segment -----------------
def _join(base: str, path: str) -> str:
    # Same quoting dance as schemathesis (quote the path, unquote the whole), but concatenated, not urljoined.
    return unquote(base.rstrip("/").replace("%", "%25") + "/" + quote(path.lstrip("/")))


def _build_request_url(self: Any, case: Any, base_url: str) -> str:
    return _join(base_url, prepare_path(case.path, case.path_parameters))


def _get_full_path(self: Any, path: str) -> str:
    return _join(self.base_path, path)


st_schemas.BaseSchema.build_request_url = _build_request_url  # type: ignore[method-assign]  # the `//` patch, on purpose
st_schemas.BaseSchema.get_full_path = _get_full_path  # type: ignore[method-assign]  # the same patch


# -- 2. form bodies: modelVarReq is one JSON-string field (the spec's `encoding`) -------------------------
@schemathesis.serializer("application/x-www-form-urlencoded")
def form_serializer(ctx: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            if item is None:
                continue
            if isinstance(item, (list, dict)):
                pairs.append((str(key), json.dumps(item, ensure_ascii=False)))
            elif isinstance(item, bool):
                pairs.append((str(key), "true" if item else "false"))
            else:
                pairs.append((str(key), str(item)))
        # Encoded bytes, not pairs: the WSGI test transport (also used by tests/ in the same process)
        # cannot take a list, and both transports send bytes as they are with the case's Content-Type.
        return urlencode(pairs).encode("ascii")
    if value is None or isinstance(value, (str, bytes)):
        return value
    return json.dumps(value).encode("utf-8")


# -- 4. what generated requests look like before they leave --------------------------------------------
class Seeding:
    """Steers some positive cases to real ids and credentials, and keeps writes within the safety options."""

    def __init__(self) -> None:
        seed = KIT.config.seed if KIT.config else 0
        self.random = random.Random(seed)
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.plans: list[str] | None = None
        self.run: tuple[str, str] | None = None
        # Off during state-machine runs: Hypothesis replays a scenario and needs the same requests each time.
        self.enabled = True

    def chance(self) -> bool:
        if not self.enabled:
            return False
        with self.lock:
            return self.random.random() < 0.5

    def visible_plans(self) -> list[str]:
        if self.plans is None:
            try:
                response = target().session.get(
                    target().base_url + "/api/dpa/process/processPlan/queryPlanByUserId",
                    headers={"Authorization": f"Bearer {auth().token()}"},
                    timeout=30,
                )
                data = response.json().get("data") or []
                self.plans = [
                    p["processPlanId"] for p in data if isinstance(p, dict) and isinstance(p.get("processPlanId"), str)
                ]
            except (ValueError, AttributeError, KeyError):
                self.plans = []
        return self.plans

    def instance(self) -> tuple[str, str] | None:
        """(plan, planInstanceId) of one run started for seeding, or None when executions are not allowed."""
        if self.run is None:
            plans = list(policy().plan_ids) if policy().plan_ids is not None else self.visible_plans()
            plan = "acf42dd3" if "acf42dd3" in plans else (plans[0] if plans else None)
            if plan is None or policy().can_execute(plan):
                return None
            path = f"/api/dpa/process//processPlan/opExecutePlanByApi/{quote(plan, safe='')}"
            try:
                response = target().session.post(
                    target().base_url + path,
                    json={"processPlanId": plan},
                    headers={"Authorization": f"Bearer {auth().token()}"},
                    timeout=30,
                )
                self.run = (plan, response.json()["data"][0]["planInstanceId"])
            except (WriteBlocked, ValueError, KeyError, IndexError, TypeError):
                return None
        return self.run

    def pick(self, items: list[str]) -> str | None:
        with self.lock:
            return self.random.choice(items) if items else None


SEEDING = Seeding()


_KIT_SCHEMAS: set[int] = set()
# Headers that frame the HTTP message rather than carry API data: a generated value there (a made-up
# Transfer-Encoding) tests the HTTP server in front, which may refuse the message with an empty 400 before any
# API sees it (RFC 9112), so generated cases never send them.
FRAMING_HEADERS = frozenset(
    {"transfer-encoding", "content-length", "connection", "host", "te", "trailer", "upgrade", "keep-alive", "expect"}
)


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    # schemathesis only dispatches before_call globally: act on the kit's own schemas, nothing else.
    if id(case.operation.schema.raw_schema) not in _KIT_SCHEMAS:  # schemathesis clones the schema object
        return
    op_id = case.operation.definition.raw.get("operationId")
    for name in [n for n in (case.headers or {}) if n.lower() in FRAMING_HEADERS]:
        del case.headers[name]
    headers = case.headers or {}
    if "Authorization" in headers:
        # Cases may be built (auth included) well before they are sent; the clock may have moved since.
        headers["Authorization"] = auth().current(headers["Authorization"])
    positive = case.meta is None or not case.meta.generation.mode.is_negative
    cfg = auth().cfg
    restricted = policy().plan_ids
    body = case.body if isinstance(case.body, dict) else None
    if op_id == "executePlan":
        allowed = list(restricted) if restricted is not None else SEEDING.visible_plans()
        plan = case.path_parameters.get("processPlanId")
        if (restricted is not None and plan not in restricted) or (positive and SEEDING.chance()):
            case.path_parameters["processPlanId"] = plan = SEEDING.pick(allowed) or plan
        if body is not None and (
            (restricted is not None and body.get("processPlanId") not in restricted) or (positive and SEEDING.chance())
        ):
            body["processPlanId"] = plan
            body.pop("modelVarReq", None)  # generated workflow ids never exist; defaults apply
    elif op_id == "saveTimingParam" and body is not None:
        if policy().scene_strategies is not None:
            body["executeStrategy"] = "single"
        if restricted is not None and body.get("processPlanId") not in restricted:
            body["processPlanId"] = SEEDING.pick(list(restricted)) or body.get("processPlanId")
        elif positive and SEEDING.chance():
            body["processPlanId"] = SEEDING.pick(SEEDING.visible_plans()) or body.get("processPlanId")
            body.pop("modelVarReq", None)
    elif not positive:
        return
    elif op_id == "listPlans":
        PROMISED.add(id(case))  # no parameter at all: with the kit's token it must succeed
    elif op_id == "authorize" and SEEDING.chance():
        case.query = {**(case.query or {}), "client_id": cfg.client_id, "scope": cfg.scope}
        PROMISED.add(id(case))
    elif op_id == "getToken" and body is not None and SEEDING.chance():
        body.update(
            code=auth().code(),
            client_id=cfg.client_id,
            client_secret=cfg.client_secret,
            grant_type="authorization_code",
        )
        body.pop("user_id", None)
        if cfg.user_id is not None:
            body["user_id"] = cfg.user_id
        PROMISED.add(id(case))
    elif op_id == "queryModelByPlanId" and body is not None and SEEDING.chance():
        plan = SEEDING.pick(SEEDING.visible_plans())
        if plan is not None:
            body["processPlanId"] = plan
            PROMISED.add(id(case))
    elif op_id == "queryPlanRunOutParam" and SEEDING.chance():
        run = SEEDING.instance()
        if run is not None:
            case.query = {**(case.query or {}), "processPlanId": run[0], "planInstanceId": run[1]}
            PROMISED.add(id(case))


# -- 5. the schema, configured before any operation is touched -------------------------------------------
class KitTokenProvider:
    """The kit's own (cached, re-issued after expiry) token; schemathesis keeps its negative-auth cases."""

    def get(self, case: Any, ctx: Any) -> str:
        return auth().token()

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


CODES: dict[str, Counter[Any]] = defaultdict(Counter)


def record(op_id: str, response: Any) -> None:
    """Count envelope codes per operation: a green run where everything was rejected proves little."""
    body = envelope(response) if hasattr(response, "content") else None
    CODES[op_id][body.get("code") if body else None] += 1


def load_schema() -> Any:
    # An explicit config: a schemathesis.toml in the run's directory must not change the kit.
    schema = schemathesis.openapi.from_path(str(SPEC), config=schemathesis.Config())
    schema.config.update(base_url=target().base_url)  # before touching any operation
    schema.auth(refresh_interval=None).skip_for(path_regex=r"/oauth/")(KitTokenProvider)
    _KIT_SCHEMAS.add(id(schema.raw_schema))
    return schema
