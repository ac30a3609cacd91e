"""Settings precedence (defaults < file < DPA_MOCK_* env < overrides) and refusal of unknown keys and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from mock_server.settings import Settings, SettingsError, load_settings


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
