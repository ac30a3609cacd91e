"""F9 over real HTTP: no fault an operator can add hangs `dpa-mock serve`, and one that could never match is a 400."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mock_server.testing.server import ServerProcess
from tests.plugins.engine import http_login

pytestmark = pytest.mark.http

LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
OPERATIONS = (
    "authorize",
    "executePlan",
    "getToken",
    "listPlans",
    "queryModelByPlanId",
    "queryPlanRunOutParam",
    "saveTimingParam",
)


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = Path(tmp_path_factory.mktemp("faults")) / "serve.log"
    with ServerProcess(log=log) as server:
        yield server


@pytest.fixture
def base(srv: ServerProcess) -> Iterator[str]:
    yield srv.base_url
    _session().delete(srv.base_url + "/__admin/faults", timeout=5)


@pytest.fixture
def auth(base: str) -> dict[str, str]:
    return http_login(base)


def add(base: str, **spec: Any) -> requests.Response:
    return _session().post(base + "/__admin/faults", json=spec, timeout=5)


@pytest.mark.parametrize("pattern", ["(.*)*Z", "(a|aa)+$", "(x+x+)+y", "^(([a-z])+.)+[A-Z]([a-z])+$"])
def test_a_catastrophic_backtracking_pattern_never_hangs_the_server(
    base: str, auth: dict[str, str], pattern: str
) -> None:
    assert add(base, code=503, path=pattern).json()["code"] == 200
    s = _session()
    long_path = LIST + "?" + "a" * 30_000 + "x" * 30  # what each of these patterns backtracks on
    started = time.monotonic()
    for url in (base + LIST, base + long_path, base + "/" + "a" * 5000 + "!"):
        r = s.get(url, headers=auth, timeout=5)  # before: the worker thread stuck in `re`, every request timed out
        assert r.json()["code"] in (200, 404, 503), r.text[:200]
    assert time.monotonic() - started < 3
    assert s.get(base + "/__admin/clock", timeout=5).json()["code"] == 200
    assert s.delete(base + "/__admin/faults", timeout=5).json()["code"] == 200
    assert s.get(base + LIST, headers=auth, timeout=5).json()["code"] == 200


def test_the_pattern_still_matches_as_a_regular_expression(base: str, auth: dict[str, str]) -> None:
    assert add(base, code=503, path=r"query(Plan|Model)By\w+Id$", times=1).json()["code"] == 200
    assert _session().get(base + LIST, headers=auth, timeout=5).json()["code"] == 503
    assert _session().get(base + LIST, headers=auth, timeout=5).json()["code"] == 200


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [(r"(a)\1", r"\1"), ("(?=query)", "(?="), ("(?<!x)y", "(?<"), ("(unclosed", "missing )"), ("a{1000}{2}", "{")],
)
def test_a_pattern_re2_cannot_run_is_a_400_saying_why(base: str, pattern: str, reason: str) -> None:
    r = add(base, code=503, path=pattern)
    body = r.json()
    assert r.status_code == 400 and body["code"] == 400, body
    assert body["message"].startswith("path: ") and "RE2" in body["message"] and reason in body["message"], body
    assert _session().get(base + "/__admin/faults", timeout=5).json()["data"] == []


def test_an_unknown_operation_id_is_a_400_naming_the_valid_ones(base: str) -> None:
    for spec in ({"operationId": "nope", "code": 503}, {"operation": "execute_plan", "code": 503}):
        r = add(base, **spec)
        body = r.json()
        assert r.status_code == 400 and body["code"] == 400, body
        assert "operationId" in body["message"] and all(op in body["message"] for op in OPERATIONS), body
    assert _session().get(base + "/__admin/faults", timeout=5).json()["data"] == []
    assert add(base, operationId="executePlan", code=503).json()["code"] == 200


@pytest.mark.parametrize("method", ["BREW", "GETT", "", "DELETE"])
def test_a_method_the_emulator_does_not_serve_is_a_400(base: str, method: str) -> None:
    r = add(base, method=method, code=503)
    if method == "":  # no method: matches every method, as documented
        assert r.json()["code"] == 200
        return
    body = r.json()
    assert r.status_code == 400 and body["code"] == 400, body
    assert "method" in body["message"] and "GET" in body["message"] and "POST" in body["message"], body


def test_methods_are_case_insensitive_and_head_is_served(base: str, auth: dict[str, str]) -> None:
    assert add(base, method="get", path="queryPlanByUserId", code=998, times=1).json()["code"] == 200
    assert _session().get(base + LIST, headers=auth, timeout=5).json()["code"] == 998
    assert add(base, method="HEAD", code=503, times=1).json()["code"] == 200


@pytest.mark.parametrize("field", ["path", "method", "operationId", "message"])
def test_a_non_string_criterion_is_a_400_naming_it(base: str, field: str) -> None:
    r = add(base, code=503, **{field: 5})
    body = r.json()
    assert r.status_code == 400 and body["code"] == 400 and field in body["message"], body


def test_any_integer_code_is_injected_as_asked(base: str, auth: dict[str, str]) -> None:
    # Not a code of the document, on purpose: a test of how the integrator's code copes with the unexpected.
    assert add(base, code=12345, operationId="listPlans", times=1).json()["code"] == 200
    assert _session().get(base + LIST, headers=auth, timeout=5).json()["code"] == 12345
