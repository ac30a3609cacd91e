"""Repository-wide pytest hooks for tests/ and examples/ (the kit, contract_tests/, names its own tests)."""

import os
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
# first): the kit self-test's pools first, at about one and a half cores for 100 s; then everything else; kit runs
# in subprocesses last. Figures in docs/performance.md ("The test suite").
KIT_SUBPROCESSES = (
    "tests/test_verify_cli.py",
    "tests/test_calibration_cli.py",
)
# Tests that mostly wait on servers, timeouts, graces and leases (a tenth to a third of a core each). With more
# workers than cores one worker runs only these (its lane), beside one CPU-bound worker per core: on two workers
# they held a core idle for some 90 s (`make unit` 236 and 245 s; with the lane 205 and 205 s, runs alternated
# in one hour). The CPU-bound workers take them too once their own lane is empty; the waiting worker never takes
# a CPU-bound test.
MOSTLY_WAITING = (
    "tests/test_proxy_hostile.py",
    "tests/test_multiprocess.py",
    "tests/test_stop.py",
    "tests/test_hostile_http.py",
    "tests/test_durable_state.py",
    "tests/test_proxy_stop.py",
    "tests/test_e2e_http.py",
    "tests/test_readme_walkthrough.py",
    "tests/test_real_clock_advance.py",
    "tests/test_callbacks.py",
    "tests/test_shared_state.py",
)


def _waiting_scope(scope: str) -> bool:
    return scope.split("::", 1)[0] in MOSTLY_WAITING


def _start_order(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    if SHARED_WORKER.get(path) == "variant runs":
        return 0
    return 1 if path in MOSTLY_WAITING else 3 if path in KIT_SUBPROCESSES else 2


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    # `-n auto`: one worker per core and, from two cores up, the waiting lane's worker beside them.
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1 if cores >= 2 else cores


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # xdist's own `--dist loadgroup` marks a group by rewriting `item._nodeid`, which pytest 9.2 no longer reads
    # (node ids come from `_id`): groups are silently ignored. Its load-scope scheduler with our scopes instead:
    # the listed prefixes share a worker, every other test is a unit of its own (as with `--dist load`).
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist ships no type hints
        def _split_scope(self, nodeid: str) -> str:
            return next((scope for prefix, scope in SHARED_WORKER.items() if nodeid.startswith(prefix)), nodeid)

        def _waits(self, node: Any) -> bool:
            """The waiting lane: the last worker, when there are three or more."""
            return len(self.nodes) >= 3 and node is self.nodes[-1]

        def _next_scope(self, node: Any) -> str | None:
            """The first queued unit of the node's lane; a CPU-bound worker takes a waiting unit when none is left."""
            if self._waits(node):
                return next((scope for scope in self.workqueue if _waiting_scope(scope)), None)
            return next(
                (scope for scope in self.workqueue if not _waiting_scope(scope)), next(iter(self.workqueue), None)
            )

        def _assign_work_unit(self, node: Any) -> None:
            scope = self._next_scope(node)
            if scope is None:
                return
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items() if not done])

        def _reschedule(self, node: Any) -> None:
            if node.shutting_down:
                return
            if self._next_scope(node) is None:  # nothing left for this lane: it ends once its tests are done
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 2:  # xdist's heuristic: keep two or three queued
                return
            self._assign_work_unit(node)

    config.option.loadscopereorder = False  # the collection order above, not the biggest group first
    return LaneScheduling(config, log)
