"""One frozen settings object: defaults < config file (YAML or TOML) < DPA_MOCK_* environment < CLI flags."""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

ALL_STATUSES = ("DEFAULT", "RUNNING", "PENDING", "SUCCESS", "FAIL")


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the source and the key."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 29041
    fixtures: str | None = None  # directory of YAML fixtures; None = the bundled ones
    state: str | None = None  # SQLite file keeping all state across restarts; None = in memory only
    clock: str = "real"  # real | virtual
    timezone: str = "Asia/Shanghai"  # for day/weeks/month scene arithmetic and fixture times
    code_ttl: float = 600.0  # authorization code lifetime, seconds
    token_ttl: float = 7200.0  # access token lifetime, seconds
    jwt_secret: str = "dpa-mock-insecure-demo-hs256-secret-key"  # 32+ bytes, as RFC 7518 asks
    issuer: str = "dpa-mock"
    run_start_delay: float = 0.2  # seconds an instance stays DEFAULT before RUNNING
    seed: int = 0  # drives `random` node outcomes
    callback_retries: int = 3  # retries after the first attempt: 1 + 3 attempts at most
    callback_backoff: tuple[float, ...] = (0.1, 0.2, 0.4)  # seconds before retry 1, 2, 3
    callback_timeout: float = 2.0  # per attempt, seconds
    callback_workers: int = 8
    callback_statuses: tuple[str, ...] = ALL_STATUSES
    ledger_size: int = 10_000
    runs_keep: int = 10_000  # finished runs kept for queries; older ones are forgotten
    journal_size: int = 10_000
    http_status: str = "mirror"  # mirror: HTTP status = code where code is an HTTP status; always200
    admin: bool = True
    admin_token: str | None = None
    scene_catchup_limit: int = 1000  # firings per scene per clock advance; later ones are coalesced
    advance_firing_budget: int = 10_000  # firings of all scenes per clock advance; later ones are coalesced
    max_body_bytes: int = 1_048_576
    read_timeout: float = 5.0  # seconds for a request's headers or body to arrive (or an idle keep-alive); then closed
    json_max_depth: int = 32  # nesting of arrays and objects in a JSON body (or a form's bracketed keys)
    json_max_number_digits: int = 100  # characters of one JSON number (Python refuses ints past 4,300 digits)
    json_max_string_chars: int = 65_536  # characters of one JSON string
    json_max_values: int = 10_000  # values (fields, items, scalars) in one JSON body
    threads: int = 1  # WSGI server threads: one is fastest (no GIL convoy; see docs/performance.md)
    workers: int = 1  # server processes; more than one needs `state` (they share it)
    lease_ttl: float = 3.0  # seconds a dead scheduler process keeps the lease (sooner if seen to be gone)
    shared_poll_interval: float = 0.02  # seconds between a process's catch-ups with the shared state
    advance_timeout: float = 600.0  # seconds a clock advance may wait for the process holding the lease
    log_requests: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in fields(Settings) if f.name != "extra"}


def _coerce(name: str, value: Any, source: str) -> Any:
    default = getattr(Settings(), name)
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            kind = float if name == "callback_backoff" else str
            return tuple(kind(str(v).strip()) for v in items if str(v).strip())
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: {name}: cannot use {value!r}") from None


def _check(s: Settings) -> Settings:
    if s.clock not in ("real", "virtual"):
        raise SettingsError(f"clock: {s.clock!r} is not 'real' or 'virtual'")
    if s.http_status not in ("mirror", "always200"):
        raise SettingsError(f"http_status: {s.http_status!r} is not 'mirror' or 'always200'")
    bad = set(s.callback_statuses) - set(ALL_STATUSES)
    if bad:
        raise SettingsError(f"callback_statuses: unknown status {sorted(bad)}")
    if s.callback_retries < 0:
        raise SettingsError("callback_retries: must be >= 0")
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"port: {s.port} is not a TCP port (0-65535)")
    for name in ("code_ttl", "token_ttl", "callback_timeout", "lease_ttl", "shared_poll_interval", "advance_timeout",
                 "read_timeout"):
        if not getattr(s, name) > 0:
            raise SettingsError(f"{name}: must be > 0, got {getattr(s, name)}")
    for name in ("threads", "workers", "callback_workers", "ledger_size", "journal_size", "runs_keep", "max_body_bytes",
                 "scene_catchup_limit", "advance_firing_budget", "json_max_depth", "json_max_number_digits",
                 "json_max_string_chars", "json_max_values"):
        if getattr(s, name) < 1:
            raise SettingsError(f"{name}: must be >= 1, got {getattr(s, name)}")
    if s.workers > 1 and not s.state:
        raise SettingsError(f"workers: {s.workers} processes need a shared state file (--state FILE); "
                            "in-memory state is per process")
    if s.run_start_delay < 0 or any(b < 0 for b in s.callback_backoff):
        raise SettingsError("run_start_delay and callback_backoff: must be >= 0")
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"timezone: {s.timezone!r} is not a known IANA time zone (e.g. Asia/Shanghai)") from None
    return s


def load_settings(config_file: str | Path | None = None, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    values: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        try:
            text = path.read_text(encoding="utf-8")
            raw = tomllib.loads(text) if path.suffix == ".toml" else (yaml.safe_load(text) or {})
        except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: cannot read: {exc}") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: expected a mapping of settings")
        for key, value in raw.items():
            name = str(key).replace("-", "_")
            if name not in _FIELDS:
                raise SettingsError(f"{path}: {key}: unknown setting")
            values[name] = _coerce(name, value, str(path))
    env = os.environ if env is None else env
    for name in _FIELDS:
        key = f"DPA_MOCK_{name.upper()}"
        if key in env:
            values[name] = _coerce(name, env[key], key)
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise SettingsError(f"{name}: unknown setting")
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    return _check(Settings(**values))


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The settings as DPA_MOCK_* variables, so a server's worker process rebuilds exactly these."""
    out = {}
    for name in _FIELDS:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        out[f"DPA_MOCK_{name.upper()}"] = str(value)
    return out


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
