"""Settings precedence (defaults < file < DPA_MOCK_* env < overrides) and refusal of unknown keys and bad values."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest

from mock_server.settings import FLOAT_RANGES, INT_RANGES, Settings, SettingsError, load_settings
from mock_server.sqlite_store import SqliteStore


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_documented_ones() -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert (s.host, s.port, s.clock, s.http_status, s.timezone) == (
        "127.0.0.1",
        29041,
        "real",
        "mirror",
        "Asia/Shanghai",
    )
    assert (s.code_ttl, s.token_ttl, s.run_start_delay) == (600.0, 7200.0, 0.2)
    assert (s.callback_retries, s.callback_backoff, s.callback_timeout) == (3, (0.1, 0.2, 0.4), 2.0)
    assert s.scene_catchup_limit == 1000 and s.admin_token is None and s.seed == 0


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    config = write(tmp_path, "dpa.yaml", "code_ttl: 30\ntoken_ttl: 100\nseed: 7\nclock: virtual\n")
    from_file = load_settings(config, env={})
    assert (from_file.code_ttl, from_file.token_ttl, from_file.seed, from_file.clock) == (30.0, 100.0, 7, "virtual")
    assert from_file.port == 29041  # untouched keys keep their defaults
    env = {"DPA_MOCK_CODE_TTL": "40", "DPA_MOCK_SEED": "8"}
    from_env = load_settings(config, env=env)
    assert (from_env.code_ttl, from_env.token_ttl, from_env.seed) == (40.0, 100.0, 8)
    overridden = load_settings(config, env=env, code_ttl=50, seed=None)
    # An override of None means "not given on the command line": the env value stands.
    assert (overridden.code_ttl, overridden.token_ttl, overridden.seed) == (50.0, 100.0, 8)


def test_toml_file_and_dashed_keys(tmp_path: Path) -> None:
    config = write(tmp_path, "dpa.toml", 'code-ttl = 12\nhttp_status = "always200"\ncallback_backoff = [1, 2.5]\n')
    s = load_settings(config, env={})
    assert (s.code_ttl, s.http_status, s.callback_backoff) == (12.0, "always200", (1.0, 2.5))


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPA_MOCK_PORT", "30000")
    monkeypatch.setenv("DPA_MOCK_ADMIN", "off")
    monkeypatch.setenv("DPA_MOCK_CALLBACK_BACKOFF", "0.5, 1")
    s = load_settings()
    assert (s.port, s.admin, s.callback_backoff) == (30000, False, (0.5, 1.0))


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "dpa.yaml", "code_ttl: 30\ncode_tll: 40\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config, env={})
    assert str(config) in str(info.value) and "code_tll" in str(info.value) and "unknown setting" in str(info.value)


def test_unknown_dpa_mock_env_vars_are_ignored() -> None:
    assert load_settings(env={"DPA_MOCK_NOT_A_SETTING": "1"}) == Settings()


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("code_ttl: soon\n", "code_ttl"),
        ("port: [1, 2]\n", "port"),
        ("clock: sundial\n", "clock"),
        ("http_status: sometimes\n", "http_status"),
        ("callback_statuses: [DEFAULT, DONE]\n", "callback_statuses"),
        ("callback_retries: -1\n", "callback_retries"),
        ("admin: maybe\n", "admin"),
        ("- just\n- a list\n", "mapping"),
        ("code_ttl: [unclosed\n", "cannot read"),
    ],
)
def test_bad_values_in_file_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    config = write(tmp_path, "dpa.yaml", text)
    with pytest.raises(SettingsError, match=fragment):
        load_settings(config, env={})


@pytest.mark.parametrize(
    "env,fragment",
    [
        ({"DPA_MOCK_PORT": "http"}, "DPA_MOCK_PORT"),
        ({"DPA_MOCK_TOKEN_TTL": "2h"}, "DPA_MOCK_TOKEN_TTL"),
        ({"DPA_MOCK_CLOCK": "fast"}, "clock"),
        ({"DPA_MOCK_CALLBACK_BACKOFF": "0.1,x"}, "DPA_MOCK_CALLBACK_BACKOFF"),
    ],
)
def test_bad_values_in_env_are_refused(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load_settings(env=env)


def test_bad_override_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--seed"):
        load_settings(env={}, seed="lucky")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", env={})


# Out-of-range values that still parse: each would start a broken emulator instead of failing fast.
@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"port": 70000}, "port"),  # waitress binds 70000 & 0xFFFF = 4464 instead
        ({"port": -1}, "port"),
        ({"token_ttl": -5}, "token_ttl"),  # every token would be born expired
        ({"code_ttl": 0}, "code_ttl"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),  # create_app dies with ZoneInfoNotFoundError
        ({"workers": 2}, "--state"),  # each process would have its own state: a code from one fails at another
        ({"workers": 0, "state": "x.db"}, "workers"),
        ({"lease_ttl": 0}, "lease_ttl"),
        ({"read_timeout": 0}, "read_timeout"),  # every body would time out at once
        ({"read_timeout": "nan"}, "read_timeout"),
        ({"json_max_depth": 0}, "json_max_depth"),  # every JSON body (an object is one level) refused
        ({"json_max_values": 0}, "json_max_values"),
    ],
    ids=[
        "port-too-big",
        "port-negative",
        "token_ttl-negative",
        "code_ttl-zero",
        "timezone-unknown",
        "workers-without-state",
        "workers-zero",
        "lease_ttl-zero",
        "read_timeout-zero",
        "read_timeout-nan",
        "json_max_depth-zero",
        "json_max_values-zero",
    ],
)
def test_out_of_range_values_are_refused(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load_settings(env={}, **overrides)


def test_several_workers_with_a_state_file_are_accepted() -> None:
    assert load_settings(env={}, workers=2, state="shared.db").workers == 2


# -- every number finite and within its range (a value past one broke the server later: an OverflowError
# in every token call, a granian worker dying at start again and again, a Python limit a request then hit) --
_CHECKED_ELSEWHERE = {  # numeric settings whose check is a list of choices or its own range
    "port",
    "code_length",
    "unknown_plan_code",
    "unknown_instance_code",
    "unknown_path_code",
    "unknown_path_http_status",
    "wrong_method_code",
    "wrong_method_http_status",
    "validation_code",
    "bad_token_code",
    "code_reuse_code",
}


def test_every_numeric_setting_has_a_range() -> None:
    numeric = {
        f.name
        for f in fields(Settings)
        if isinstance(getattr(Settings(), f.name), (int, float, tuple))
        and not isinstance(getattr(Settings(), f.name), bool)
    } - {"callback_statuses", "token_claims"}
    assert numeric - _CHECKED_ELSEWHERE == set(FLOAT_RANGES) | set(INT_RANGES)


def _with_state(name: str, tmp_path: Path) -> dict[str, object]:
    return {"state": str(tmp_path / "s.db")} if name == "workers" else {}


@pytest.mark.parametrize("name", sorted(FLOAT_RANGES))
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "-1"])
def test_float_settings_outside_their_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{name}: {value.replace('1e300', '1e[+]300')} is out of range: must be"):
        load_settings(env={}, **{name: value})


@pytest.mark.parametrize("name", sorted(FLOAT_RANGES))
def test_float_settings_ends_of_their_range(name: str) -> None:
    low, low_open, high, _ = FLOAT_RANGES[name]
    assert load_settings(env={}, **{name: str(high)}) is not None
    with pytest.raises(SettingsError, match=f"^{name}: "):
        load_settings(env={}, **{name: str(high * 1.001)})
    if low_open:
        with pytest.raises(SettingsError, match=f"^{name}: "):
            load_settings(env={}, **{name: str(low)})
    else:
        assert load_settings(env={}, **{name: str(low)}) is not None


@pytest.mark.parametrize("name", sorted(INT_RANGES))
def test_int_settings_ends_of_their_range(name: str, tmp_path: Path) -> None:
    low, high = INT_RANGES[name]
    extra = _with_state(name, tmp_path)
    assert getattr(load_settings(env={}, **{name: high}, **extra), name) == high
    assert getattr(load_settings(env={}, **{name: low}, **extra), name) == low
    for value in (low - 1, high + 1):
        with pytest.raises(SettingsError, match=rf"^{name}: {value} is out of range: must be >= "):
            load_settings(env={}, **{name: value}, **extra)


@pytest.mark.parametrize("secret", ["", "short-secret", "é" * 15])
def test_a_jwt_secret_shorter_than_hs256_needs_is_refused_without_echoing_it(secret: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, jwt_secret=secret)
    assert str(info.value).startswith("jwt_secret: ") and "at least 32" in str(info.value)
    assert secret not in str(info.value).split(": ", 1)[1] or not secret
    assert load_settings(env={}, jwt_secret="é" * 16).jwt_secret == "é" * 16  # 32 bytes of UTF-8


def test_a_config_file_or_variable_out_of_range_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "c.yaml", "token_ttl: .inf\n")
    with pytest.raises(SettingsError, match=rf"^{re.escape(str(config))}: token_ttl: inf is out of range"):
        load_settings(config, env={})
    with pytest.raises(SettingsError, match=r"^DPA_MOCK_CODE_TTL: code_ttl: inf is out of range"):
        load_settings(env={"DPA_MOCK_CODE_TTL": "inf"})


# -- the state file, looked at before any server process opens it ----------------------------------
def test_state_file_problems_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.db").write_text("not sqlite")
    (tmp_path / "dir.db").mkdir()
    foreign = sqlite3.connect(tmp_path / "other.db")
    foreign.execute("CREATE TABLE records (id INTEGER)")  # our table's name, not its columns
    foreign.commit()
    foreign.close()
    for path, reason in [
        (tmp_path / "no" / "s.db", "does not exist"),
        (tmp_path / "bad.db" / "s.db", f"directory {tmp_path / 'bad.db'} is not a directory"),
        (tmp_path / "bad.db", "is not an SQLite database"),
        (tmp_path / "dir.db", "is a directory"),
        (tmp_path / "other.db", "another application (tables: records)"),
    ]:
        with pytest.raises(SettingsError, match=rf"^state: .*{re.escape(reason)}"):
            load_settings(env={}, state=str(path))


def test_state_files_that_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    sqlite3.connect(tmp_path / "blank.db").execute("PRAGMA user_version = 1").connection.close()
    store = SqliteStore(tmp_path / "ours.db")
    store.close()
    for name in ("absent.db", "empty.db", "blank.db", "ours.db"):
        assert load_settings(env={}, state=str(tmp_path / name)).state == str(tmp_path / name)
