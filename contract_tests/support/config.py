"""The kit's options: command line first, then DPA_* environment variables, then defaults per target."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contract_tests.options import (
    DEFAULT_JUNIT,
    DEFAULT_MAX_SCENES,
    DEFAULT_REPORT,
    DOC_CLIENT,
    NUMBER_RANGES,
    OPTIONS,
    POC_CLIENT,
    number_problem,
)

__all__ = ["DEFAULT_JUNIT", "DEFAULT_REPORT", "OPTIONS", "add_options", "build_config"]

_TRUE = {"1", "true", "yes", "on"}


def add_options(parser: pytest.Parser) -> None:
    """The kit's options; idempotent, since both the `contract_tests.plugin` entry point and the checkout's
    conftest register them."""
    group = parser.getgroup("dpa-contract", "DPA contract-test kit (every option also reads its DPA_* variable)")
    known = {name for option in group.options for name in option.names()}
    for dest, flag, env, kind, text in OPTIONS:
        if flag in known:
            continue
        help_text = f"{text} [env {env}]"
        if kind == "bool":
            group.addoption(flag, dest=dest, action="store_true", default=None, help=help_text)
        elif kind == "list":
            group.addoption(flag, dest=dest, action="append", default=None, help=help_text)
        else:
            group.addoption(flag, dest=dest, default=None, help=help_text)


def _value(config: pytest.Config, dest: str, env: str, kind: str) -> Any:
    value = config.getoption(dest)
    if value is not None:
        return value
    raw = os.environ.get(env)
    if raw is None or raw == "":
        return None
    if kind == "bool":
        return raw.strip().lower() in _TRUE
    if kind == "list":
        return [v.strip() for v in raw.split(",") if v.strip()]
    return raw


@dataclass(frozen=True)
class KitConfig:
    base_url: str | None
    client_id: str
    client_secret: str = field(repr=False)
    user_id: str | None
    scope: str
    other_client_id: str | None
    other_client_secret: str | None = field(repr=False)
    verify: bool | str
    use_admin: bool
    allow_writes: bool
    plan_ids: tuple[str, ...] | None  # None: every plan the user sees (in-process only)
    allow_scenes: bool
    scene_strategies: tuple[str, ...] | None  # None: any strategy (in-process only)
    max_runs: int | None
    max_scenes: int | None
    callback_listen: str | None
    callback_public_url: str | None
    slow: bool
    wait_seconds: float
    report_path: Path
    seed: int
    strict: bool = False
    report_json: Path | None = None

    @property
    def in_process(self) -> bool:
        return self.base_url is None

    def secrets(self) -> list[str]:
        return [s for s in (self.client_secret, self.other_client_secret) if s]


def build_config(config: pytest.Config, seed: int) -> KitConfig:
    v = {dest: _value(config, dest, env, kind) for dest, _flag, env, kind, _text in OPTIONS}
    base_url = (v["dpa_base_url"] or "").rstrip("/") or None
    in_process = base_url is None
    client_id, secret = v["dpa_client_id"], v["dpa_client_secret"]
    other_id, other_secret = v["dpa_other_client_id"], v["dpa_other_client_secret"]
    if in_process:
        client_id, secret = client_id or POC_CLIENT[0], secret or POC_CLIENT[1]
        if not other_id:
            other_id, other_secret = DOC_CLIENT
    elif not client_id or not secret:
        raise pytest.UsageError(
            "a live target (--base-url) needs --client-id and --client-secret (or DPA_CLIENT_ID and DPA_CLIENT_SECRET)"
        )
    scope = v["dpa_scope"] or "default"
    if scope not in ("default", "all"):
        raise pytest.UsageError(f"--scope must be 'default' or 'all', not {scope!r}")
    verify: bool | str = True
    if v["dpa_ca_bundle"]:
        verify = str(v["dpa_ca_bundle"])
    if v["dpa_insecure"]:
        verify = False
    for dest in NUMBER_RANGES:
        problem = number_problem(dest, v[dest])
        if problem:
            raise pytest.UsageError(problem)
    try:
        max_runs = None if v["dpa_max_runs"] is None else int(v["dpa_max_runs"])
        max_scenes = None if v["dpa_max_scenes"] is None else int(v["dpa_max_scenes"])
        wait = float(v["dpa_wait_seconds"] or 30)
    except ValueError as exc:
        raise pytest.UsageError(f"--max-runs / --max-scenes / --wait-seconds: {exc}") from None
    if max_scenes is None and not in_process:
        max_scenes = DEFAULT_MAX_SCENES
    plans = tuple(dict.fromkeys(v["dpa_plan_ids"] or ()))
    listen, public = v["dpa_callback_listen"], v["dpa_callback_public_url"]
    if in_process and not listen:
        listen, public = "127.0.0.1:0", public or "auto"
    if listen and not public:
        public = "auto"
    return KitConfig(
        base_url=base_url,
        client_id=client_id,
        client_secret=secret,
        user_id=v["dpa_user_id"],
        scope=scope,
        other_client_id=other_id,
        other_client_secret=other_secret,
        verify=verify,
        use_admin=not v["dpa_no_admin"],
        allow_writes=True if in_process else bool(v["dpa_allow_writes"]),
        plan_ids=(plans or None) if in_process else plans,
        allow_scenes=True if in_process else bool(v["dpa_allow_scenes"]),
        scene_strategies=None if in_process else ("single",),
        max_runs=max_runs,
        max_scenes=max_scenes,
        callback_listen=listen,
        callback_public_url=public,
        slow=bool(v["dpa_slow"]),
        wait_seconds=wait,
        report_path=Path(v["dpa_report"] or DEFAULT_REPORT),
        seed=seed,
        strict=bool(v["dpa_strict"]),
        report_json=Path(v["dpa_report_json"]) if v["dpa_report_json"] else None,
    )
