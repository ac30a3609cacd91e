"""pytest plugin for kit runs against broken servers: the kit's own profile without shrinking (faster failures)."""

from __future__ import annotations

from hypothesis import Phase, settings

from contract_tests.support import props  # noqa: F401  # registers the kit's profiles first
from tests.kit_selftest.harness import QUICK_PROFILE, SELFTEST_PROFILE

# Same examples and health checks as the kit's default profile, so what is generated (hence caught) is the
# same; only the minimisation of a failing example is dropped, which is most of a failing run's time.
settings.register_profile(
    SELFTEST_PROFILE,
    parent=settings.get_profile("dpa-contract"),
    phases=[p for p in Phase if p not in (Phase.shrink, Phase.explain)],
)
# Faithful variants: half the examples. They look for false alarms on a choice each variant makes everywhere
# (every answer has it), so a few examples show it; the 20-seed repeat over HTTP covers breadth.
settings.register_profile(QUICK_PROFILE, parent=settings.get_profile(SELFTEST_PROFILE), max_examples=4)
