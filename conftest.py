"""Repository-wide pytest hooks for tests/ and examples/ (the kit, contract_tests/, names its own tests)."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest 9.2 builds a Function's node id from `originalname`, and schemathesis passes the bare function
    # name there: every generated test would be `test_x.py::test_operation`. Give each its operation back.
    # The kit does the same in contract_tests/conftest.py, so installed runs (without this file) match.
    for item in items:
        if "[" in item.name and "[" not in item.nodeid and item.parent is not None:
            item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]  # pytest keeps _id private
