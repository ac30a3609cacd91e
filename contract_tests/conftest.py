"""The kit's pytest set-up: options (each with a DPA_* variable), the seed, report defaults and plugins."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from _pytest.nodeid import coerce_node_id

# The plugin modules are imported below (through support.api) before pytest registers them: rewrite first.
pytest.register_assert_rewrite("contract_tests.plugins", "contract_tests.support")

from contract_tests.support import props  # noqa: E402,F401  # registers the kit's Hypothesis profiles
from contract_tests.support.api import Api  # noqa: E402 -- after the assert-rewrite registration
from contract_tests.support.config import DEFAULT_JUNIT, add_options, build_config  # noqa: E402 -- same
from contract_tests.support.kit import KIT  # noqa: E402 -- same

pytest_plugins = [
    "contract_tests.plugins.safety",
    "contract_tests.plugins.target",
    "contract_tests.plugins.auth",
    "contract_tests.plugins.clock",
    "contract_tests.plugins.receiver",
    "contract_tests.plugins.report",
]

KIT_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _only_kit(config: pytest.Config) -> bool:
    """True when every path given to pytest lies inside contract_tests/ (then the kit owns the JUnit default)."""
    args = [a.split("::", 1)[0] for a in config.args] or ["."]
    root = Path(config.invocation_params.dir)
    return all((root / a).resolve().is_relative_to(KIT_DIR) for a in args)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interface(*numbers): the vendor interfaces (1-7) a kit test checks")
    given = config.getoption("hypothesis_seed", None)
    try:
        seed = int(given) if given is not None else random.SystemRandom().randrange(2**31)
    except ValueError:
        raise pytest.UsageError(f"--hypothesis-seed must be an integer for the kit's report, not {given!r}") from None
    if given is None:
        from hypothesis import core

        core.global_force_seed = seed  # one seed for every property test; the report shows it
    KIT.config = build_config(config, seed)
    if KIT.config.in_process:
        # The emulator's callback sender shares this process: generated callbackUrls without a scheme make
        # urllib3 warn, which says nothing about the target.
        config.addinivalue_line("filterwarnings", "ignore:URLs without a scheme:FutureWarning")
    if KIT.config.verify is False:
        config.addinivalue_line("filterwarnings", "ignore:Unverified HTTPS request")  # --insecure was asked for
    if _only_kit(config) and not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = DEFAULT_JUNIT
        Path(DEFAULT_JUNIT).parent.mkdir(parents=True, exist_ok=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Name every kit test `contract_tests/<module>::<name>`, wherever the package is (checkout or site-packages,
    any run directory), and give schemathesis' generated tests their operation back: pytest 9.2 builds a node
    id from `originalname`, so every one would be `test_schema.py::test_operation`."""
    for item in items:
        try:
            relative = Path(str(item.path)).resolve().relative_to(KIT_DIR).as_posix()
        except ValueError:
            continue  # not a kit test
        inner = item.nodeid.split("::")[1:-1]
        item._id = coerce_node_id("::".join([f"contract_tests/{relative}", *inner, item.name]))  # type: ignore[attr-defined]  # private in pytest


@pytest.fixture(scope="session")
def kit_api(kit_target: Any, kit_auth: Any) -> Api:
    """Raw requests to the seven operations, with what tests build on (plans, a run, valid requests)."""
    return Api(kit_target, kit_auth)
