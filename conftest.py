"""Repository-wide pytest hooks for tests/ and examples/ (the kit, contract_tests/, names its own tests)."""

from typing import Any

import pytest

# Tests that must share one pytest-xdist worker (`make test` runs `-n 2`), by node-id prefix: the in-process kit
# writes one report for its session; the faithful self-test and the calibration loop share the session fixture
# `variant_runs` (a minute of kit runs, made twice on two workers); the foundation module's last test reads
# what the module's other tests recorded.
SHARED_WORKER = {
    "contract_tests/": "contract kit",
    "tests/kit_selftest/test_faithful_variants.py": "variant runs",
    "tests/kit_selftest/test_calibration.py": "variant runs",
    "tests/kit_selftest/test_kit_catches_defects.py": "broken-server runs",  # one pool; else its control runs twice
    "tests/test_schemathesis_foundation.py": "schemathesis foundation",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest 9.2 builds a Function's node id from `originalname`, and schemathesis passes the bare function
    # name there: every generated test would be `test_x.py::test_operation`. Give each its operation back.
    # The kit does the same in contract_tests/conftest.py, so installed runs (without this file) match.
    for item in items:
        if "[" in item.name and "[" not in item.nodeid and item.parent is not None:
            item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]  # pytest keeps _id private


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own `--dist loadgroup` marks a group by rewriting `item._nodeid`, which pytest 9.2 no longer reads
    # (node ids come from `_id`): groups are silently ignored. Its load-scope scheduler with our scopes instead:
    # the listed prefixes share a worker, every other test is a unit of its own (as with `--dist load`).
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorkerScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no type hints
        def _split_scope(self, nodeid: str) -> str:
            return next((scope for prefix, scope in SHARED_WORKER.items() if nodeid.startswith(prefix)), nodeid)

    return SharedWorkerScheduling(config, log)
