"""One frozen settings object: defaults < config file (YAML or TOML) < DPA_MOCK_* environment < CLI flags."""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

ALL_STATUSES = ("DEFAULT", "RUNNING", "PENDING", "SUCCESS", "FAIL")
# The document's business codes (the same set as mock_server.domain.errors.DOCUMENTED_CODES).
BUSINESS_CODES = (200, 400, 403, 404, 500, 503, 997, 998, 999)
ERROR_CODES = tuple(c for c in BUSINESS_CODES if c != 200)
TOKEN_CLAIMS = ("iss", "aud", "sub", "scope", "client_id", "user_id", "jti", "iat", "orig_iat", "exp")
CODE_ALPHABETS = ("A-Z0-9", "A-Z0-9_-")
PLAN_INSTANCE_ID_FORMATS = ("in-millis", "digits", "uuid")


DAY = 86_400
TEN_YEARS = 3650 * DAY

# Numeric settings: (lowest, whether the lowest itself is refused, highest, unit). The highest is where a
# larger value breaks something or makes no sense: granian's timeouts are integers of milliseconds, Python
# refuses ints of more than 4,300 digits, the JSON walks of the journal recurse once per nesting level.
FLOAT_RANGES: dict[str, tuple[float, bool, float, str]] = {
    "code_ttl": (0, True, TEN_YEARS, " seconds (10 years)"),
    "token_ttl": (0, True, TEN_YEARS, " seconds (10 years)"),
    "run_start_delay": (0, False, DAY, " seconds (a day)"),
    "callback_backoff": (0, False, DAY, " seconds (a day) for each retry"),
    "callback_timeout": (0, True, 3600, " seconds (an hour)"),
    "read_timeout": (0.001, False, 3600, " seconds (an hour)"),
    "lease_ttl": (0.01, False, 3600, " seconds (an hour)"),
    "shared_poll_interval": (0.001, False, 60, " seconds"),
    "advance_timeout": (0, True, DAY, " seconds (a day)"),
}
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (-(2**63), 2**63 - 1),
    "callback_retries": (0, 100),
    "callback_workers": (1, 256),
    "threads": (1, 256),
    "workers": (1, 64),
    "ledger_size": (1, 10_000_000),
    "runs_keep": (1, 10_000_000),
    "journal_size": (1, 10_000_000),
    "scene_catchup_limit": (1, 10_000_000),
    "advance_firing_budget": (1, 10_000_000),
    "max_body_bytes": (1, 1 << 30),
    "json_max_depth": (1, 256),
    "json_max_number_digits": (1, 4300),
    "json_max_string_chars": (1, 1 << 30),
    "json_max_values": (1, 100_000_000),
}


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
    # -- the emulator's choices where the document is silent (docs/profiles.md; a profile sets them) --------
    http_status_by_code: dict[int, int] = field(
        default_factory=dict, hash=False
    )  # business code -> HTTP status, over http_status
    unknown_plan_code: int = 404
    unknown_instance_code: int = 404
    unknown_path_code: int = 404
    unknown_path_http_status: int = 0  # 0: the status of unknown_path_code under http_status
    wrong_method_code: int = 404
    wrong_method_http_status: int = 405  # 0: the status of wrong_method_code under http_status
    wrong_method_allow: bool = True  # an Allow header on a wrong-method answer
    validation_code: int = 400
    bad_token_code: int = 403
    code_reuse_code: int = 403
    error_data: str = "null"  # null: `"data": null` in error envelopes; absent: no `data` key
    success_message: str = "success"  # interfaces 2-6
    oauth_success_message: str = ""  # interface 1
    single_slash_paths: bool = True  # also serve `/api/dpa/x` for the document's `/api/dpa//x`
    execute_body_plan_id: str = "required"  # required | path-only (the body's processPlanId may be absent)
    callback_after_give_up: bool = True  # keep sending a run's later statuses after one was given up
    code_length: int = 48
    code_alphabet: str = "A-Z0-9"  # A-Z0-9 | A-Z0-9_-
    token_claims: tuple[str, ...] = ("aud", "exp", "iss", "jti", "orig_iat", "scope", "sub")
    token_audience: str | None = None  # None: `aud` is the client_id; else this string, and client_id says who
    token_type: str = "Bearer"  # the token answer's token_type: Bearer in any casing (RFC 6749: case-insensitive)
    plan_instance_id_format: str = "in-millis"  # in-millis (in + 13 digits) | digits (19 digits) | uuid

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    default = getattr(Settings(), name)
    try:
        if isinstance(default, dict):
            return _code_map(value)
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
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if value is None or (name == "token_audience" and value == ""):
            return None
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: {name}: cannot use {value!r}") from None


def _code_map(value: Any) -> dict[int, int]:
    """`{997: 200}` from YAML/TOML, or `997:200,998:200` from the environment or --set."""
    if isinstance(value, str):
        pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(value)
        return {int(k): int(v) for k, v in pairs}
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(value)
    return {int(k): int(v) for k, v in value.items()}


def _code_map_text(value: dict[int, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(value.items()))


def _check(s: Settings) -> Settings:
    if s.clock not in ("real", "virtual"):
        raise SettingsError(f"clock: {s.clock!r} is not 'real' or 'virtual'")
    if s.http_status not in ("mirror", "always200"):
        raise SettingsError(f"http_status: {s.http_status!r} is not 'mirror' or 'always200'")
    bad = set(s.callback_statuses) - set(ALL_STATUSES)
    if bad:
        raise SettingsError(f"callback_statuses: unknown status {sorted(bad)}")
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"port: {s.port} is not a TCP port (0-65535)")
    _check_ranges(s)
    if len(s.jwt_secret.encode("utf-8")) < 32:  # PyJWT refuses an empty key: every token call was a 500
        raise SettingsError(
            f"jwt_secret: {len(s.jwt_secret.encode('utf-8'))} bytes; HS256 needs at least 32 (RFC 7518, 3.2)"
        )
    if s.workers > 1 and not s.state:
        raise SettingsError(
            f"workers: {s.workers} processes need a shared state file (--state FILE); in-memory state is per process"
        )
    _check_choices(s)
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"timezone: {s.timezone!r} is not a known IANA time zone (e.g. Asia/Shanghai)") from None
    if s.state:
        from mock_server.sqlite_store import state_file_problem  # sqlite only when a state file is asked for

        problem = state_file_problem(s.state)
        if problem:
            raise SettingsError(f"state: {problem}")
    return s


def _check_ranges(s: Settings) -> None:
    """Every number finite and within its range: past one, something breaks later (an OverflowError in each
    token call, a server worker that dies at start again and again, a Python limit a request then hits)."""
    for name, (low, low_open, high, unit) in FLOAT_RANGES.items():
        values = getattr(s, name)
        for value in values if isinstance(values, tuple) else (values,):
            # `not (...)` so that NaN, which compares false with everything, is refused too.
            if not ((low < value if low_open else low <= value) and value <= high):
                shown = str(value).removesuffix(".0")
                raise SettingsError(f"{name}: {shown} is out of range: {_range_text(low, low_open, high, unit)}")
    for name, (low, high) in INT_RANGES.items():
        value = getattr(s, name)
        if not low <= value <= high:
            raise SettingsError(f"{name}: {value} is out of range: {_range_text(low, False, high, '')}")


def _range_text(low: float, low_open: bool, high: float, unit: str) -> str:
    def number(x: float) -> str:
        return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"

    return f"must be {'>' if low_open else '>='} {number(low)} and <= {number(high)}{unit}"


def _check_choices(s: Settings) -> None:
    """The profile settings (docs/profiles.md): each error names the setting and what it accepts."""
    for code, status in s.http_status_by_code.items():
        if code not in BUSINESS_CODES:
            raise SettingsError(
                f"http_status_by_code: {code} is not a business code of the document "
                f"({', '.join(map(str, BUSINESS_CODES))})"
            )
        if not 100 <= status <= 599:
            raise SettingsError(f"http_status_by_code: {code}: {status} is not an HTTP status (100-599)")
    for name in (
        "unknown_plan_code",
        "unknown_instance_code",
        "unknown_path_code",
        "validation_code",
        "bad_token_code",
        "code_reuse_code",
        "wrong_method_code",
    ):
        allowed = ERROR_CODES + ((405,) if name == "wrong_method_code" else ())
        if getattr(s, name) not in allowed:
            raise SettingsError(f"{name}: {getattr(s, name)} is not one of {', '.join(map(str, allowed))}")
    for name in ("unknown_path_http_status", "wrong_method_http_status"):
        value = getattr(s, name)
        if value != 0 and not 100 <= value <= 599:
            raise SettingsError(f"{name}: {value} is not an HTTP status (100-599), or 0 to follow http_status")
    if s.error_data not in ("null", "absent"):
        raise SettingsError(f"error_data: {s.error_data!r} is not 'null' or 'absent'")
    if s.execute_body_plan_id not in ("required", "path-only"):
        raise SettingsError(f"execute_body_plan_id: {s.execute_body_plan_id!r} is not 'required' or 'path-only'")
    if s.token_type.lower() != "bearer":
        raise SettingsError(
            f"token_type: {s.token_type!r} is not Bearer in some casing (the document's tokens are bearer tokens)"
        )
    if not 8 <= s.code_length <= 256:
        raise SettingsError(f"code_length: {s.code_length} is not between 8 and 256")
    if s.code_alphabet not in CODE_ALPHABETS:
        raise SettingsError(f"code_alphabet: {s.code_alphabet!r} is not one of {', '.join(CODE_ALPHABETS)}")
    if s.plan_instance_id_format not in PLAN_INSTANCE_ID_FORMATS:
        raise SettingsError(
            f"plan_instance_id_format: {s.plan_instance_id_format!r} is not one of "
            f"{', '.join(PLAN_INSTANCE_ID_FORMATS)}"
        )
    claims = set(s.token_claims)
    unknown = claims - set(TOKEN_CLAIMS)
    if unknown:
        raise SettingsError(f"token_claims: unknown claim {sorted(unknown)[0]!r} (use {', '.join(TOKEN_CLAIMS)})")
    # A token must still say who it speaks for: the client, the user, and when it ends.
    if "exp" not in claims:
        raise SettingsError("token_claims: must include exp (the kit and the emulator read a token's lifetime)")
    if not claims & {"sub", "user_id"}:
        raise SettingsError("token_claims: must include sub or user_id (the user the token speaks for)")
    if "client_id" not in claims and (s.token_audience or "aud" not in claims):
        raise SettingsError(
            "token_claims: must include client_id, or aud without token_audience (the app the token speaks for)"
        )
    if s.token_audience and "aud" not in claims:
        raise SettingsError("token_audience: is set but token_claims has no aud")


PROFILES_DIR = Path(__file__).resolve().parent / "_data" / "profiles"


def bundled_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_path(profile: str | Path) -> Path:
    """A bundled profile's name (`document`, `gateway`) or a profile file's path."""
    text = str(profile)
    bundled = PROFILES_DIR / f"{text}.yaml"
    if "/" not in text and "\\" not in text and "." not in text and bundled.is_file():
        return bundled
    path = Path(text)
    if not path.is_file():
        raise SettingsError(
            f"profile: {text!r} is neither a bundled profile ({', '.join(bundled_profiles())}) nor a readable file"
        )
    return path


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else (yaml.safe_load(text) or {})
    except (OSError, UnicodeDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of settings")
    return raw


def _file_values(path: Path, raw: dict[str, Any], allow_profile: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name == "profile" and allow_profile:
            continue
        if name not in _FIELDS:
            raise SettingsError(f"{path}: {key}: unknown setting")
        values[name] = _coerce(name, value, str(path))
    return values


def load_settings(
    config_file: str | Path | None = None,
    env: dict[str, str] | None = None,
    profile: str | Path | None = None,
    **overrides: Any,
) -> Settings:
    """defaults < profile < config file < DPA_MOCK_* < overrides. The profile is `profile`, else the config
    file's `profile` key, else DPA_MOCK_PROFILE; a profile is itself a settings file (without `profile`)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    config: dict[str, Any] = {}
    config_path = Path(config_file) if config_file else None
    if config_path is not None:
        config = _read_file(config_path)
    profile = profile or config.get("profile") or environ.get("DPA_MOCK_PROFILE") or None
    values: dict[str, Any] = {}
    profile_file: Path | None = None
    if profile:
        profile_file = profile_path(profile)
        values.update(_file_values(profile_file, _read_file(profile_file), allow_profile=False))
    profile_values = dict(values)
    origins = dict.fromkeys(values, str(profile_file))  # where each value came from, for a refusal to name
    if config_path is not None:
        config_values = _file_values(config_path, config, allow_profile=True)
        values.update(config_values)
        origins.update(dict.fromkeys(config_values, str(config_path)))
    for name in _FIELDS:
        key = f"DPA_MOCK_{name.upper()}"
        if key in environ:
            values[name] = _coerce(name, environ[key], key)
            origins[name] = key
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise SettingsError(f"{name}: unknown setting")
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
            origins.pop(name, None)  # a flag or --set: the operator has just typed the name the refusal starts with
    try:
        return _check(Settings(**values))
    except SettingsError as exc:
        if profile_file is not None and _still_refused(profile_values, exc):
            raise SettingsError(f"{profile_file}: {exc}") from None  # the profile's fault: named as such
        origin = origins.get(str(exc).split(":", 1)[0])
        if origin is not None and origin != str(profile_file):
            raise SettingsError(f"{origin}: {exc}") from None  # the file or variable to open and correct
        raise


def _still_refused(values: dict[str, Any], refusal: SettingsError) -> bool:
    """Whether these values alone are refused for the same reason."""
    try:
        _check(Settings(**values))
    except SettingsError as exc:
        return str(exc) == str(refusal)
    return False


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The settings as DPA_MOCK_* variables, so a server's worker process rebuilds exactly these."""
    out = {}
    for name in _FIELDS:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = _code_map_text(value)
        out[f"DPA_MOCK_{name.upper()}"] = str(value)
    return out


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
