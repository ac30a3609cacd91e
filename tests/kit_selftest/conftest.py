"""The faithful variants' kit runs, made once per session for the faithful self-test and the calibration loop."""

from __future__ import annotations

import pytest

from tests.kit_selftest.faithful import VARIANTS
from tests.kit_selftest.variant_runs import VariantRuns, run_all


def _wanted(session: pytest.Session, fixture: str) -> set[str]:
    """The variants the selected tests using `fixture` need: a parametrized test its own, any other every one."""
    wanted: set[str] = set()
    for item in session.items:
        if fixture not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        wanted |= {callspec.params["variant"]} if callspec and "variant" in callspec.params else set(VARIANTS)
    return wanted


@pytest.fixture(scope="session")
def variant_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, VariantRuns]:
    """Every wanted variant's kit run, and its calibration loop where a selected calibration test asks for it."""
    return run_all(
        _wanted(request.session, "runs"), _wanted(request.session, "loops"), tmp_path_factory.mktemp("variants")
    )
