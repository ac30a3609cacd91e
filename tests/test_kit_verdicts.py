"""The kit's verdict classes: every schemathesis check is classed, the wrapper acts on the class, topics are stable."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from schemathesis.checks import CHECKS, load_all_checks

from contract_tests import schema_checks
from contract_tests.support import kit as kit_module
from contract_tests.support.kit import Kit
from contract_tests.support.verdicts import SCHEMATHESIS_CHECKS, TOPICS, LeniencyFailure, Verdict

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class FakeRequest:
    method: str = "POST"
    url: str = "http://127.0.0.1:1/api/dpa/process/processPlan/queryModelByPlanId"
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": "Bearer secret.token.value"})
    body: bytes = b'{"processPlanId": "x"}'


@dataclass
class FakeOperation:
    label: str = "POST /api/dpa/process/processPlan/queryModelByPlanId"


@dataclass
class FakeCase:
    operation: FakeOperation = field(default_factory=FakeOperation)


@dataclass
class FakeResponse:
    request: FakeRequest = field(default_factory=FakeRequest)


@dataclass
class StrictConfig:
    strict: bool


@pytest.fixture
def fresh_kit(monkeypatch: pytest.MonkeyPatch) -> Kit:
    """A Kit of its own, so the kit's session state (when it runs in this process) is left alone."""
    kit = Kit()
    kit.current_test = "contract_tests/test_x.py::test_y"
    monkeypatch.setattr(schema_checks, "KIT", kit)
    monkeypatch.setattr(kit_module, "KIT", kit)
    return kit


def failing(name: str) -> Any:
    def check(ctx: Any, response: Any, case: Any) -> None:
        raise AssertionError(f"{name} found a problem\nsecond line")

    check.__name__ = name
    return check


def test_every_schemathesis_check_has_a_class() -> None:
    load_all_checks()
    builtin = set(CHECKS.get_all_names())
    assert builtin <= set(SCHEMATHESIS_CHECKS), builtin - set(SCHEMATHESIS_CHECKS)
    assert set(SCHEMATHESIS_CHECKS) - builtin == {"envelope_conformance"}
    names = {check.__name__ for check in schema_checks.checks_for("listPlans")}
    assert names == set(SCHEMATHESIS_CHECKS), names ^ set(SCHEMATHESIS_CHECKS)
    assert "positive_data_acceptance" not in {c.__name__ for c in schema_checks.checks_for("executePlan")}


def test_a_violation_fails(fresh_kit: Kit) -> None:
    wrapped = schema_checks.classed(failing("response_schema_conformance"))
    with pytest.raises(AssertionError, match="found a problem"):
        wrapped(None, FakeResponse(), FakeCase())
    assert fresh_kit.raised[fresh_kit.current_test or ""] == {Verdict.VIOLATION} and not fresh_kit.leniencies


def test_a_leniency_is_recorded_with_its_request(fresh_kit: Kit) -> None:
    wrapped = schema_checks.classed(failing("negative_data_rejection"))
    assert wrapped(None, FakeResponse(), FakeCase()) is None
    wrapped(None, FakeResponse(), FakeCase())
    (finding,) = fresh_kit.leniencies.values()
    assert finding.check == "negative_data_rejection" and finding.count == 2
    assert (
        finding.detail == "POST /api/dpa/process/processPlan/queryModelByPlanId (POST): "
        "negative_data_rejection found a problem"
    )
    assert finding.curl is not None and finding.curl.startswith("curl -X POST") and "secret.token" not in finding.curl
    assert fresh_kit.by_test[fresh_kit.current_test or ""]


def test_a_leniency_fails_under_strict(fresh_kit: Kit) -> None:
    fresh_kit.config = StrictConfig(strict=True)  # type: ignore[assignment]
    wrapped = schema_checks.classed(failing("unsupported_method"))
    with pytest.raises(LeniencyFailure, match=r"^\[leniency\] unsupported_method"):
        wrapped(None, FakeResponse(), FakeCase())
    assert fresh_kit.raised[fresh_kit.current_test or ""] == {Verdict.LENIENCY}


def test_an_observation_class_check_never_fails(fresh_kit: Kit) -> None:
    wrapped = schema_checks.classed(failing("status_code_conformance"))
    assert wrapped(None, FakeResponse(), FakeCase()) is None
    assert not fresh_kit.leniencies and not fresh_kit.raised


def test_unknown_topics_are_refused(fresh_kit: Kit) -> None:
    fresh_kit.observe("callback.attempts", "4")
    with pytest.raises(KeyError):
        fresh_kit.observe("callback attempts in total", "4")


def test_topics_used_by_the_kit_are_registered_and_documented() -> None:
    used: set[str] = set()
    for path in (ROOT / "contract_tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'KIT\.observe\(\s*"([^"{]+)"', text))
        used |= set(re.findall(r'topic(?:: str \| None)?\s*=\s*"([^"{]+)"', text))  # expect_rejected(topic=...)
    assert used and used <= set(TOPICS), used - set(TOPICS)
    docs = (ROOT / "docs" / "contract-kit.md").read_text(encoding="utf-8")
    undocumented = [t for t in TOPICS if f"`{t}`" not in docs]
    assert not undocumented, undocumented
    unused = {t for t in TOPICS if t not in used and not t.startswith(("http-status.code-", "success-message."))}
    assert not unused, f"registered topics nothing observes: {unused}"


class _Mode:
    is_positive, is_negative = True, False


class _Meta:
    class generation:  # noqa: N801 - mirrors schemathesis' attribute
        mode = _Mode()

    phase = None


@dataclass
class PositiveCase:
    operation: Any
    meta: Any = field(default_factory=_Meta)
    method: str = "GET"


@dataclass
class _Definition:
    raw: dict[str, Any]


@dataclass
class _Operation:
    definition: _Definition
    label: str = "GET /api/dpa/process/processPlan/queryPlanByUserId"
    method: str = "GET"


@dataclass
class EnvelopeResponse:
    content: bytes
    status_code: int = 200
    request: FakeRequest = field(default_factory=lambda: FakeRequest(method="GET"))


def test_positive_acceptance_is_judged_only_for_promised_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_checks, "wrong_method", lambda case: False)
    case = PositiveCase(_Operation(_Definition({"operationId": "listPlans", "security": [{"bearerAuth": []}]})))
    refused = EnvelopeResponse(b'{"code": 999, "message": "x", "data": null}')
    # A generated request the document does not promise to accept: its refusal is not judged.
    assert schema_checks.positive_data_acceptance_envelope(None, refused, case) is None
    schema_checks.PROMISED.add(id(case))
    with pytest.raises(AssertionError, match="promises to accept"):
        schema_checks.positive_data_acceptance_envelope(None, refused, case)
    assert id(case) not in schema_checks.PROMISED  # judged once
    schema_checks.PROMISED.add(id(case))
    accepted = EnvelopeResponse(b'{"code": 200, "message": "success", "data": []}')
    assert schema_checks.positive_data_acceptance_envelope(None, accepted, case) is None
