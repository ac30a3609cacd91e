"""The loop closes, measured: for every faithful variant, the profile the kit writes from it makes `dpa-mock serve`
show the kit the same observations (issue 13).

Per variant: the kit against the variant (`--report-json`), the profile written from that result (the function
`dpa-mock verify --write-profile` calls), `dpa-mock serve --profile` of it, the kit against that server with the
same seed and modules. The observation sets (topic -> values; counts say how often, not what) must be equal, the
diagnostic topics (fuzzing.*: what Hypothesis generated) left out. Where a variant does something no profile
setting can reproduce, the differences must be exactly the ones named in GAPS, and the written profile must say
so — a new difference, or a gap that closes, fails the test.
"""

from __future__ import annotations

import re

import pytest

from contract_tests.cli import compare
from tests.kit_selftest.faithful import VARIANTS
from tests.kit_selftest.variant_runs import ORDER, VariantRuns

pytestmark = pytest.mark.slow

# Differences no profile setting can reproduce (docs/contract-kit.md, "Calibration"): topic pattern -> why. Every
# pattern must match a differing topic (else the gap closed: remove it), every differing topic a pattern.
STATUS_999 = "HTTP status = code for 997-999: http_status_by_code takes HTTP statuses 100-599 only"
MISMATCH = (
    "a body naming another plan than the path accepted: no setting does that (execute_body_plan_id: "
    "path-only still rejects a mismatch)"
)
EXTRA = "no setting adds fields to listPlans items"
GAPS: dict[str, dict[str, str]] = {
    "status-is-code": {r"http-status\.code-99[789]": STATUS_999},
    "pretty-extra-fields": {r"plans\.extra-fields": EXTRA},
    "execute-path-only": {r"execute\.path-body-mismatch": MISMATCH},
    "framework-errors": {
        r"validation\.code": "no setting answers a malformed body with a framework's own non-envelope 400/415"
    },
    "all-at-once": {
        r"http-status\.code-99[789]": STATUS_999,
        r"execute\.path-body-mismatch": MISMATCH,
        r"plans\.extra-fields": EXTRA,
    },
}


@pytest.fixture(scope="module")
def loops(variant_runs: dict[str, VariantRuns]) -> dict[str, VariantRuns]:
    """The selected variants' loops (tests/kit_selftest/conftest.py: the first run is the faithful self-test's)."""
    return variant_runs


def test_every_variant_has_a_loop() -> None:
    assert set(ORDER) == set(VARIANTS) and set(GAPS) <= set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_written_profile_reproduces_the_variant(variant: str, loops: dict[str, VariantRuns]) -> None:
    loop = loops[variant]
    assert loop.target.returncode == 0 and loop.target_result.get("observations"), (
        f"{variant}: the kit run against the variant failed\n{loop.target.summary()}"
    )
    assert loop.profile_error is None, (
        f"{variant}: the written profile does not load: {loop.profile_error}\n{loop.profile}"
    )
    assert loop.loop_error is None, f"{variant}: dpa-mock serve --profile of the written profile: {loop.loop_error}"
    assert loop.emulator is not None and loop.emulator.returncode == 0, (
        f"{variant}: the emulator under the written profile failed its kit\n"
        f"{loop.emulator.summary() if loop.emulator else ''}\n{loop.profile}"
    )
    differ, same, _ = compare(loop.target_result, loop.emulator_result or {})
    gaps = GAPS.get(variant, {})
    unexpected = [row for row in differ if not any(re.fullmatch(p, row[0]) for p in gaps)]
    assert not unexpected, (
        f"{variant}: observed differently on the variant (A) and on the emulator under the "
        f"written profile (B): {unexpected}\n--- profile ---\n{loop.profile}"
    )
    closed = [p for p in gaps if not any(re.fullmatch(p, row[0]) for row in differ)]
    assert not closed, f"{variant}: {closed} now reproduced (no difference left): remove from GAPS"
    for topic, _a, _b in differ:  # the profile tells its reader what it could not reproduce
        assert topic in loop.profile, f"{variant}: the profile does not name {topic}\n{loop.profile}"
    assert len(same) >= 5, f"{variant}: too few topics observed to call the loop closed: {same}"
