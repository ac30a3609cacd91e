"""The kit's command-line options as a pytest plugin loaded at start-up (`-p contract_tests.plugin`, or the
`pytest11` entry point): an installed kit is run with `--pyargs`, whose conftest pytest only finds after parsing."""

from __future__ import annotations

import pytest

# Loaded before the conftest: the kit's helper modules are imported from here first, so rewrite them now.
pytest.register_assert_rewrite("contract_tests.plugins", "contract_tests.support")

from contract_tests.support.config import add_options  # noqa: E402 -- after the assert-rewrite registration


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # With --pyargs the kit's conftest (which builds the configuration) loads only during collection, where a
    # bad option would surface as a collection error: check the options now, so it is a usage error (exit 4).
    # Only when the kit is what runs: the entry point loads this plugin into every pytest session.
    from contract_tests.support.config import build_config

    if any("contract_tests" in str(arg) for arg in config.args):
        build_config(config, seed=0)
