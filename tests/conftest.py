"""Shared test set-up: fixture plugins and Hypothesis profiles (HYPOTHESIS_PROFILE=ci|dev|thorough)."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.plugins.emulator", "tests.plugins.network", "tests.plugins.engine", "tests.plugins.durable"]

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
