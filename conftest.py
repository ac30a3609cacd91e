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
    # Its runs are one pool too (its control would run on each worker); after the variant runs, on the same
    # worker, so the two CPU-heavy pools never compete while the other worker runs tests that mostly wait.
    "tests/kit_selftest/test_kit_catches_defects.py": "variant runs",
    "tests/test_schemathesis_foundation.py": "schemathesis foundation",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest 9.2 builds a Function's node id from `originalname`, and schemathesis passes the bare function
    # name there: every generated test would be `test_x.py::test_operation`. Give each its operation back.
    # The kit does the same in contract_tests/conftest.py, so installed runs (without this file) match.
    for item in items:
        if "[" in item.name and "[" not in item.nodeid and item.parent is not None:
            item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]  # pytest keeps _id private
    items.sort(key=_start_order)  # stable: the order within a file is kept


# The order xdist hands tests out in (the scheduler below keeps the collection order, not xdist's biggest group
# first): the kit self-test's pools first, on one worker, at about one and a half cores for 100 s; beside them, on
# the other, tests that mostly wait on servers, timeouts and graces (a tenth to a third of a core each) — side by
# side at the end they left both cores idle; then everything else; kit runs in subprocesses last. Figures in
# docs/performance.md ("The test suite").
MOSTLY_WAITING = (  # about as long together as the pools
    "tests/test_durable_state.py",
    "tests/test_hostile_http.py",
    "tests/test_multiprocess.py",
    "tests/test_proxy_hostile.py",
)
KIT_SUBPROCESSES = (
    "tests/test_verify_cli.py",
    "tests/test_calibration_cli.py",
)


def _start_order(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    if SHARED_WORKER.get(path) == "variant runs":
        return 0
    return 1 if path in MOSTLY_WAITING else 3 if path in KIT_SUBPROCESSES else 2


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own `--dist loadgroup` marks a group by rewriting `item._nodeid`, which pytest 9.2 no longer reads
    # (node ids come from `_id`): groups are silently ignored. Its load-scope scheduler with our scopes instead:
    # the listed prefixes share a worker, every other test is a unit of its own (as with `--dist load`).
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorkerScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no type hints
        def _split_scope(self, nodeid: str) -> str:
            return next((scope for prefix, scope in SHARED_WORKER.items() if nodeid.startswith(prefix)), nodeid)

    config.option.loadscopereorder = False  # the collection order above, not the biggest group first
    return SharedWorkerScheduling(config, log)
