"""The document's envelope rule, shared by the kit and the proxy, says exactly what keeps a body from being one."""

from __future__ import annotations

from typing import Any

import pytest

from dpa_client.document import DOCUMENTED_CODES, envelope_shape_problems


@pytest.mark.parametrize("code", sorted(DOCUMENTED_CODES))
def test_every_documented_code_makes_an_envelope_whatever_the_data_and_extra_fields(code: int) -> None:
    assert envelope_shape_problems({"code": code, "message": "", "data": None, "traceId": "x"}) == []
    assert envelope_shape_problems({"message": "操作成功", "code": code}) == []  # data is the caller's rule


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "body is a JSON list, not the {code, message, data} envelope"),
        ({"message": "m"}, "field 'code' is missing"),
        ({"code": "200", "message": "m"}, "'code' is str '200', not an int"),
        ({"code": True, "message": "m"}, "'code' is bool True, not an int"),
        ({"code": 4004, "message": "m"}, "'code' 4004 is not a documented code"),
        ({"code": 200}, "field 'message' is missing"),
        ({"code": 200, "message": None}, "'message' is NoneType, not a string"),
    ],
)
def test_each_broken_promise_is_named(body: Any, problem: str) -> None:
    problems = envelope_shape_problems(body)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
