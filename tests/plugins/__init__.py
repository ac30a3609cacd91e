"""pytest plugin modules for the emulator's own tests (loaded from tests/conftest.py)."""
