"""Hypothesis settings for the kit's property tests: profile dpa-contract (or DPA_HYPOTHESIS_PROFILE)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "derandomize": False,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
}
# Registered here, applied per test through kit_settings(): the project's own profiles stay untouched.
# No example database: a kit run is reproduced by its seed alone.
# No shrinking by default: against a live target every shrink step is another request, and the first
# failing example (with its curl line) is what the report needs. The thorough profile shrinks.
settings.register_profile(
    "dpa-contract", max_examples=8, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON
)
settings.register_profile("dpa-contract-thorough", max_examples=60, **_COMMON)


def kit_settings(**overrides: Any) -> settings:
    """The kit profile, with `max_examples` scaled by the profile (overrides are for the default profile)."""
    profile = settings.get_profile(os.environ.get("DPA_HYPOTHESIS_PROFILE", "dpa-contract"))
    if "max_examples" in overrides:
        overrides["max_examples"] = max(1, round(overrides["max_examples"] * profile.max_examples / 8))
    return settings(profile, **overrides)
