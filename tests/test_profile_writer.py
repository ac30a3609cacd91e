"""The profile writer: each observation topic becomes its setting, and what cannot be reproduced keeps the default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract_tests.support.profile_writer import RULES, UNOBSERVABLE, UNREPRODUCIBLE_TOPICS, render
from contract_tests.support.verdicts import DIAGNOSTIC_TOPICS, TOPICS
from mock_server.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def report(*observations: tuple[str, str] | tuple[str, str, int]) -> dict[str, Any]:
    return {
        "summary": {"seed": 1, "observations": len(observations)},
        "observations": [
            {"topic": o[0], "value": o[1], "count": o[2] if len(o) > 2 else 1, "test": "t"} for o in observations
        ],
    }


def written(*observations: tuple[str, str] | tuple[str, str, int]) -> tuple[dict[str, Any], dict[str, str]]:
    """The profile as loaded YAML, and each key's comment."""
    text = render(report(*observations))
    comments = {m.group(1): m.group(2) for m in re.finditer(r"^(\w+): .*?  # (.*)$", text, re.MULTILINE)}
    return yaml.safe_load(text), comments


def loads(tmp_path: Path, *observations: tuple[str, str] | tuple[str, str, int]) -> Settings:
    path = tmp_path / "profile.yaml"
    path.write_text(render(report(*observations)), encoding="utf-8")
    return load_settings(profile=path, env={})


def test_every_setting_of_docs_profiles_is_written_and_every_topic_is_accounted_for() -> None:
    table = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)?", table, re.MULTILINE))
    names = {n for pair in documented for n in pair if n}
    settings, _ = written()
    assert names <= set(settings), names - set(settings)
    assert {r.setting for r in RULES} | set(UNOBSERVABLE) == set(settings)
    mapped = {t for r in RULES for t in r.topics}
    assert mapped <= set(TOPICS), mapped - set(TOPICS)
    assert set(TOPICS) == mapped | set(DIAGNOSTIC_TOPICS) | set(UNREPRODUCIBLE_TOPICS), set(TOPICS) ^ (
        mapped | set(DIAGNOSTIC_TOPICS) | set(UNREPRODUCIBLE_TOPICS)
    )


def test_nothing_observed_keeps_every_default_and_says_so(tmp_path: Path) -> None:
    settings, comments = written()
    for name, value in settings.items():
        expected = getattr(Settings(), name)
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name
        assert comments.get(name, "").startswith("default:"), (name, comments.get(name))
    assert loads(tmp_path) == Settings()


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        (
            [("http-status.code-400", "200"), ("http-status.code-999", "200")],
            {"http_status": "always200", "http_status_by_code": {}},
        ),
        (
            [("http-status.code-400", "400"), ("http-status.code-998", "200")],
            {"http_status": "mirror", "http_status_by_code": {}},
        ),
        (
            [("http-status.code-400", "400"), ("http-status.code-999", "500")],
            {"http_status": "mirror", "http_status_by_code": {999: 500}},
        ),
        (
            [("http-status.code-400", "200"), ("http-status.code-404", "404")],
            {"http_status": "mirror", "http_status_by_code": {400: 200}},
        ),
    ],
)
def test_http_status_per_code(observations: list[tuple[str, str]], expected: dict[str, Any], tmp_path: Path) -> None:
    settings, _ = written(*observations)
    assert {k: settings[k] for k in expected} == expected
    loaded = loads(tmp_path, *observations)
    assert (loaded.http_status, loaded.http_status_by_code) == (
        expected["http_status"],
        expected["http_status_by_code"],
    )


def test_200_for_every_code_but_404_for_unknown_paths_is_mirror_with_every_code_mapped(tmp_path: Path) -> None:
    """always200 would send unknown paths as 200 too (docs/profiles.md): the writer must not choose it then."""
    observed = [
        ("http-status.code-400", "200"),
        ("http-status.code-999", "200"),
        ("unknown-path.code", "404"),
        ("unknown-path.http-status", "404"),
        ("wrong-method.code", "404"),
        ("wrong-method.http-status", "405"),
    ]
    settings, _ = written(*observed)
    assert settings["http_status"] == "mirror"
    assert settings["http_status_by_code"] == {400: 200, 403: 200, 404: 200, 500: 200, 503: 200}
    assert settings["unknown_path_http_status"] == 404 and settings["wrong_method_http_status"] == 405
    loaded = loads(tmp_path, *observed)
    assert loaded.unknown_path_http_status == 404 and loaded.http_status_by_code[404] == 200


def test_http_status_beyond_599_cannot_be_sent_and_says_so() -> None:
    settings, comments = written(("http-status.code-400", "400"), ("http-status.code-998", "998"))
    assert settings["http_status"] == "mirror" and settings["http_status_by_code"] == {}
    assert "998" in comments["http_status"] and "not an HTTP status" in comments["http_status"]


@pytest.mark.parametrize(
    ("topic", "value", "setting", "expected"),
    [
        ("unknown-plan.code", "999", "unknown_plan_code", 999),
        ("unknown-instance.code", "400", "unknown_instance_code", 400),
        ("unknown-path.code", "999", "unknown_path_code", 999),
        ("wrong-method.code", "405", "wrong_method_code", 405),
        ("wrong-method.http-status", "200", "wrong_method_http_status", 200),
        ("wrong-method.allow-header", "absent", "wrong_method_allow", False),
        ("wrong-method.allow-header", "present", "wrong_method_allow", True),
        ("validation.code", "999", "validation_code", 999),
        ("oauth.bad-token.code", "403", "bad_token_code", 403),
        ("oauth.code-reuse.code", "400", "code_reuse_code", 400),
        ("error.data", "absent", "error_data", "absent"),
        ("success-message.process", "'操作成功'", "success_message", "操作成功"),
        ("success-message.oauth", "'success'", "oauth_success_message", "success"),
        ("success-message.oauth", "''", "oauth_success_message", ""),
        ("paths.single-slash", "not served", "single_slash_paths", False),
        ("execute.body-plan-id", "path only", "execute_body_plan_id", "path-only"),
        ("callback.default-sent", "no", "callback_statuses", ["RUNNING", "PENDING", "SUCCESS", "FAIL"]),
        ("callback.default-sent", "yes", "callback_statuses", ["DEFAULT", "RUNNING", "PENDING", "SUCCESS", "FAIL"]),
        ("callback.attempts", "4", "callback_retries", 3),
        ("callback.attempts", "3", "callback_retries", 2),
        ("callback.backoff", "0.5, 1, 2 s", "callback_backoff", [0.5, 1, 2]),
        ("callback.after-give-up", "nothing more sent", "callback_after_give_up", False),
        ("oauth.code-lifetime", "between 590 and 610 s", "code_ttl", 600),
        ("oauth.code-lifetime", "between 120 and 590 s", "code_ttl", 540),
        ("oauth.code-lifetime", "between 30 and 120 s", "code_ttl", 60),
        ("oauth.code-lifetime", "over 3600 s", "code_ttl", 7200),
        ("oauth.token-lifetime", "43199", "token_ttl", 43200),
        ("oauth.token-lifetime", "7200", "token_ttl", 7200),
        ("oauth.token-lifetime", "1234", "token_ttl", 1234),
        ("oauth.code-length", "32", "code_length", 32),
        ("oauth.code-alphabet", "A-Z0-9_-", "code_alphabet", "A-Z0-9_-"),
        (
            "oauth.token-claims",
            "aud, client_id, exp, jti, scope, user_id",
            "token_claims",
            ["aud", "client_id", "exp", "jti", "scope", "user_id"],
        ),
        ("execute.plan-instance-id-format", "19 digits", "plan_instance_id_format", "digits"),
        ("execute.plan-instance-id-format", "other (36 chars)", "plan_instance_id_format", "uuid"),
        ("oauth.token-type", "bearer", "token_type", "bearer"),
        ("oauth.token-type", "BEARER", "token_type", "BEARER"),
    ],
)
def test_each_topic_sets_its_setting(topic: str, value: str, setting: str, expected: Any, tmp_path: Path) -> None:
    settings, comments = written((topic, value))
    assert settings[setting] == expected, (setting, settings[setting], comments.get(setting))
    assert not comments.get(setting, "").startswith("default:")
    loaded = getattr(loads(tmp_path, (topic, value)), setting)  # the emulator takes the written value
    assert (list(loaded) if isinstance(loaded, tuple) else loaded) == expected


def test_unknown_path_status_follows_http_status_when_it_matches() -> None:
    settings, _ = written(
        ("http-status.code-404", "200"), ("unknown-path.code", "404"), ("unknown-path.http-status", "200")
    )
    assert settings["http_status"] == "always200" and settings["unknown_path_http_status"] == 0
    settings, _ = written(
        ("http-status.code-404", "200"), ("unknown-path.code", "404"), ("unknown-path.http-status", "404")
    )
    assert settings["unknown_path_http_status"] == 404


def test_a_hostile_message_stays_one_line_and_loads_as_sent(tmp_path: Path) -> None:
    message = "ok # not a comment\nsecond: {x} 'q\" \u202e\x00"
    text = render(report(("success-message.process", repr(message))))
    line = next(ln for ln in text.splitlines() if ln.startswith("success_message:"))
    assert "second" in line and r"\u202e" in line
    assert loads(tmp_path, ("success-message.process", repr(message))).success_message == message


def test_observed_values_in_comments_cannot_break_out_of_them(tmp_path: Path) -> None:
    hostile = [("unknown-plan.code", "HTTP 200\nhttp_status: always200\u202e"), ("plans.extra-fields", "a\nb: 1")]
    text = render(report(*hostile))
    assert all(ln.startswith("#") or not ln or re.match(r"^\w+: ", ln) for ln in text.splitlines()), text
    assert loads(tmp_path, *hostile) == Settings()


def test_callbacks_that_never_include_running_drop_it() -> None:
    settings, _ = written(("callback.default-sent", "no"), ("callback.statuses", "PENDING -> SUCCESS"))
    assert settings["callback_statuses"] == ["PENDING", "SUCCESS", "FAIL"]


def test_codes_without_underscore_or_dash_beside_codes_with_are_the_wider_alphabet() -> None:
    settings, _ = written(("oauth.code-alphabet", "A-Z0-9", 2), ("oauth.code-alphabet", "A-Z0-9_-", 3))
    assert settings["code_alphabet"] == "A-Z0-9_-"
    settings, comments = written(("oauth.code-alphabet", "A-Z0-9"), ("oauth.code-alphabet", "other"))
    assert settings["code_alphabet"] == "A-Z0-9" and "conflicting" in comments["code_alphabet"]


def test_validation_refusals_for_the_token_are_not_a_conflict() -> None:
    settings, comments = written(
        ("validation.code", "400", 96), ("validation.code", "403", 12), ("oauth.bad-token.code", "403")
    )
    assert settings["validation_code"] == 400 and not comments.get("validation_code", "").startswith("default:")


@pytest.mark.parametrize(
    ("observations", "setting", "reason"),
    [
        ([("unknown-plan.code", "HTTP 404 (no envelope)")], "unknown_plan_code", "no setting reproduces"),
        ([("unknown-path.code", "none")], "unknown_path_code", "no setting reproduces"),
        ([("validation.code", "HTTP 400 (no envelope)")], "validation_code", "no setting reproduces"),
        ([("error.data", "null", 3), ("error.data", "absent", 2)], "error_data", "conflicting values"),
        ([("error.data", "filled")], "error_data", "no setting reproduces"),
        ([("oauth.code-alphabet", "other")], "code_alphabet", "no setting reproduces"),
        ([("oauth.code-length", "6")], "code_length", "8-256"),
        ([("oauth.token-claims", "exp, sub, tenant")], "token_claims", "cannot issue tenant"),
        ([("oauth.token-claims", "exp, scope")], "token_claims", "needs exp"),
        ([("execute.plan-instance-id-format", "24 hex")], "plan_instance_id_format", "no setting reproduces"),
        ([("callback.default-sent", "yes"), ("callback.default-sent", "no")], "callback_statuses", "conflicting"),
        ([("oauth.code-lifetime", "forever")], "code_ttl", "forever"),
        ([("oauth.token-type", "MAC")], "token_type", "not Bearer in any casing"),
        ([("oauth.token-type", "bearer"), ("oauth.token-type", "Bearer")], "token_type", "conflicting"),
        ([], "token_ttl", "not observed"),
    ],
)
def test_what_cannot_be_reproduced_keeps_the_default_with_the_reason(
    observations: list[Any], setting: str, reason: str, tmp_path: Path
) -> None:
    settings, comments = written(*observations)
    default = getattr(Settings(), setting)
    assert settings[setting] == (list(default) if isinstance(default, tuple) else default)
    assert comments[setting].startswith("default:") and reason in comments[setting], comments[setting]
    loads(tmp_path, *observations)  # and the file still loads


def test_unreproducible_and_diagnostic_topics_are_named_in_the_header_not_written() -> None:
    text = render(report(("plans.extra-fields", "vendorExtra"), ("fuzzing.codes", "listPlans: {200: 3}")))
    assert "#   plans.extra-fields: vendorExtra" in text
    assert "fuzzing" not in text


def test_the_emulators_own_observations_reproduce_the_document_profile(tmp_path: Path) -> None:
    """What the kit observes on the emulator with defaults writes a profile equal to the defaults."""
    observed: list[Any] = [
        ("http-status.code-400", "400"),
        ("http-status.code-403", "403"),
        ("http-status.code-404", "404"),
        ("http-status.code-998", "200"),
        ("unknown-plan.code", "404"),
        ("unknown-instance.code", "404"),
        ("unknown-path.code", "404"),
        ("unknown-path.http-status", "404"),
        ("wrong-method.code", "404"),
        ("wrong-method.http-status", "405"),
        ("wrong-method.allow-header", "present"),
        ("validation.code", "400", 96),
        ("validation.code", "403", 12),
        ("oauth.bad-token.code", "403"),
        ("oauth.code-reuse.code", str(Settings().code_reuse_code)),
        ("error.data", "null"),
        ("success-message.process", "'success'"),
        ("success-message.oauth", "''"),
        ("paths.single-slash", "served"),
        ("execute.body-plan-id", "required"),
        ("callback.default-sent", "yes"),
        ("callback.statuses", "DEFAULT -> RUNNING -> SUCCESS"),
        ("callback.attempts", "4"),
        ("callback.backoff", "0.1, 0.2, 0.4 s"),
        ("callback.after-give-up", "later statuses sent"),
        ("oauth.code-lifetime", "between 590 and 610 s"),
        ("oauth.token-lifetime", "7199"),
        ("oauth.code-length", "48"),
        ("oauth.code-alphabet", "A-Z0-9"),
        ("oauth.token-claims", "aud, exp, iss, jti, orig_iat, scope, sub"),
        ("oauth.token-type", "Bearer"),
        ("execute.plan-instance-id-format", "in + 13 digits"),
    ]
    assert loads(tmp_path, *observed) == Settings()
    _, comments = written(*observed)
    assert not [k for k, c in comments.items() if c.startswith("default:") and k not in UNOBSERVABLE]
