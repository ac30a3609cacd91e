"""Safety against live targets: every kit request passes one policy that blocks or counts writes."""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from contract_tests.support.kit import KIT, SentRequest

_EXECUTE = re.compile(r"/api/dpa/process/+processPlan/+opExecutePlanByApi/+([^/?#]*)/*$")
_SCENE = re.compile(r"/api/dpa/process/+processPlan/+saveTimingParam/*$")
_SAFE_METHODS = frozenset({"GET", "POST", "HEAD"})


class WriteBlocked(Exception):
    """The kit refused to send a request its options do not allow (nothing reached the target)."""


def _body_fields(request: requests.PreparedRequest) -> dict[str, list[Any]] | None:
    """The body's top-level fields, each as a list of values; None if the body cannot be read."""
    body = request.body
    if body is None:
        return {}
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    ctype = (request.headers.get("Content-Type") or "").lower()
    if "x-www-form-urlencoded" in ctype:
        return dict(parse_qs(text, keep_blank_values=True))
    if "json" in ctype or not ctype:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            return {}  # not JSON: any server rejects it, nothing runs
        return {k: [v] for k, v in data.items()} if isinstance(data, dict) else {}
    return None


class WritePolicy:
    """What may be sent: executions of allowed plans up to max_runs, single scenes, no reset of a live target."""

    def __init__(
        self,
        *,
        in_process: bool,
        allow_writes: bool,
        plan_ids: tuple[str, ...] | None,
        allow_scenes: bool,
        scene_strategies: tuple[str, ...] | None,
        max_runs: int | None,
        max_scenes: int | None = None,
    ) -> None:
        self.in_process, self.allow_writes, self.plan_ids = in_process, allow_writes, plan_ids
        self.allow_scenes, self.scene_strategies, self.max_runs = allow_scenes, scene_strategies, max_runs
        self.max_scenes = max_scenes
        self.runs_started = 0
        self.scenes_created = 0
        self._lock = threading.Lock()

    def plan_allowed(self, plan_id: Any) -> bool:
        return self.plan_ids is None or plan_id in self.plan_ids

    def can_execute(self, plan_id: str | None = None) -> str | None:
        """Why an execution of `plan_id` would be blocked, or None if allowed."""
        if not self.allow_writes:
            return "executions are disabled against a live target (use --allow-writes and --plan-id)"
        if self.plan_ids is not None and not self.plan_ids:
            return "no plan may be executed: give --plan-id with --allow-writes"
        if plan_id is not None and not self.plan_allowed(plan_id):
            return f"plan {plan_id!r} is not among the --plan-id plans"
        if self.max_runs is not None and self.runs_started >= self.max_runs:
            return f"--max-runs {self.max_runs} reached"
        return None

    def can_save_scene(self, plan_id: str | None = None, strategy: str | None = "single") -> str | None:
        if not self.allow_scenes:
            return "saveTimingParam (interface 4) is disabled against a live target (use --allow-scenes)"
        if self.scene_strategies is not None and strategy not in self.scene_strategies:
            return f"only {'/'.join(self.scene_strategies)} scenes may be created against a live target"
        if self.max_scenes is not None and self.scenes_created >= self.max_scenes:
            return f"--max-scenes {self.max_scenes} reached"
        return self.can_execute(plan_id)  # a scene firing is a run of the plan

    def check(self, request: requests.PreparedRequest) -> str | None:
        """The kind of write this request is ('execute', 'scene'), or None; raises WriteBlocked."""
        method = (request.method or "GET").upper()
        path = urlsplit(request.url or "").path
        if "/__admin/" in path:
            if path.endswith("/__admin/reset") and not self.in_process:
                raise WriteBlocked("/__admin/reset is only used on the in-process emulator")
            return None
        if method not in _SAFE_METHODS and not self.in_process:
            raise WriteBlocked("methods other than GET, POST and HEAD are not sent to a live target")
        if method != "POST":
            return None
        fields = _body_fields(request)
        execute = _EXECUTE.search(path)
        if execute:
            plans = [unquote(execute.group(1))]
            # A body of another media type names no plan a server would read: the path's plan decides.
            plans += [v for v in (fields or {}).get("processPlanId", []) if isinstance(v, str)]
            reason = next((r for r in (self.can_execute(p) for p in plans) if r), None)
            if reason:
                raise WriteBlocked(reason)
            return "execute"
        if _SCENE.search(path):
            if fields is None:
                raise WriteBlocked("saveTimingParam body is not a readable form")
            strategies = fields.get("executeStrategy") or [None]
            plans = fields.get("processPlanId") or [None]
            for strategy in strategies:
                for plan in plans:
                    reason = self.can_save_scene(
                        plan if isinstance(plan, str) else None, strategy if isinstance(strategy, str) else None
                    )
                    if reason:
                        raise WriteBlocked(reason)
            return "scene"
        return None

    def record(self, kind: str, request: requests.PreparedRequest, response: requests.Response) -> None:
        """Count runs the target may have started and log what was created, for the report."""
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        data = body.get("data") if isinstance(body, dict) else None
        rejected = (isinstance(code, int) and code != 200 and code >= 300) or response.status_code >= 400
        if rejected:
            return
        # A success we cannot read is still counted: an unreadable answer must not lift the cap.
        fields = _body_fields(request) or {}
        plan = (fields.get("processPlanId") or [None])[0]
        with self._lock:
            if kind == "execute":
                items = data if isinstance(data, list) and data else [{}]
                for item in items:
                    item = item if isinstance(item, dict) else {}
                    self.runs_started += 1
                    KIT.writes.append(
                        {
                            "kind": "execution",
                            "test": KIT.current_test,
                            "processPlanId": item.get("processPlanId", plan),
                            "planInstanceId": item.get("planInstanceId"),
                        }
                    )
            else:
                data = data if isinstance(data, dict) else {}
                self.runs_started += 1
                self.scenes_created += 1
                KIT.writes.append(
                    {
                        "kind": "scene",
                        "test": KIT.current_test,
                        "processPlanId": plan,
                        "instanceId": data.get("instanceId"),
                        "executeStrategy": (fields.get("executeStrategy") or [None])[0],
                        "dimension": (fields.get("dimension") or [None])[0],
                        "intervals": (fields.get("intervals") or [None])[0],
                        "sceneName": (fields.get("sceneName") or [None])[0],
                    }
                )


class GuardedSession(requests.Session):
    """A requests session that asks the policy before sending and logs every request for the report."""

    def __init__(self, policy: WritePolicy) -> None:
        super().__init__()
        self.policy = policy
        self._environment_settings: dict[Any, dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        """requests' own result, remembered per origin: it scans the whole environment (proxy variables, CA
        bundle) for every request, and a kit run sends some 1,500 while the environment stays as it was —
        about 8% of a run's CPU went there."""
        parts = urlsplit(str(url))
        given = (parts.scheme, parts.netloc, proxies, stream, verify, cert, self.proxies, self.stream, self.verify)
        try:
            key = tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in given) + (self.trust_env,)
            cached = self._environment_settings.get(key)
        except TypeError:  # something unhashable: no memory, requests as it is
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        if cached is None:
            cached = super().merge_environment_settings(url, dict(proxies or {}), stream, verify, cert)
            self._environment_settings[key] = cached
        return {**cached, "proxies": dict(cached["proxies"] or {})}

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]  # requests types send() narrower than it calls it
        try:
            kind = self.policy.check(request)
        except WriteBlocked as exc:
            KIT.blocked.append(
                {
                    "test": KIT.current_test,
                    "method": request.method,
                    "path": urlsplit(request.url or "").path,
                    "reason": str(exc),
                }
            )
            raise
        sent = SentRequest(
            KIT.current_test, request.method or "GET", request.url or "", dict(request.headers), request.body
        )
        KIT.record_request(sent)
        response = super().send(request, **kwargs)
        sent.http_status = response.status_code
        response.kit_sent = sent  # type: ignore[attr-defined]  # lets KIT.blame() find it
        if kind:
            self.policy.record(kind, request, response)
        return response


def skip_unless_execute(plan_id: str | None = None) -> None:
    reason = policy().can_execute(plan_id)
    if reason:
        pytest.skip(reason)


def skip_unless_scenes(plan_id: str | None = None, strategy: str = "single") -> None:
    reason = policy().can_save_scene(plan_id, strategy)
    if reason:
        pytest.skip(reason)


_POLICY: WritePolicy | None = None


def policy() -> WritePolicy:
    global _POLICY
    if _POLICY is None:
        cfg = KIT.config
        assert cfg is not None, "the kit is not configured (contract_tests/conftest.py not loaded)"
        _POLICY = WritePolicy(
            in_process=cfg.in_process,
            allow_writes=cfg.allow_writes,
            plan_ids=cfg.plan_ids,
            allow_scenes=cfg.allow_scenes,
            scene_strategies=cfg.scene_strategies,
            max_runs=cfg.max_runs,
            max_scenes=cfg.max_scenes,
        )
    return _POLICY


@pytest.fixture(scope="session")
def kit_policy() -> WritePolicy:
    return policy()
