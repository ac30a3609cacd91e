"""pytest plugins of the kit (registered by contract_tests/conftest.py): target, auth, clock, receiver, safety, report."""
