"""The compiled request checks (fastjsonschema) accept exactly what jsonschema's validator accepts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_server.http.spec import Contract, admin_contract, vendor_contract

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 2.5, -0.0, 10**20]) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


def instances(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values near the schema: mostly valid or wrong in one place, so both validators get decisions to make."""
    if not isinstance(schema, dict) or depth > 3:
        return JSON
    options: list[st.SearchStrategy[Any]] = [JSON]
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list) and schema[key]:
            options.append(st.sampled_from(schema[key]))
    for key in ("oneOf", "anyOf", "allOf"):
        options += [instances(sub, depth + 1) for sub in schema.get(key, [])]
    kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    if "object" in kinds or "properties" in schema:
        props = schema.get("properties", {})
        optional = {name: instances(sub, depth + 1) for name, sub in props.items()}
        optional["zz_extra"] = JSON
        options.append(st.fixed_dictionaries({}, optional=optional))
    if "array" in kinds:
        options.append(st.lists(instances(schema.get("items", {}), depth + 1), max_size=3))
    if "integer" in kinds or "number" in kinds:
        options.append(st.integers(-2, 2**40) | st.floats(allow_nan=False, allow_infinity=False) | st.just(3.0))
    if "string" in kinds:
        pattern = schema.get("pattern")
        options.append(st.from_regex(pattern, fullmatch=False) if pattern else st.text(max_size=10))
        options.append(st.sampled_from(["", " ", "1", "0", "all", "default", "code", "x" * 300]))
    return st.one_of(options)


def checks(contract: Contract) -> list[tuple[str, Any, Any, dict[str, Any]]]:
    out = []
    for op in contract.operations.values():
        if op.query_schema is not None:
            out.append((f"{op.id} query", op.query_schema.words, op.query_schema.is_valid, op.query_schema.schema))
        for media, schema in op.bodies.items():
            out.append((f"{op.id} {media}", schema.words, schema.is_valid, schema.schema))
    return out


CHECKS = checks(vendor_contract()) + checks(admin_contract())


def test_every_request_schema_is_compiled() -> None:
    names = {name for name, *_ in CHECKS}
    assert {
        "authorize query",
        "getToken application/json",
        "executePlan application/json",
        "queryPlanRunOutParam query",
        "saveTimingParam application/x-www-form-urlencoded",
    } <= names


@pytest.mark.parametrize("name, validator, compiled, schema", CHECKS, ids=[c[0] for c in CHECKS])
def test_the_compiled_check_agrees_with_jsonschema(
    name: str, validator: Any, compiled: Any, schema: dict[str, Any]
) -> None:
    @given(instances(schema))
    def agree(instance: Any) -> None:
        assert compiled(instance) == validator.is_valid(instance), instance

    agree()
